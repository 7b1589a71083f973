"""Every use of CPython's and asyncio's internals, in one place.

Rules of this module:

* Each function touches private attributes of the standard library, on
  purpose, to make a stop behave like Ctrl-C in code we do not own.  Each
  checks the Python version it was written against (`TESTED`) and the shape
  of what it finds, and fails safe: on anything unexpected it does nothing
  and answers as if the feature were absent.  None raises.
* `tests/test_cpython.py` runs each of them under every CPython version it
  can find, so that a new version that moved something shows up as a
  failing test, not as a silent change of behaviour.
* It imports nothing that the standard library has not loaded already
  (``sys.modules`` lookups only): it runs in the stop's path and, for some
  functions, while the interpreter exits.
"""

from __future__ import annotations

import functools
import os
import sys
from types import FrameType

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from typing import Any

#: The CPython versions whose internals these functions were checked against
#: (major, minor); on others they fail safe.
TESTED = ((3, 10), (3, 11), (3, 12), (3, 13), (3, 14))


def _known_version() -> bool:
    return sys.implementation.name == "cpython" and sys.version_info[:2] in TESTED


# -- subprocess -------------------------------------------------------------------


def mark_unwaited(popen: Any, mark: Callable[[], None]) -> bool:
    """POSIX: run ``mark`` holding ``popen``'s waitpid lock, that is while no
    thread of this process waits for its child (and may reap it): every
    wait, poll and the short wait after a KeyboardInterrupt take that lock.

    Returns:
        True if ``mark`` ran; False (nothing done) if a thread holds the
        lock, it is missing, or the version is not one of `TESTED`.
    """
    if not _known_version() or os.name != "posix":
        return False
    lock = getattr(popen, "_waitpid_lock", None)
    if lock is None or not hasattr(lock, "acquire") or not lock.acquire(False):
        return False
    try:
        mark()
    finally:
        lock.release()
    return True


def wait_without_reaping(pid: int, wait_flags: int) -> tuple[int, int]:
    """What ``Popen._try_wait(wait_flags)`` returns, ``(pid, wait status)``
    (``(0, 0)`` while it runs), but read with ``waitid(WNOWAIT)``: the child
    stays a zombie, for whoever reaps it later.  A child that is not ours
    (any more) answers as CPython's does: ``(pid, 0)``."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | (wait_flags & os.WNOHANG))
    except ChildProcessError:
        return pid, 0
    if info is None:
        return 0, 0
    if info.si_code == os.CLD_EXITED:
        return info.si_pid, (info.si_status & 0xFF) << 8
    return info.si_pid, info.si_status | (0x80 if info.si_code == os.CLD_DUMPED else 0)


def skip_popen_sigint_wait(frame: FrameType | None) -> bool:
    """Let a ``Popen.wait()`` that our stop interrupts pass it on at once.

    On a KeyboardInterrupt, ``Popen.wait()`` first waits 0.25 s for its
    child (``Popen._sigint_wait_secs``), assuming the child got the same
    Ctrl-C (CPython bpo-25942).  A process started with plain subprocess does
    not get our stop, so that wait would only delay the cleanup; a
    ``Popen`` whose class sets ``_shutdownbus_hears_stops`` (a `Child`) does
    get it, and keeps its wait.

    Args:
        frame: Where the stop is raised; the frames above it are searched
            (eight at most) for ``Popen.wait``.

    Returns:
        True if such a wait was found and shortened.
    """
    subprocess = sys.modules.get("subprocess")
    if subprocess is None or not _known_version():
        return False  # not loaded: nothing waits in Popen.wait
    code = getattr(getattr(getattr(subprocess, "Popen", None), "wait", None), "__code__", None)
    for _ in range(8):
        if frame is None or code is None:
            return False
        if frame.f_code is code:
            popen = frame.f_locals.get("self")
            if (
                isinstance(popen, subprocess.Popen)
                and not getattr(popen, "_shutdownbus_hears_stops", False)
                and hasattr(popen, "_sigint_wait_secs")
            ):
                popen._sigint_wait_secs = 0
                return True
            return False
        frame = frame.f_back
    return False


# -- asyncio ------------------------------------------------------------------------


def asyncio_runner_handler() -> functools.partial[None] | None:
    """The SIGINT handler that ``asyncio.run`` installed (Python 3.11+), if it is installed.

    ``asyncio.Runner`` installs ``functools.partial(self._on_sigint,
    main_task=task)``; on Ctrl-C it cancels the main task instead of raising
    in the loop.  A stop calls it the same way, so the program's cleanup runs
    the same way for both.

    Returns:
        The handler, or None (not under ``asyncio.run``, Python 3.10, or an
        unknown shape).
    """
    if not _known_version() or sys.version_info < (3, 11):
        return None
    import signal  # loaded by then (the member's bus uses it); here so that `list` does without

    try:
        handler = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):
        return None
    func = getattr(handler, "func", None)
    if isinstance(handler, functools.partial) and getattr(func, "__name__", "") == "_on_sigint":
        owner = getattr(func, "__self__", None)
        if owner is not None and type(owner).__name__ == "Runner" and "main_task" in handler.keywords:
            return handler
    return None


def interrupts_seen(runner: functools.partial[None]) -> int:
    """How many Ctrl-C (or stops) ``asyncio.Runner`` has handled (``Runner._interrupt_count``)."""
    count = getattr(getattr(runner.func, "__self__", None), "_interrupt_count", 0)
    return count if isinstance(count, int) else 0


# -- threads --------------------------------------------------------------------------


def release_condition_wait(thread: threading.Thread) -> bool:
    """End the wait of ``thread`` if it blocks in ``threading.Condition.wait``
    (so in ``Event.wait``, ``Queue.get``, ``Semaphore.acquire``, ...), by
    releasing the lock it waits on: the wait's ``waiter``, a plain lock that
    any thread may release.

    For a caller that has just scheduled an exception or tripped a signal
    handler that raises in ``thread``: the acquire returns, and the exception
    is raised right there, before the wait can return.  Without one, the wait
    would return to its caller as if it had been notified (``Event.wait()``
    True with the event not set): never call it otherwise.

    Why: a lock acquire is interrupted by a signal on POSIX, but on Windows
    before Python 3.14 nothing ends it, not even Ctrl-C.  Only a wait made
    directly by ``Condition.wait`` (its frame on top of the thread's stack,
    with its ``waiter`` held) is released; a notify() that releases the same
    waiter meanwhile is harmless (``release`` raises, which is caught).

    Returns:
        True if a waiter was released.
    """
    import threading  # loaded by then: `thread` is one of its threads

    if thread.ident is None or not _known_version():
        return False
    wait = getattr(getattr(threading, "Condition", None), "wait", None)
    code = getattr(wait, "__code__", None)
    try:
        frame = sys._current_frames().get(thread.ident)
        if frame is None or code is None or frame.f_code is not code:
            return False
        waiter: Any = frame.f_locals.get("waiter")
        if not (hasattr(waiter, "locked") and hasattr(waiter, "release")) or not waiter.locked():
            return False  # not allocated or not held yet: the wait has not begun
        waiter.release()
    except Exception:  # released by a notify() meanwhile, or an unexpected shape
        return False
    return True



def handling_keyboard_interrupt(thread: threading.Thread) -> bool:
    """Whether ``thread`` is handling a KeyboardInterrupt (in an ``except`` or ``finally``).

    Uses ``sys._current_exceptions()``, which gives exceptions on 3.12+ and
    ``exc_info`` triples on 3.10 and 3.11.
    """
    current_exceptions = getattr(sys, "_current_exceptions", None)
    if current_exceptions is None or thread.ident is None or not _known_version():
        return False
    try:
        current: Any = current_exceptions().get(thread.ident)
    except Exception:
        return False
    if isinstance(current, tuple):
        current = current[1] if len(current) == 3 else None
    return isinstance(current, KeyboardInterrupt)


# -- concurrent.futures -------------------------------------------------------------


def terminate_process_pool_workers() -> int:
    """Terminate the workers of every ``ProcessPoolExecutor`` of this process,
    as Ctrl-C would interrupt them.

    ``ProcessPoolExecutor.shutdown(wait=True)``, which leaving its ``with``
    block calls, waits for the tasks that run, whatever they do; a Ctrl-C
    reaches the workers too and ends them, a stop does not.  This asks each
    worker to go with the OS's polite request; the executor's manager thread
    sees its workers gone, fails the futures still pending
    (``BrokenProcessPool``) and ends, and the program's own ``shutdown``
    returns.  Only the workers are touched: calling ``shutdown(wait=False)``
    here too (as Python 3.14's ``terminate_workers()`` does) would drop the
    executor's hold on its manager thread, so the program's own shutdown
    would not wait for it, and the interpreter's exit could race with it
    (an EBADF on its wake-up pipe, seen on 3.11).

    Executors are found through ``concurrent.futures.process._threads_wakeups``,
    which holds each live executor's manager thread; their workers are
    ``executor._processes``.

    Returns:
        The number of workers asked to go.
    """
    process = sys.modules.get("concurrent.futures.process")
    if process is None or not _known_version():
        return 0  # not loaded: no executor exists
    wakeups = getattr(process, "_threads_wakeups", None)
    try:
        threads = list(wakeups.keys()) if wakeups is not None else []
    except Exception:
        return 0
    done = 0
    for thread in threads:
        reference = getattr(thread, "executor_reference", None)
        executor = reference() if callable(reference) else None
        workers = getattr(executor, "_processes", None)
        if not isinstance(workers, dict):
            continue
        for worker in list(workers.values()):
            try:
                if worker.is_alive():
                    worker.terminate()
                    done += 1
            except (OSError, ValueError):  # gone meanwhile, or already closed
                continue
    return done


# -- the interpreter's exit -------------------------------------------------------


def exit_without_teardown(status: int) -> None:
    """End this process as the interpreter's exit would, less its teardown.

    ``Py_FinalizeEx`` first waits for the threads that are not daemons
    (``threading._shutdown``, which also runs the hooks that
    ``concurrent.futures`` registers there), then calls every `atexit`
    handler (ours, coverage's, logging's), then flushes the standard streams;
    all that is done here, in that order.  What comes after it there is
    skipped: the modules' dictionaries cleared one by one, the final
    garbage collections and the finalizers of what is still alive, some
    milliseconds for a process that loaded pyzmq and psutil
    (docs/performance.md).  The kernel frees what the process held.

    For the command line, run as the program, once it is done.  Returns, and
    has done nothing, where it cannot be done faithfully (another Python or
    an untested version, or not on the main thread); returns after the first
    two steps if a standard stream cannot be flushed (the interpreter's own
    exit then reports it, as it always does; it does not repeat them).

    Args:
        status: The exit status.
    """
    # Modules that are not loaded have nothing to wait for or to call.
    threads, handlers = sys.modules.get("threading"), sys.modules.get("atexit")
    shutdown = getattr(threads, "_shutdown", None) if threads is not None else lambda: None
    run_exit_handlers = getattr(handlers, "_run_exitfuncs", None) if handlers is not None else lambda: None
    if not (_known_version() and callable(shutdown) and callable(run_exit_handlers)):
        return
    if threads is not None and threads.current_thread() is not threads.main_thread():
        return
    shutdown()
    run_exit_handlers()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(status)
