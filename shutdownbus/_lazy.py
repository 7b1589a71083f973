"""Names of a package loaded on first use (PEP 562), from the modules that define them.

Rules of this module:

* It imports nothing but ``sys``: the package's ``__init__`` (every command
  line) and `_platform`'s use it.
* A name is loaded once: its value is stored in the package's namespace, so
  that the next use finds it without the package's ``__getattr__``.
"""

from __future__ import annotations

import sys


def load(package: str, namespace: dict[str, object], where: dict[str, str], name: str) -> object:
    """The package's ``__getattr__``: ``name`` from the module ``where`` says.

    Args:
        package: The package's ``__name__``.
        namespace: The package's ``globals()``, where the value is kept.
        where: Each name's module in the package; ``""`` for a name that is
            itself a module of the package.
        name: The name asked for.

    Returns:
        Its value.

    Raises:
        AttributeError: the package has no such name.
    """
    module = where.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    qualified = f"{package}.{module or name}"
    __import__(qualified)  # not importlib: the command line does not load it otherwise
    value = getattr(sys.modules[qualified], name) if module else sys.modules[qualified]
    namespace[name] = value
    return value
