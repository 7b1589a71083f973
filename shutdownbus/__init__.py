"""shutdownbus: stop whole process trees cleanly, on every OS, without signals.

A parent starts children with `spawn`; each child calls `join` and becomes a
member of its parent's control channel.  `Child.stop` sends an authenticated
stop that every member forwards to its own children before it cleans up, and
returns a `StopReport` once the whole tree is gone.
"""

from __future__ import annotations

from . import _lazy
from ._errors import (
    AuthenticationError,
    ChannelError,
    ChildExited,
    ProcessError,
    ProtocolError,
    RegistryError,
    ShutdownBusError,
)

# Not `typing.TYPE_CHECKING`: `typing` costs every command line a few
# milliseconds.  Type checkers take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._child import Child, spawn
    from ._member import (
        StopRequested,
        join,
        joined,
        on_stop,
        ready,
        register,
        stop_reason,
        stop_requested,
        wait_for_stop,
    )
    from ._outcome import Outcome
    from ._progress import StopProgress
    from ._report import ReportEntry, StopReport

__version__ = "0.1.0"

#: Where each public name that loads on first use lives.  Importing the
#: package loads only the exceptions: the command line (``shutdownbus list``,
#: ``--help``) needs neither ZeroMQ nor the bus, a member loads them with its
#: first `join`, and only a spawning or stopping process needs subprocess,
#: psutil or the report.
_LAZY = {
    **dict.fromkeys(
        (
            "StopRequested",
            "join",
            "joined",
            "on_stop",
            "ready",
            "register",
            "stop_reason",
            "stop_requested",
            "wait_for_stop",
        ),
        "_member",
    ),
    "Outcome": "_outcome",
    "Child": "_child",
    "spawn": "_child",
    "ReportEntry": "_report",
    "StopReport": "_report",
    "StopProgress": "_progress",
    "aio": "",
    "testing": "",
}


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AuthenticationError",
    "ChannelError",
    "Child",
    "ChildExited",
    "Outcome",
    "ProcessError",
    "ProtocolError",
    "RegistryError",
    "ReportEntry",
    "ShutdownBusError",
    "StopProgress",
    "StopReport",
    "StopRequested",
    "__version__",
    "join",
    "joined",
    "on_stop",
    "ready",
    "register",
    "spawn",
    "stop_reason",
    "stop_requested",
    "wait_for_stop",
]
