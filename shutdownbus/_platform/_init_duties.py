"""The duties of a process that starts others: its children's parent death,
adopting orphans as a subreaper, reaping them, and acting as a namespace's init.

Rules of this module:

* Each function says what it does on Linux, on the other POSIX systems and
  on Windows; where an OS has no such mechanism the function does nothing
  and says so by its return value.
* ``signal`` and ``threading`` are imported by the functions that use them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from ._os import LINUX, WINDOWS, prctl
from ._procfs import PROC
from ._windows import parent_pids

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import threading


_PR_SET_PDEATHSIG = 1


class ParentDeathSignal:
    """A context manager: start a child (in the block, with the ``preexec_fn``
    its ``with`` gives) that gets SIGTERM when this process dies.

    Linux (``PR_SET_PDEATHSIG``): for ``shutdownbus run``, whose command must
    not go on serving as an orphan nobody can stop if ``run`` is killed.  The
    signal follows the thread that started the child: start it from a thread
    that lives as long as this process (the main thread).  If we died between
    the fork and the ``prctl``, the child sends itself the signal.

    The ``preexec_fn`` runs Python in the forked child, with this process's
    signal handlers: a Ctrl-C in that moment would be taken by them and lost
    for the command.  So ``signals`` are blocked around the start; in the
    child they get the disposition exec would leave (the default, or ignored
    if they were ignored), then are unblocked: one that came meanwhile has
    its native effect.  Elsewhere: gives None, and blocks nothing.

    Args:
        signals: The signals to block around the start (those ``run`` forwards).
    """

    def __init__(self, signals: Iterable[int]) -> None:
        self._signals = list(signals)
        self._previous: set[int] | None = None

    def __enter__(self) -> Callable[[], None] | None:
        if not LINUX:
            return None
        import ctypes  # loaded here, not in the forked child
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
        parent = os.getpid()
        signals = self._signals
        after_exec = {s: signal.SIG_IGN if signal.getsignal(s) == signal.SIG_IGN else signal.SIG_DFL for s in signals}

        def prepare() -> None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            for signum, disposition in after_exec.items():
                signal.signal(signum, disposition)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)

        self._previous = {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, signals)}
        return prepare

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            import signal

            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)


def clear_parent_death_signal() -> None:
    """Linux: undo what `ParentDeathSignal` set up, for the calling thread (a
    member stops on the loss of its parent by itself, with its cleanup).
    Every other OS: nothing (there was nothing to undo)."""
    prctl(_PR_SET_PDEATHSIG, 0)


def start_orphan_reaper(keep: int, stop: Callable[[], bool]) -> threading.Thread | None:
    """Reap, as they exit, the children this process did not start (orphans
    it adopted as a subreaper or as a PID namespace's init), on a thread.

    A zombie is never left for long, as tini and every init reap them.  The
    exit status of ``keep`` (our command, whose status belongs to its
    ``Popen``) is never taken: the thread ends when ``keep`` exits.  It also
    ends, reaping nothing more, once ``stop()`` is true (a stop reaps what it
    reports on).

    POSIX with ``waitid`` (Linux, recent macOS): ``waitid(P_ALL, WNOWAIT)``
    shows the next exited child without reaping it.  Elsewhere: None.  The
    thread starts with every signal blocked, so that no signal meant for the
    main thread is handled on it (its Python handler would wait).
    """
    import signal
    import threading

    if WINDOWS or not hasattr(os, "waitid") or not hasattr(signal, "pthread_sigmask"):
        return None

    def reap() -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                return  # no child left at all
            if info is None or info.si_pid == keep or stop():
                return
            try:
                os.waitpid(info.si_pid, os.WNOHANG)
            except ChildProcessError:
                pass  # reaped by someone else meanwhile

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread = threading.Thread(target=reap, name="shutdownbus-reaper", daemon=True)
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread


def wait_alone_in_namespace(timeout: float) -> bool:
    """As the init (pid 1) of a PID namespace: wait up to ``timeout`` seconds
    until no other process is left in it.

    Linux, with the namespace's own /proc mounted (else there is nothing to
    tell): the pids listed in /proc.  When init exits, the kernel kills every
    process left in its namespace: an operator's command that entered it
    (``docker exec``, ``nsenter``) is given the time to finish.  Every other
    OS: True at once (no PID namespaces).

    Returns:
        True if it is alone (or cannot tell), False at the timeout.
    """
    try:
        if not LINUX or os.getpid() != 1 or os.readlink(f"{PROC}/self") != "1":
            return True
    except OSError:
        return True  # no /proc of this namespace: nothing to tell
    end = time.monotonic() + timeout
    while True:
        try:
            others = [name for name in os.listdir(PROC) if name.isdigit() and name != "1"]
        except OSError:
            return True
        if not others:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.01)


def make_child_subreaper() -> bool:
    """Linux: become a child subreaper (PR_SET_CHILD_SUBREAPER).

    Descendants orphaned below this process (a daemon that double-forked, a
    grandchild whose parent died) are then re-parented to this process instead
    of init, so they stay in the tree that a stop sweeps.  Every other OS
    has no such thing: returns False.
    """
    pr_set_child_subreaper = 36
    return prctl(pr_set_child_subreaper, 1)


def has_children() -> bool:
    """Whether this process has any child, running or exited-but-not-reaped.

    POSIX: ``waitid(P_ALL, WNOHANG | WNOWAIT)``, which reaps nothing; where
    that is missing (old macOS) answers True, so callers look closer.
    Windows: whether a running process names this one as its parent, from
    one look at the process list (``CreateToolhelp32Snapshot``, through
    ctypes: psutil is not loaded for this).  Exited children are not there,
    and a process that an earlier owner of our pid started counts: a
    false True only makes callers look closer.
    """
    if WINDOWS:
        parents = parent_pids()
        return parents is None or os.getpid() in parents
    if not hasattr(os, "waitid"):
        return True
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def reap_adopted(pids: Iterable[int]) -> dict[int, int]:
    """Collect the exit status of processes re-parented to us (subreaper).

    POSIX: returns ``{pid: returncode}`` for those that were ours and have
    exited.  Without this they would stay zombies until we exit.  Windows:
    ``{}`` (nothing is re-parented there, and no zombie is left).
    """
    found: dict[int, int] = {}
    if WINDOWS:
        return found
    for pid in pids:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if got == pid:
            found[pid] = os.waitstatus_to_exitcode(status)
    return found
