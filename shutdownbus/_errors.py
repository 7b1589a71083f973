"""The shutdownbus exception family.

Every error the library raises on purpose derives from `ShutdownBusError`.
Messages say what went wrong and what to do about it, and never contain a
secret: exceptions end up in logs and tracebacks.
"""

from __future__ import annotations


class ShutdownBusError(Exception):
    """Base class of every error raised by shutdownbus."""


class ProtocolError(ShutdownBusError):
    """A frame broke the wire protocol (bad encoding, type, size or order).

    The frame is dropped; the channel stays usable.
    """


class AuthenticationError(ProtocolError):
    """A peer failed to prove that it holds the channel's secret."""


class ChannelError(ShutdownBusError):
    """The control channel could not be set up or used (transport failure)."""


class RegistryError(ShutdownBusError):
    """The registry of named trees cannot be used: missing name, name taken,
    unsafe or unreadable directory."""


class ProcessError(ShutdownBusError):
    """An error about one process; carries its ``pid`` and ``name``.

    Args:
        message: What happened and what to do about it.
        pid: The process id, when known.
        name: The process name, when known.
    """

    def __init__(self, message: str, *, pid: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args[0]!r}, pid={self.pid!r}, name={self.name!r})"


class ChildExited(ProcessError):
    """The child exited before it did what was waited for (for example ``ready()``).

    Args:
        message: What happened and what to do about it.
        pid: The child's process id.
        name: The child's name.
        returncode: The child's exit status (negative: killed by that signal on POSIX).
        stderr_tail: The last lines of the child's stderr, when it was captured.
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        name: str | None = None,
        returncode: int | None = None,
        stderr_tail: str | None = None,
    ) -> None:
        super().__init__(message, pid=pid, name=name)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
