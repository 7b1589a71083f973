"""Who joins, and how to ask a child that does not to go: a child's stop policy.

Rules of this module:

* One policy per child, said once, at `spawn` (or ``run``), and checked
  there: a wrong signal name, or a policy this OS does not have, is a clear
  error before anything starts.
* Three kinds of child: one that joins (``joins=True``: only the bus's stop
  and, past its deadline, escalation); one that may (``None``, the default:
  it gets a join grace after its spawn, then its polite request); one that
  will not (``False``: its polite request the moment a stop starts).  Naming
  a stop signal declares a child that will not join.
* The OS's side (which requests exist, what they leave as a return code,
  how they are sent) is `_platform`'s.
"""

from __future__ import annotations

from . import _platform
from ._values import FrozenValue


class StopPolicy(FrozenValue):
    """How a child is stopped when it does not hear the bus.

    Attributes:
        joins: True: it joins the bus (a member); None: it may (it gets the
            join grace, `_deadlines.join_grace_end`); False: it never will.
        request: Its polite request (`_platform.request_name`): ``SIGTERM``
            unless said otherwise on POSIX, ``TERMINATE`` on Windows.
        group: The request goes to the child's whole process group (POSIX;
            the child is started as the leader of a group of its own).
    """

    __slots__ = ("joins", "request", "group")
    joins: bool | None
    request: str
    group: bool

    def __init__(self, joins: bool | None = None, request: str | None = None, group: bool = False) -> None:
        self._init(joins, request or _platform.default_request(), group)

    @classmethod
    def declare(cls, joins: bool | None, stop_signal: str | int | None, stop_as_group: bool) -> StopPolicy:
        """The policy `spawn`'s arguments declare.

        Args:
            joins: As `joins`; None and a ``stop_signal`` mean False.
            stop_signal: The polite request, by name or number (None: the OS's default).
            stop_as_group: Send it to the child's whole process group (POSIX).

        Raises:
            ValueError: the signal does not exist here, or the arguments contradict each other.
        """
        if stop_signal is not None or stop_as_group:
            if joins:
                raise ValueError(
                    "a child that joins the bus is stopped through it: stop_signal and stop_as_group are for"
                    " children that do not join (joins=False)"
                )
            joins = False
        if stop_as_group and _platform.WINDOWS:
            raise ValueError(
                "stop_as_group is for POSIX; on Windows, stop_signal='CTRL_BREAK' reaches the child's whole"
                " process group already"
            )
        request = _platform.request_name(stop_signal) if stop_signal is not None else None
        return cls(joins, request, stop_as_group)

    def describe(self) -> str:
        """One word for ``list`` and ``tree``: ``member``, ``member/SIGTERM``
        (it may join; else its request after the join grace), or the request
        of a non-member (``SIGQUIT``, ``SIGQUIT:group`` for its whole group)."""
        if self.joins:
            return "member"
        asked = f"{self.request}:group" if self.group else self.request
        return f"member/{asked}" if self.joins is None else asked
