"""Asking processes to go: the OS's polite request, and the return codes it leaves.

Rules of this module:

* Each function answers for the OS it runs on and says what it answers on
  POSIX and on Windows; ``signal`` is imported by the functions (``list``
  loads this package and needs no signal).
"""

from __future__ import annotations

from ._os import WINDOWS


def polite_returncode() -> int:
    """The return code of a process that died of ``Popen.terminate()`` without handling it.

    POSIX: ``-SIGTERM``.  Windows: ``Popen.terminate()`` is TerminateProcess, which
    sets exit code 1; there is no polite request that a process outside a new
    process group can receive (CTRL_BREAK_EVENT needs CREATE_NEW_PROCESS_GROUP,
    which would take native Ctrl-C away).
    """
    import signal

    return 1 if WINDOWS else -signal.SIGTERM


def polite_request_is_final() -> bool:
    """Whether the polite request (``Popen.terminate()``) ends a process outright.

    POSIX: False: SIGTERM can be handled, and a server that gets it stops its
    own workers before it exits.  Windows: True: TerminateProcess leaves the
    process no time to end its children, which are left running, orphaned.
    """
    return WINDOWS


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
