"""Everything that differs between operating systems, in one place.

Rules of this module:

* Callers never test ``sys.platform`` themselves; they call a function here.
* Each function documents what it does on POSIX, on Linux in particular, and
  on Windows.
* ``list`` loads this module: at its top it imports only modules that cost
  next to nothing or that every command line has loaded already (functools,
  with argparse).  `signal`, `threading` and `select` are imported by the
  functions that use them; by then a process that calls them has them
  loaded (a member's bus, ``run``, a stop).
"""

from __future__ import annotations

import _thread
import errno
import functools
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from types import FrameType

from . import _cpython

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import subprocess
    import threading
    from typing import Any

WINDOWS = sys.platform == "win32"
LINUX = sys.platform.startswith("linux")


# -- waking the main thread ---------------------------------------------------
#
# `_thread.interrupt_main()` only sets a flag that the main thread checks
# between bytecodes: a main thread blocked in time.sleep(60) would wait out
# the sleep.  On POSIX a real signal sent to the main thread makes its system
# call fail with EINTR; CPython then runs the Python-level handlers of tripped
# signals before it retries (PEP 475), so a handler that raises ends the wait.
# Windows has no signal for a thread, but every wait that a console Ctrl-C
# ends in the main thread also watches the interpreter's SIGINT event, and
# runs the handlers of tripped signals when it is set (`wake_main_thread`).
# Either way the handler is ours, on a signal of our own: never SIGINT, whose
# handler belongs to the user and to asyncio, so that a stop is never taken
# for a Ctrl-C, nor the reverse; and never a signal the program handles
# itself, whose handler must not run for our wake-ups.


@functools.cache
def wake_signal_choices() -> tuple[int, ...]:
    """The signals `install_main_thread_waker` may take, best first: real-time
    signals on Linux, SIGUSR2 then SIGUSR1 on macOS, SIGTERM on Windows.  It
    takes the first unless the program handles it."""
    import signal

    if WINDOWS:
        # Windows never delivers SIGTERM (os.kill and Popen.terminate are
        # TerminateProcess, the console sends SIGINT and SIGBREAK): a handler
        # on it runs only when this process trips it.  The other signals
        # Python may handle there are Ctrl-Break's and the C runtime's faults
        # (faulthandler's).
        return (int(signal.SIGTERM),)
    if hasattr(signal, "SIGRTMIN") and hasattr(signal, "SIGRTMAX"):
        # Real-time signals are rarely used by Python programs; these are
        # away from both ends, which libraries tend to pick.
        return tuple(range(int(signal.SIGRTMIN) + 5, int(signal.SIGRTMAX) - 4))
    return (int(signal.SIGUSR2), int(signal.SIGUSR1))


class _Waker:
    """The handler `install_main_thread_waker` puts on its signal.

    Without a program's handler to chain to, every delivery runs
    ``raise_pending`` (which raises only when a stop is pending).  Chained,
    only the deliveries `wake_main_thread` caused do; any other goes to the
    program's handler, as if we were not there.
    """

    def __init__(self, signum: int, chained: Callable[[int, FrameType | None], Any] | None,
                 raise_pending: Callable[[], None]) -> None:  # fmt: skip
        self.signum = signum
        self.chained = chained
        self.raise_pending = raise_pending
        self.woken = False  # set by wake_main_thread, taken by the handler

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.woken or self.chained is None:
            self.woken = False
            self.raise_pending()
        else:
            self.chained(signum, frame)


_waker: _Waker | None = None
_set_sigint_event: Callable[[], object] | None = None  # Windows, see _sigint_event_setter


def install_main_thread_waker(raise_pending: Callable[[], None]) -> bool:
    """Arrange for `wake_main_thread` to run ``raise_pending`` in the main thread.

    Must be called from the main thread (the only one where Python sets
    signal handlers).

    Every OS: the handler goes on the first of `wake_signal_choices` that has none
    (its disposition is the default).  If the program handles all of them,
    it goes on the first, and chains to the program's handler: that one
    still runs for every delivery that `wake_main_thread` did not cause.
    (On Windows, where SIGTERM is the only candidate, that is a program that
    set a SIGTERM handler before it joined.)  A signal that is ignored, or
    handled from C (not by a Python function), is never taken.
    A program that sets its own handler on that signal later replaces ours:
    its handler is then never run for a wake-up, see `wake_main_thread`.

    Windows: also resolves, now rather than on a stop's path, how to set the
    interpreter's SIGINT event (ctypes; see `wake_main_thread`).

    Returns:
        True if installed; False if it cannot be (another thread, or no
        signal we may take): `raise_in_main_thread` is then the only way.
    """
    import signal
    import threading

    global _waker, _set_sigint_event
    if threading.current_thread() is not threading.main_thread():
        return False
    if _waker is not None and signal.getsignal(_waker.signum) is _waker:
        return True
    choices = wake_signal_choices()
    handlers = {signum: signal.getsignal(signum) for signum in choices}
    free = [signum for signum, handler in handlers.items() if handler == signal.SIG_DFL]
    chained = None
    if free:
        signum = free[0]
    elif callable(program := handlers[choices[0]]):
        signum, chained = choices[0], program
    else:
        return False
    waker = _Waker(signum, chained, raise_pending)
    signal.signal(signum, waker)
    _waker = waker
    if WINDOWS and _set_sigint_event is None:
        _set_sigint_event = _sigint_event_setter()
    return True


def wake_signal() -> int | None:
    """The signal the installed waker uses (None: none is installed)."""
    return None if _waker is None else _waker.signum


def wake_main_thread(*, raising: bool = False) -> bool:
    """Make the main thread run the ``raise_pending`` of `install_main_thread_waker`
    at once, even if it is blocked.

    POSIX: ``pthread_kill`` of the waker's signal to the main thread.  The
    system call it blocks in (a sleep, a lock, a read, a wait) fails with
    EINTR, and CPython runs the handler before it would retry (PEP 475):
    within microseconds.

    Windows: ``_thread.interrupt_main`` trips the handler (the main thread
    runs it at its next check; an asyncio loop wakes at once, through the
    signal's wake-up socket).  With ``raising``, the interpreter's SIGINT
    event is set too: the waits that a console Ctrl-C ends in the main thread
    watch it, and run tripped handlers when it fires (``time.sleep``,
    ``_winapi.WaitForMultipleObjects`` as in ``multiprocessing.connection.wait``,
    multiprocessing's locks, every lock from Python 3.14); and a main thread
    waiting in ``threading.Condition.wait`` (``Event.wait``, ``Queue.get``:
    a lock acquire, which before 3.14 nothing ends, not even Ctrl-C) is
    released (`_cpython.release_condition_wait`).  Within milliseconds.
    SIGINT's own handler is never run.  What neither Ctrl-C nor this ends
    (``Thread.join``, a plain ``Popen.wait()``, blocking sockets, console
    reads) is listed in docs/lifecycle.md.

    Args:
        raising: The handler will raise (not merely cancel asyncio's main
            task, or do nothing): only then may Windows waits be ended, since
            the SIGINT event makes some of them fail with InterruptedError
            when no handler raises, and a released ``Condition.wait`` would
            return as if notified.  Ignored on POSIX.

    Returns:
        False if nothing was sent: no waker is installed, or the program has
        replaced its handler since (its handler must not run for us).  The
        caller then falls back to `raise_in_main_thread`.
    """
    import signal
    import threading

    waker, main = _waker, threading.main_thread()
    if waker is None or main.ident is None:
        return False
    installed: object = signal.getsignal(waker.signum)
    if installed is not waker:
        return False
    waker.woken = True
    if not WINDOWS:
        signal.pthread_kill(main.ident, waker.signum)
        return True
    _thread.interrupt_main(signal.Signals(waker.signum))
    if raising:
        if _set_sigint_event is not None:
            _set_sigint_event()
        _cpython.release_condition_wait(main)
    return True


def _sigint_event_setter() -> Callable[[], object] | None:
    """Windows: a function that sets the interpreter's SIGINT event
    (``_PyOS_SigintEvent()``, which CPython exports), or None where that
    cannot be found (then only the waits that check signals by themselves,
    and ``Condition.wait``, are ended)."""
    try:
        import ctypes

        sigint_event = ctypes.pythonapi._PyOS_SigintEvent
        sigint_event.argtypes = []
        sigint_event.restype = ctypes.c_void_p
        handle = sigint_event()
        set_event = ctypes.WinDLL("kernel32").SetEvent  # type: ignore[attr-defined,unused-ignore]
        set_event.argtypes = [ctypes.c_void_p]
        set_event.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):
        return None
    if not handle:
        return None
    return lambda: set_event(handle)


class CaughtSignals:
    """The numbers of the signals that Python handlers catch, as CPython's
    C-level handler writes them (``signal.set_wakeup_fd``), for the bus thread.

    Why: a signal caught by the main thread just before it enters a blocking
    system call (``epoll_wait`` under an asyncio loop, typically) has its
    Python handler deferred until that call returns, which may be never:
    CPython checks for pending handlers before the call, and the signal did
    not interrupt it.  ``asyncio.run`` sets no wake-up descriptor of its own.
    Knowing that a signal was caught, the bus thread can nudge the main
    thread (`wake_main_thread`) a moment later, so that the call fails with
    EINTR and the handler runs.

    POSIX only (Windows wakes no thread with a signal; its wake-up descriptor
    must be a socket); made by the main thread, once a waker is installed,
    and only if the program uses no wake-up descriptor (one it sets later
    replaces this one, and does the same job for its own loop).
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read, self._write = read_fd, write_fd

    @classmethod
    def start(cls) -> CaughtSignals | None:
        """Make the descriptor and hand it to CPython; None where that cannot be done."""
        import signal
        import threading

        if WINDOWS or _waker is None or threading.current_thread() is not threading.main_thread():
            return None
        read_fd, write_fd = os.pipe()
        for fd in (read_fd, write_fd):
            os.set_blocking(fd, False)
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            previous = None
        if previous != -1:  # the program has its own (or it failed): leave it
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return None
        return cls(read_fd, write_fd)

    def fileno(self) -> int:
        """The descriptor to poll for reading."""
        return self._read

    def read(self) -> list[int]:
        """The numbers of the signals caught since the last read."""
        data = b""
        try:
            while chunk := os.read(self._read, 512):
                data += chunk
        except BlockingIOError:
            pass
        return list(data)

    def forget_after_fork(self) -> None:
        """In a forked child: stop writing into the parent's descriptor."""
        import signal

        try:
            if signal.set_wakeup_fd(-1) != self._write:
                signal.set_wakeup_fd(self._write)  # not ours any more: put it back
        except (ValueError, OSError):
            pass


def raise_in_main_thread(exc_type: type[BaseException]) -> None:
    """Schedule ``exc_type`` in the main thread, when `wake_main_thread` cannot
    be used: the program handles every wake signal in a way we cannot chain
    to, replaced our handler after `install_main_thread_waker`, or called
    ``join()`` from another thread.

    Every OS: ``PyThreadState_SetAsyncExc`` makes the main thread raise at
    its next bytecode, and a main thread waiting in ``threading.Condition.wait``
    (``Event.wait``, ``Queue.get``, ...) is released so that it gets there at
    once (`_cpython.release_condition_wait`).  A main thread blocked in a
    system call (``time.sleep``, a read, ``Popen.wait()``) raises only when
    the call returns: the rare case docs/lifecycle.md describes.
    """
    import ctypes  # only on this fallback path
    import threading

    main = threading.main_thread()
    if main.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(main.ident), ctypes.py_object(exc_type))
        _cpython.release_condition_wait(main)


# -- waking the bus thread ------------------------------------------------------


class WakeChannel:
    """A file descriptor that the bus thread polls and any thread can make readable.

    Linux: one eventfd (one descriptor).  Elsewhere: a socket pair (on
    Windows, ``zmq.poll`` can wait on sockets only).  Either costs less than a
    pair of inproc zmq sockets, which hold a mailbox descriptor each.
    """

    def __init__(self) -> None:
        self._pair: tuple[Any, Any] | None = None
        try:
            self._rx = self._tx = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except (AttributeError, OSError):  # no eventfd here, or a sandbox forbids it
            import socket

            pair = socket.socketpair()
            for end in pair:
                end.setblocking(False)
            self._pair = pair
            self._rx = pair[0].fileno()

    def fileno(self) -> int:
        """The descriptor to poll for reading."""
        return self._rx

    def set(self) -> None:
        """Make the descriptor readable (any thread; never blocks)."""
        try:
            if self._pair is None:
                os.eventfd_write(self._tx, 1)
            else:
                self._pair[1].send(b"\0")
        except BlockingIOError:
            pass  # readable already, many times over

    def clear(self) -> None:
        """Make the descriptor unreadable again (the polling thread)."""
        try:
            if self._pair is None:
                os.eventfd_read(self._rx)
            else:
                while self._pair[0].recv(4096):
                    pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close the descriptor(s); only once nobody polls them."""
        if self._pair is None:
            os.close(self._rx)
        else:
            for end in self._pair:
                end.close()


# -- waiting for processes ------------------------------------------------------


def wait_any_exit(procs: Iterable[subprocess.Popen[bytes]], timeout: float) -> None:
    """Block until one of ``procs`` exits or ``timeout`` seconds pass.

    Linux: waits on pidfds, so an exit is seen at once with no polling.
    Elsewhere: polls with a short interval (5 ms), which is what
    ``Popen.wait(timeout)`` does too.
    """
    import select

    procs = [p for p in procs if p.returncode is None]
    if not procs or timeout <= 0:
        return
    if LINUX and hasattr(os, "pidfd_open"):
        fds: list[int] = []
        try:
            for p in procs:
                try:
                    fds.append(os.pidfd_open(p.pid))
                except ProcessLookupError:
                    return  # already gone
            select.select(fds, [], [], timeout)
            return
        except OSError:
            pass  # pidfds unavailable (old kernel, seccomp): poll instead
        finally:
            for fd in fds:
                os.close(fd)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.poll() is not None for p in procs):
            return
        time.sleep(0.005)


_PIDFDS = LINUX and hasattr(os, "pidfd_open")  # waited on with select.poll, which Linux always has


def exit_fd(pid: int) -> int | None:
    """Linux: a descriptor that becomes readable when ``pid`` exits (a pidfd),
    to poll beside sockets; None elsewhere, or if it cannot be opened (the
    caller then looks at the process now and then).  The caller closes it."""
    if not _PIDFDS:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


class ExitWatch:
    """Processes watched for their exit, and when each exit was seen.

    Linux: one pidfd per process, all polled at once, so a thread in `wait`
    sees an exit the moment it happens.  Elsewhere, past `MAX_PIDFDS`, or
    when a pidfd cannot be opened (no descriptors left, a sandbox): each
    process's ``is_gone()`` is asked every `POLL_INTERVAL` seconds while a
    thread waits.

    An exit's time is recorded when it was seen at most `PRECISION` seconds
    after the look before it (a thread was waiting, or looked that often);
    otherwise it is recorded as None: unknown, never guessed.

    One thread at a time uses a watch.
    """

    MAX_PIDFDS = 256
    POLL_INTERVAL = 0.005
    PRECISION = 0.05

    def __init__(self) -> None:
        import select

        self._fds: dict[int, int] = {}  # pid -> pidfd
        self._pids: dict[int, int] = {}  # pidfd -> pid
        self._asked: dict[int, Callable[[], bool]] = {}  # pid -> is_gone, for those without a pidfd
        self._poller = select.poll() if _PIDFDS else None
        self._last_look = time.monotonic()
        #: pid -> `time.monotonic` when it was seen gone (None: unknown).
        self.exits: dict[int, float | None] = {}

    def add(self, pid: int, is_gone: Callable[[], bool]) -> None:
        """Watch ``pid``, a process known to run now.

        Args:
            pid: The process.
            is_gone: Whether it is gone (a zombie counts as gone), asked when it has no pidfd.
        """
        import select

        if pid in self.exits or pid in self._fds or pid in self._asked:
            return
        if self._poller is not None and len(self._fds) < self.MAX_PIDFDS:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                pass  # gone already, or no descriptor for it: ask is_gone instead
            else:
                self._fds[pid], self._pids[fd] = fd, pid
                self._poller.register(fd, select.POLLIN)
                return
        self._asked[pid] = is_gone

    def watching(self) -> bool:
        """Whether some watched process has not been seen gone yet."""
        return bool(self._fds or self._asked)

    def wait(self, timeout: float) -> list[int]:
        """Wait up to ``timeout`` seconds for exits; return the pids newly seen gone.

        Returns as soon as at least one exit was seen (at once, for exits
        that happened before the call).
        """
        end = time.monotonic() + timeout
        found = self._look(0.0)
        while not found and self.watching():
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            found = self._look(min(remaining, self.POLL_INTERVAL) if self._asked else remaining)
        return found

    def _look(self, block: float) -> list[int]:
        found: list[int] = []
        if self._fds and self._poller is not None:
            ready = self._poller.poll(math.ceil(block * 1000))
            now = time.monotonic()
            # A blocking look that returned early saw the exit as it happened.
            exact = block > 0
            for fd, _ in ready:
                pid = self._pids[fd]
                self._seen_gone(pid, now, exact)
                found.append(pid)
        elif block > 0:
            time.sleep(block)
        now = time.monotonic()
        for pid, is_gone in list(self._asked.items()):
            if is_gone():
                self._seen_gone(pid, now, False)
                found.append(pid)
        self._last_look = now
        return found

    def _seen_gone(self, pid: int, now: float, exact: bool) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None and self._poller is not None:
            del self._pids[fd]
            self._poller.unregister(fd)
            os.close(fd)
        self._asked.pop(pid, None)
        self.exits[pid] = now if exact or now - self._last_look <= self.PRECISION else None

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the pidfds."""
        for fd in list(self._pids):
            if self._poller is not None:
                self._poller.unregister(fd)
            os.close(fd)
        self._fds.clear()
        self._pids.clear()
        self._asked.clear()


# -- asking processes to go -----------------------------------------------------


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


def _prctl(option: int, value: int | bytes) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


#: The name a joined member's bus thread takes (at most 15 bytes: Linux's limit).
MEMBER_THREAD_NAME = "shutdownbus:mbr"


def mark_member() -> None:
    """Let other processes see that this process joined the bus.

    Linux: the calling thread (the bus thread) takes `MEMBER_THREAD_NAME`
    as its name, which ``/proc/PID/task/TID/comm`` shows to anyone, and
    `joined_the_bus` looks for.  Elsewhere: nothing.
    """
    if LINUX:
        pr_set_name = 15
        _prctl(pr_set_name, MEMBER_THREAD_NAME.encode())


def joined_the_bus(pid: int) -> bool | None:
    """Whether process ``pid`` joined the bus (see `mark_member`); None where
    that cannot be told (not Linux, or the process is gone)."""
    if not LINUX:
        return None
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    marker = MEMBER_THREAD_NAME.encode()
    try:
        return any((_read_proc_file(f"/proc/{pid}/task/{tid}/comm") or b"").strip() == marker for tid in tids)
    except OSError:
        return None


def pid_namespace() -> str:
    """This process's PID namespace, as ``DEV:INODE`` of ``/proc/self/ns/pid``
    (Linux); empty elsewhere.  Two processes with the same value see the same
    pids."""
    if not LINUX:
        return ""
    try:
        st = os.stat("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}"


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
    """Linux: undo `parent_death_signal` for the calling thread (a member
    stops on the loss of its parent by itself, with its cleanup)."""
    if LINUX:
        _prctl(_PR_SET_PDEATHSIG, 0)


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
    (``docker exec``, ``nsenter``) is given the time to finish.

    Returns:
        True if it is alone (or cannot tell), False at the timeout.
    """
    if not LINUX or os.getpid() != 1 or os.readlink("/proc/self") != "1":
        return True
    end = time.monotonic() + timeout
    while True:
        others = [name for name in os.listdir("/proc") if name.isdigit() and name != "1"]
        if not others:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.01)


def make_child_subreaper() -> bool:
    """Linux: become a child subreaper (PR_SET_CHILD_SUBREAPER).

    Descendants orphaned below this process (a daemon that double-forked, a
    grandchild whose parent died) are then re-parented to this process instead
    of init, so they stay in the tree that a stop sweeps.  Other systems have
    no such thing; returns False there.
    """
    if not LINUX:
        return False
    pr_set_child_subreaper = 36
    return _prctl(pr_set_child_subreaper, 1)


def read_available(fd: int, seconds: float) -> bytes:
    """Read from a pipe until EOF or until ``seconds`` pass, whichever is first.

    POSIX: select() bounds the wait.  Windows: pipes cannot be selected;
    ``PeekNamedPipe`` tells how much can be read without blocking, and the
    pipe is looked at every 10 ms.
    """
    import select

    if WINDOWS:
        return _read_available_windows(fd, seconds)
    chunks = []
    end = time.monotonic() + seconds
    while (remaining := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _read_available_windows(fd: int, seconds: float) -> bytes:
    import _winapi
    import msvcrt

    chunks = []
    end = time.monotonic() + seconds
    try:
        handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined,unused-ignore]
        while True:
            available = _winapi.PeekNamedPipe(handle, 0)[0]  # type: ignore[attr-defined,unused-ignore]
            if available:
                chunks.append(os.read(fd, available))
                continue
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.01, remaining))
    except OSError:
        pass  # BrokenPipeError: every writer closed it and it is empty (EOF)
    return b"".join(chunks)


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
        parents = _windows_parent_pids()
        return parents is None or os.getpid() in parents
    if not hasattr(os, "waitid"):
        return True
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _windows_parent_pids() -> set[int] | None:
    """Windows: the parent pids of every running process (None if the list cannot be had)."""
    import ctypes
    from ctypes import wintypes

    class ProcessEntry(ctypes.Structure):  # PROCESSENTRY32W
        _fields_ = [
            ("dwSize", wintypes.DWORD),
            ("cntUsage", wintypes.DWORD),
            ("th32ProcessID", wintypes.DWORD),
            ("th32DefaultHeapID", ctypes.c_size_t),
            ("th32ModuleID", wintypes.DWORD),
            ("cntThreads", wintypes.DWORD),
            ("th32ParentProcessID", wintypes.DWORD),
            ("pcPriClassBase", wintypes.LONG),
            ("dwFlags", wintypes.DWORD),
            ("szExeFile", wintypes.WCHAR * 260),
        ]

    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]
    kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
    kernel32.CreateToolhelp32Snapshot.argtypes = [wintypes.DWORD, wintypes.DWORD]
    kernel32.Process32FirstW.argtypes = kernel32.Process32NextW.argtypes = [wintypes.HANDLE, ctypes.c_void_p]
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    snapshot_processes = 0x2  # TH32CS_SNAPPROCESS
    snapshot = kernel32.CreateToolhelp32Snapshot(snapshot_processes, 0)
    if not snapshot or snapshot == wintypes.HANDLE(-1).value:
        return None
    parents = set()
    try:
        entry = ProcessEntry()
        entry.dwSize = ctypes.sizeof(ProcessEntry)
        more = kernel32.Process32FirstW(snapshot, ctypes.byref(entry))
        while more:
            parents.add(int(entry.th32ParentProcessID))
            more = kernel32.Process32NextW(snapshot, ctypes.byref(entry))
    finally:
        kernel32.CloseHandle(snapshot)
    return parents


def _kernel_lists_children() -> bool:
    return LINUX and os.path.exists(f"/proc/self/task/{os.getpid()}/children")


#: Whether `child_pids` can answer.  Linux lists each thread's children in
#: /proc (CONFIG_PROC_CHILDREN, enabled by the common distributions' kernels).
KERNEL_LISTS_CHILDREN = _kernel_lists_children()


def child_pids(pid: int) -> list[int]:
    """The pids of ``pid``'s children, running or zombie; [] if ``pid`` is gone.

    Linux with `KERNEL_LISTS_CHILDREN` only: reads /proc/PID/task/*/children,
    which costs a few system calls per thread of ``pid``, where finding the
    children from the parent pid of every process (psutil's way, and the only
    one elsewhere) reads the whole process table.

    The kernel lists children per thread, and moves the children of a thread
    that exits to another thread, possibly one already read or one that
    started meanwhile: a look during which the threads changed is taken again
    (a few times at most).

    Raises:
        OSError: /proc could not be read for another reason than the process
            being gone (no descriptor left, say): not knowing is not "none".
    """
    for _ in range(5):
        tids = _listdir_unless_gone(f"/proc/{pid}/task")
        if tids is None:
            return []
        found: set[int] = set()
        for tid in tids:
            found.update(_read_pids(f"/proc/{pid}/task/{tid}/children"))
        now = _listdir_unless_gone(f"/proc/{pid}/task")
        if now is None:
            return []
        if set(now) == set(tids):
            break
    return sorted(found)


def _gone(exc: OSError) -> bool:
    """Whether a failure to read /proc/PID/... means that the process is gone."""
    return exc.errno in (errno.ENOENT, errno.ESRCH)


def _listdir_unless_gone(path: str) -> list[str] | None:
    try:
        return os.listdir(path)
    except OSError as exc:
        if _gone(exc):
            return None
        raise


def has_exited(pid: int) -> bool:
    """Linux: whether ``pid`` is gone or a zombie, from /proc/PID/stat.

    Raises:
        OSError: it could not be told (see `child_pids`).
    """
    stat = _read_proc_file(f"/proc/{pid}/stat")
    if not stat:
        return True
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]  # the field after the (name)
    return state in (b"Z", b"X", b"")


def started_at(pid: int) -> float | None:
    """Linux: when ``pid`` started, on psutil's clock (the boot time plus the
    start time in /proc/PID/stat), read without psutil; None if it is gone
    or a zombie.

    Raises:
        OSError: it could not be told (see `child_pids`).
    """
    stat = _read_proc_file(f"/proc/{pid}/stat")
    fields = (stat or b"")[(stat or b"").rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in clock ticks


_boot: list[float] = []


def _boot_time() -> float:
    """The boot time, as /proc/stat's ``btime`` gives it (psutil's too)."""
    if not _boot:
        for line in (_read_proc_file("/proc/stat") or b"").splitlines():
            if line.startswith(b"btime "):
                _boot.append(float(line.split()[1]))
                break
        else:
            raise OSError(errno.ENOENT, "no btime in /proc/stat")
    return _boot[0]


def _read_pids(path: str) -> list[int]:
    """The pids a /proc list holds; [] if it is gone."""
    return [int(x) for x in (_read_proc_file(path) or b"").split()]


def _read_proc_file(path: str) -> bytes | None:
    """A /proc file's content, read to the end (/proc hands out at most a page
    per read); None if it is gone, what was read if it went meanwhile.

    Raises:
        OSError: it could not be opened for another reason (see `child_pids`).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if _gone(exc):
            return None
        raise
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


def reap_adopted(pids: Iterable[int]) -> dict[int, int]:
    """Collect the exit status of processes re-parented to us (subreaper).

    POSIX only; returns ``{pid: returncode}`` for those that were ours and have
    exited.  Without this they would stay zombies until we exit.
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
