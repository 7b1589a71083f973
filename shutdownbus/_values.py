"""Value objects: the protocol's events, the report, the registry's entries.

Rules of this module:

* It imports nothing.  Every member, ``list`` and ``send-stop`` load it.
* Not dataclasses: importing `dataclasses` costs a command line some 8 ms
  (it brings inspect, ast, dis and tokenize), and defining a dataclass runs
  ``exec``, which a module loaded late (on an exit path) must not do.
* A value's fields are its ``__slots__``, in the order of its ``__init__``'s
  parameters: equality, hashing, the repr, pickling and `Value.as_dict`
  all go by them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any, TypeVar

    V = TypeVar("V", bound="FrozenValue")


class Value:
    """A plain value object: equal to another of the same type with equal
    fields, hashable when its fields are, and shown as ``Type(field=...)``.

    A subclass lists its fields in ``__slots__`` and may name in
    ``_hidden`` those its repr must not show (a credential).
    """

    __slots__: tuple[str, ...] = ()
    _hidden: tuple[str, ...] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict, in their order."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name not in self._hidden)
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Rebuilt through __init__, so a frozen value pickles and copies too.
        return type(self), self._fields()


class FrozenValue(Value):
    """A `Value` whose fields cannot change once ``__init__`` has set them
    (with `FrozenValue._init`)."""

    __slots__: tuple[str, ...] = ()

    def _init(self, *values: Any) -> None:
        """Set the fields, in the order of ``__slots__``."""
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def replace(self: V, **changes: Any) -> V:
        """A copy with ``changes`` made to its fields (as `dataclasses.replace`)."""
        return type(self)(**(self.as_dict() | changes))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")
