"""Asking processes to go: the OS's polite requests, and the return codes they leave.

Rules of this module:

* A polite request is named by a string, the same on the command line, in
  the report and in `spawn`: a signal's name on POSIX (``SIGTERM``,
  ``SIGQUIT``, ...), ``TERMINATE`` (TerminateProcess) or ``CTRL_BREAK`` (the
  console's Ctrl-Break, to a child in a process group of its own) on
  Windows.  `request_name` turns what a user wrote into one, or says what
  to write instead.
* Each function answers for the OS it runs on and says what it answers on
  POSIX and on Windows; ``signal`` is imported by the functions (``list``
  loads this package and needs no signal).
"""

from __future__ import annotations

import os

from ._os import WINDOWS

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import subprocess
    from typing import Any

#: Windows: TerminateProcess, which ends a process outright.
TERMINATE = "TERMINATE"
#: Windows: the console's Ctrl-Break, sent to a process group of the child's own.
CTRL_BREAK = "CTRL_BREAK"
_WINDOWS_REQUESTS = {
    "TERMINATE": TERMINATE,
    "SIGTERM": TERMINATE,
    "TERM": TERMINATE,
    "CTRL_BREAK": CTRL_BREAK,
    "CTRL_BREAK_EVENT": CTRL_BREAK,
    "SIGBREAK": CTRL_BREAK,
    "BREAK": CTRL_BREAK,
}


def default_request() -> str:
    """The polite request of a child whose stop policy names none.

    POSIX: ``SIGTERM``.  Windows: ``TERMINATE`` (a child outside a process
    group of its own can receive no console event but the Ctrl-C that the
    whole console gets).
    """
    return TERMINATE if WINDOWS else "SIGTERM"


def request_name(value: str | int) -> str:
    """The canonical name of the polite request ``value`` names.

    POSIX: a signal, by number or by name, with or without ``SIG``, in any
    case (``QUIT``, ``sigquit``, ``3``): its name (``SIGQUIT``).  SIGKILL and
    SIGSTOP are refused: they cannot be handled, so they ask nothing.
    Windows: ``CTRL_BREAK`` (also ``SIGBREAK``, ``BREAK``) or ``TERMINATE``
    (also ``SIGTERM``, ``TERM``).

    Raises:
        ValueError: no such request on this OS (the message lists what there is).
    """
    import signal

    text = str(value).strip().upper()
    if WINDOWS:
        if text in _WINDOWS_REQUESTS:
            return _WINDOWS_REQUESTS[text]
        raise ValueError(f"no stop signal {value!r} on Windows: use CTRL_BREAK or TERMINATE")
    try:
        found = signal.Signals(int(text)) if text.lstrip("-").isdigit() else signal.Signals[
            text if text.startswith("SIG") else "SIG" + text
        ]
    except (KeyError, ValueError):
        raise ValueError(
            f"no stop signal {value!r} on this system: use a signal's name or number, such as TERM, QUIT, INT or HUP"
        ) from None
    if found in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f"{found.name} cannot be a stop signal: it cannot be handled (escalation kills anyway)")
    return found.name


def request_returncode(request: str) -> int:
    """The return code of a process that died of the polite request ``request`` without handling it.

    POSIX: minus the signal's number.  Windows: 1 for ``TERMINATE``
    (TerminateProcess's exit code), STATUS_CONTROL_C_EXIT for ``CTRL_BREAK``.
    """
    import signal

    if WINDOWS:
        return 1 if request == TERMINATE else interrupted_returncode()
    return -int(signal.Signals[request])


def request_is_final(request: str) -> bool:
    """Whether the polite request ``request`` ends a process outright.

    POSIX: False: a signal can be handled, and a server that gets it stops its
    own workers before it exits.  Windows: True for ``TERMINATE``: it leaves
    the process no time to end its children, which are left running,
    orphaned; False for ``CTRL_BREAK``.
    """
    return WINDOWS and request == TERMINATE


#: CREATE_NEW_PROCESS_GROUP (Windows' process creation flag).
_CREATE_NEW_PROCESS_GROUP = 0x00000200


def creation_flags(request: str) -> int:
    """The ``creationflags`` a child needs to receive the polite request ``request``.

    Windows: ``CREATE_NEW_PROCESS_GROUP`` for ``CTRL_BREAK`` (console events
    go to a whole group, and the console's own group holds us too); 0 for
    ``TERMINATE``.  POSIX: 0 (``Popen`` takes no creation flags there).
    """
    return _CREATE_NEW_PROCESS_GROUP if WINDOWS and request == CTRL_BREAK else 0


def send_request(child: subprocess.Popen[Any], request: str, *, group: bool = False) -> bool:
    """Send our own child ``child`` the polite request ``request`` if it still runs.

    POSIX: the signal, to the child, or with ``group`` to its whole process
    group (the child leads one of its own: `spawn` made it so).  Windows:
    ``TERMINATE`` is ``Popen.terminate()``; ``CTRL_BREAK`` is the console's
    Ctrl-Break to the child's process group (``GenerateConsoleCtrlEvent``).
    The child is not reaped meanwhile (its pid cannot be reused).

    Returns:
        Whether it was sent (False: the child had exited, or the OS refused).
    """
    import signal

    if child.poll() is not None:
        return False
    try:
        if WINDOWS:
            if request == CTRL_BREAK:
                child.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined,unused-ignore]
            else:
                child.terminate()
        elif group:
            os.killpg(child.pid, signal.Signals[request])
        else:
            child.send_signal(signal.Signals[request])
    except OSError:
        return False
    return True


def polite_returncode() -> int:
    """The return code of a process that died of the default polite request without handling it.

    POSIX: ``-SIGTERM``.  Windows: 1, the exit code TerminateProcess leaves
    (see `default_request`).
    """
    return request_returncode(default_request())


def stopped_returncodes() -> tuple[int, ...]:
    """Besides 0, the return codes of a member that ended well after a stop.

    It may leave the way Ctrl-C's KeyboardInterrupt does (`interrupted_returncode`,
    as ``asyncio.run`` ends), or turn the stop into its own polite request and
    die of it once done (uvicorn re-raises the SIGTERM it handled).

    POSIX: ``-SIGINT`` and ``-SIGTERM``.  Windows: STATUS_CONTROL_C_EXIT
    only: no process dies of a SIGTERM there, and the exit code 1 that
    TerminateProcess leaves (`polite_returncode`) is also that of
    ``sys.exit(1)``, a failed cleanup.
    """
    import signal

    if WINDOWS:
        return (interrupted_returncode(),)
    return (interrupted_returncode(), -signal.SIGTERM)


def join_grace() -> float:
    """Seconds after its spawn during which a child that has not joined yet
    may still be starting (see `_deadlines.join_grace_end`).

    POSIX: 1 s, some ten times what a member needs to import and join.
    Windows: 3 s: processes start slower there (an antivirus scans each
    new one), and the polite request that ends the grace is TerminateProcess,
    which leaves a member that was about to join no cleanup at all.
    """
    return 3.0 if WINDOWS else 1.0


def interrupted_returncode() -> int:
    """The return code of a Python program that exited through an uncaught
    KeyboardInterrupt (as ``asyncio.run`` ends after Ctrl-C, or a stop).

    POSIX: ``-SIGINT`` (CPython re-raises SIGINT to die of it).  Windows:
    STATUS_CONTROL_C_EXIT.
    """
    import signal

    return 0xC000013A if WINDOWS else -signal.SIGINT
