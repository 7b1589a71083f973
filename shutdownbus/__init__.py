"""shutdownbus: stop whole process trees cleanly, on every OS, without signals.

A parent starts children with `spawn`; each child calls `join` and becomes a
member of its parent's control channel.  `Child.stop` sends an authenticated
stop that every member forwards to its own children before it cleans up, and
returns a `StopReport` once the whole tree is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import (
    AuthenticationError,
    ChannelError,
    ChildExited,
    ProcessError,
    ProtocolError,
    RegistryError,
    ShutdownBusError,
)
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
from ._protocol import Outcome

if TYPE_CHECKING:
    from ._child import Child, spawn
    from ._report import ReportEntry, StopReport

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # What only a spawning or stopping process needs loads on first use, so
    # that a member that only joins does not import (and, at its exit, tear
    # down) subprocess, asyncio or psutil.
    import importlib

    if name in ("aio", "testing"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("Child", "spawn"):
        return getattr(importlib.import_module(f"{__name__}._child"), name)
    if name in ("ReportEntry", "StopReport"):  # needed only once something is stopped
        return getattr(importlib.import_module(f"{__name__}._report"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
