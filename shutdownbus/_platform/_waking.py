"""Waking a thread that is blocked: the main thread for a stop, the bus thread for work.

Rules of this module:

* The main thread is woken the way a terminal's Ctrl-C wakes it, on each
  OS (POSIX: a signal of our own sent to it with ``pthread_kill``; Windows:
  a tripped handler and the interpreter's SIGINT event), never with SIGINT,
  whose handler belongs to the program.
* The bus thread is woken through a descriptor it polls (`WakeChannel`):
  an eventfd on Linux, a socket pair elsewhere.
* ``signal`` and ``threading`` are imported by the functions that use them:
  ``shutdownbus list`` loads this package and needs neither.
"""

from __future__ import annotations

import _thread
import functools
import os
from collections.abc import Callable
from types import FrameType

from .. import _cpython
from ._os import WINDOWS
from ._windows import sigint_event_setter

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any


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
_set_sigint_event: Callable[[], object] | None = None  # Windows, see `_windows.sigint_event_setter`


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
        _set_sigint_event = sigint_event_setter()
    return True


def wake_signal() -> int | None:
    """The signal the installed waker uses (None: none is installed), on every OS."""
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
