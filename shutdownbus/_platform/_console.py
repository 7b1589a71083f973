"""Console control events: the one polite request a Windows program can be sent.

Rules of this module:

* Windows: a child whose stop policy is ``CTRL_BREAK`` is started in a
  process group of its own (`_requests.creation_flags`:
  ``CREATE_NEW_PROCESS_GROUP``), the only way ``CTRL_BREAK_EVENT`` can be
  aimed at it and not at our whole console; its stop is that event
  (`send_ctrl_break`: ``SIGBREAK`` in Python and in Node.js, the console
  handler of any program).  Such a group no longer gets the console's
  Ctrl-C (Windows starts it with Ctrl-C ignored), so the process that
  spawned it passes a Ctrl-C it gets on as ``CTRL_BREAK_EVENT`` to those
  groups (`break_process_groups`, from the console control handler of
  `install_ctrl_c_forwarder`).  The event reaches only processes attached
  to the sender's console: with no console (``pythonw``, a service, a child
  started with ``DETACHED_PROCESS``) the call fails, and the caller ends the
  child's job instead.  Under wine the call fails too (WinError 12 with
  pipes as the streams, WinError 6 in a console of its own): see
  docs/security.md.
* Every other OS: there are no consoles; `send_ctrl_break` raises
  ``OSError`` without sending anything, `break_process_groups` sends
  nothing and `install_ctrl_c_forwarder` installs nothing.  POSIX process
  groups are ``start_new_session``'s business.
* ``signal`` and ``ctypes`` are loaded by the functions, on Windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._os import WINDOWS

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any


def has_console() -> bool:
    """Whether this process is attached to a console, so that a console
    control event it sends can reach anyone.

    Windows: ``GetConsoleProcessList`` counts at least this process
    (``pythonw``, a service, a process started detached or with its streams
    all pipes under wine: False).  Every other OS: False.
    """
    if not WINDOWS:
        return False
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]
    buffer = (ctypes.c_uint32 * 1)()
    return bool(kernel32.GetConsoleProcessList(buffer, 1) > 0)


def send_ctrl_break(pid: int) -> None:
    """Send ``CTRL_BREAK_EVENT`` to the console process group that ``pid``
    leads (a child started with ``CREATE_NEW_PROCESS_GROUP``).

    Windows: ``GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid)`` (what
    ``os.kill(pid, signal.CTRL_BREAK_EVENT)`` calls).  Every process of that
    group attached to our console gets it; a Python program sees
    ``SIGBREAK`` (its default handler exits at once, with
    STATUS_CONTROL_C_EXIT).  Every other OS: raises ``OSError``, sends nothing.

    Raises:
        OSError: the event could not be sent: no console here (`has_console`),
            ``pid`` leads no group on it, or wine (which fails it with
            WinError 12 or 6).
    """
    if not WINDOWS:
        raise OSError("console control events exist on Windows only")
    import os
    import signal

    os.kill(pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined,unused-ignore]


def break_process_groups(pids: Iterable[int]) -> dict[int, OSError]:
    """Pass a Ctrl-C this process got on to children that lead process groups
    of their own, which the console's Ctrl-C no longer reaches.

    Windows: `send_ctrl_break` to each pid, in order; a failure does not stop
    the others.  Every other OS: sends nothing (a terminal's Ctrl-C reaches
    its foreground process group; a child that left it is the caller's to
    signal), and returns ``{}``.

    Returns:
        The pids it could not reach, with the error of each (the caller
        escalates those: its stop's polite request failed).
    """
    failed: dict[int, OSError] = {}
    if not WINDOWS:
        return failed
    for pid in pids:
        try:
            send_ctrl_break(pid)
        except OSError as e:
            failed[pid] = e
    return failed


#: The console control handler `install_ctrl_c_forwarder` registered (kept
#: alive: Windows calls it), and what it calls.
_forwarder: Any = None
_forward_to: tuple[Callable[[], Iterable[int]], Callable[[dict[int, OSError]], object] | None] | None = None


def install_ctrl_c_forwarder(
    pids: Callable[[], Iterable[int]], failed: Callable[[dict[int, OSError]], object] | None = None
) -> bool:
    """Pass every Ctrl-C this process gets on to the process groups ``pids()``
    names, as ``CTRL_BREAK_EVENT`` (`break_process_groups`).

    Windows: registers a console control handler (``SetConsoleCtrlHandler``)
    that, on ``CTRL_C_EVENT``, calls ``pids()`` and sends each the event, on
    the thread Windows starts for it, then returns FALSE: the handlers
    registered before it still run (CPython's, which raises
    ``KeyboardInterrupt`` in the main thread), so this process takes its
    Ctrl-C as usual.  ``failed`` gets the pids it could not reach, with
    their errors.  Registered once per process; a later call replaces
    ``pids`` and ``failed``.  Ctrl-Break needs no forwarding (the console
    sends it to every process group).  Every other OS: nothing is
    registered (a terminal's Ctrl-C reaches its whole foreground group).

    Returns:
        Whether the handler is registered.
    """
    global _forwarder, _forward_to
    if not WINDOWS:
        return False
    _forward_to = (pids, failed)
    if _forwarder is not None:
        return True
    import ctypes
    from ctypes import wintypes

    def handler(ctrl_type: int) -> bool:
        if ctrl_type != 0 or _forward_to is None:  # CTRL_C_EVENT only
            return False
        get_pids, on_failure = _forward_to
        try:
            failures = break_process_groups(list(get_pids()))
            if failures and on_failure is not None:
                on_failure(failures)
        except Exception:  # noqa: S110 - nothing may escape into the system's thread; Ctrl-C still reaches us
            pass
        return False

    prototype = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)  # type: ignore[attr-defined,unused-ignore]
    callback = prototype(handler)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    kernel32.SetConsoleCtrlHandler.argtypes = [ctypes.c_void_p, wintypes.BOOL]
    kernel32.SetConsoleCtrlHandler.restype = wintypes.BOOL
    if not kernel32.SetConsoleCtrlHandler(ctypes.cast(callback, ctypes.c_void_p), True):
        return False
    _forwarder = callback
    return True
