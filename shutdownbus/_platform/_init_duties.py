"""The duties of a process that starts others: its children's parent death,
adopting orphans as a subreaper, reaping them, and acting as a namespace's init.

Rules of this module:

* Each function says what it does on Linux, on the other POSIX systems and
  on Windows; where an OS has no such mechanism the function does nothing
  and says so by its return value.
* ``signal`` and ``threading`` are imported by the functions that use them.
"""

from __future__ import annotations

import _thread
import os
import time
from collections.abc import Callable, Iterable

from ._os import LINUX, WINDOWS, prctl
from ._procfs import PROC
from ._windows import parent_pids

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import threading
    from typing import Any, TypeVar

    T = TypeVar("T")


_PR_SET_PDEATHSIG = 1


def child_preparation(
    death_signal: str | None, *, own_group: bool = False, then: Callable[[], object] | None = None
) -> Callable[[], object] | None:
    """The ``preexec_fn`` that `spawn` starts each child with, or None if it needs none.

    Linux: the child gets ``death_signal`` (a signal's name, see
    `_requests.request_name`) when this process dies (``PR_SET_PDEATHSIG``),
    so that a child that cannot hear the bus does not serve on as an orphan
    nobody can stop (a member clears it when it joins: it stops on the loss
    of its parent by itself, with its cleanup).  The kernel sends it when the
    *thread* that started the child exits: start children from a thread that
    lives as long as this process (`in_a_lasting_thread`).  If this process
    died between the fork and the ``prctl``, the child ends itself at once
    (it has not run its program yet: SIGKILL costs it nothing).
    POSIX: with ``own_group``, the child leads a process group of its own
    (``setpgid``), so that a request can reach the whole group.
    Every OS with ``preexec_fn`` (not Windows): then ``then()``, the caller's own.
    Windows: ``then`` itself (``Popen`` refuses a ``preexec_fn`` there, as it
    should be told), and nothing more.  Other POSIX systems have no
    parent-death signal.
    """
    if WINDOWS:
        return then
    import signal

    pdeathsig = int(signal.Signals[death_signal]) if LINUX and death_signal is not None else 0
    if not pdeathsig and not own_group and then is None:
        return None
    libc_prctl = None
    if pdeathsig:
        import ctypes  # loaded here, not in the forked child

        libc_prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def prepare() -> None:
        if libc_prctl is not None:
            libc_prctl(_PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0)
            if os.getppid() != parent:
                os.kill(os.getpid(), kill)
        if own_group and os.getpgid(0) != os.getpid():  # start_new_session made it a leader already
            os.setpgid(0, 0)
        if then is not None:
            then()

    return prepare


class SignalsHeld:
    """A context manager: start a child in the block with these signals held
    back, and give it the ``preexec_fn`` part that hands them back.

    ``shutdownbus run`` handles SIGINT and SIGTERM itself; the ``preexec_fn``
    runs Python in the forked child with this process's handlers, so a
    Ctrl-C in that moment would be taken by them and lost for the command.
    So they are blocked around the start; in the child they get the
    disposition exec would leave (the default, or ignored if they were
    ignored), then are unblocked: one that came meanwhile has its native
    effect.  POSIX only (with ``pthread_sigmask``); Windows: gives None, and
    blocks nothing.

    Args:
        signals: The signals to hold back around the start.
    """

    def __init__(self, signals: Iterable[int]) -> None:
        self._signals = list(signals)
        self._previous: set[int] | None = None

    def __enter__(self) -> Callable[[], None] | None:
        import signal

        if WINDOWS or not hasattr(signal, "pthread_sigmask"):
            return None
        signals = self._signals
        after_exec = {s: signal.SIG_IGN if signal.getsignal(s) == signal.SIG_IGN else signal.SIG_DFL for s in signals}

        def hand_back() -> None:
            for signum, disposition in after_exec.items():
                signal.signal(signum, disposition)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

        self._previous = {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, signals)}
        return hand_back

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            import signal

            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)


_spawner: list[Any] = []  # [queue, thread], once started
_spawner_lock = _thread.allocate_lock()


def in_a_lasting_thread(start: Callable[[], T]) -> T:
    """``start()`` on a thread that lives as long as this process, and its result.

    Linux: the parent-death signal of a child follows the thread that started
    it (see `child_preparation`): a child started by a short-lived thread
    would get it when that thread ends.  The main thread lives as long as the
    process, so there ``start()`` simply runs; from any other thread it runs
    on one thread kept for this (``shutdownbus-spawner``, started on first
    use, never ended), with the calling thread's signal mask (a child
    inherits the mask of the thread that forks it, through its exec), and
    its exception, if any, is raised here.  Every other OS: ``start()`` runs
    in the calling thread.
    """
    import signal
    import threading

    from .._threads import call_on

    if not LINUX or threading.current_thread() is threading.main_thread():
        return start()
    import queue

    with _spawner_lock:
        if not _spawner:
            jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

            def serve() -> None:
                while True:
                    jobs.get()()

            thread = threading.Thread(target=serve, name="shutdownbus-spawner", daemon=True)
            thread.start()
            _spawner[:] = [jobs, thread]
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # the caller's, unchanged

    def with_the_callers_mask() -> T:
        previous = signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            return start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return call_on(_spawner[0].put, with_the_callers_mask)


def _forget_the_spawner() -> None:
    global _spawner_lock
    _spawner.clear()  # a forked child has no such thread
    _spawner_lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_spawner)


def clear_parent_death_signal() -> None:
    """Linux: undo what `child_preparation` set up, for the calling thread (a
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


def orphans_stay_in_the_tree() -> bool:
    """Whether what is orphaned below a spawner comes to it (or to the
    nearest spawner above that still runs), to be waited for and reaped.

    Linux: True, every spawner being a subreaper (`make_child_subreaper`).
    Every other OS: False (macOS gives orphans to launchd, and Windows
    re-parents nothing).
    """
    return LINUX


def is_unreaped_child(pid: int) -> bool:
    """Whether ``pid`` is a child of ours, running or exited but not reaped:
    its pid cannot be reused until we reap it.

    POSIX: ``waitid(WNOHANG | WNOWAIT)``, which reaps nothing.  Windows:
    False (nothing is reaped there).
    """
    if WINDOWS or not hasattr(os, "waitid"):
        return False
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def exit_status_unreaped(pid: int) -> int | None:
    """The exit status of our child ``pid`` if it has exited, without reaping
    it: its zombie stays for whoever collects it later (the stop's top, once
    it is re-parented there: `_stop._reap`).

    POSIX: ``waitid(WNOHANG | WNOWAIT)``; the status as `subprocess` gives it
    (``-N`` for a death by signal N).  None while it runs, or if it is not
    our child (reaped already).  Windows: None (see `is_unreaped_child`).
    """
    if WINDOWS or not hasattr(os, "waitid"):
        return None
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return None
    if info is None or info.si_pid != pid:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


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
