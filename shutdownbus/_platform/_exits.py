"""Watching processes for their exit, and when each exit was seen.

Rules of this module:

* Linux: a pidfd per process, polled beside sockets, so an exit is seen the
  moment it happens.  Every other OS (and past `ExitWatch.MAX_PIDFDS`, or
  when a pidfd cannot be opened): the process is looked at every
  `ExitWatch.POLL_INTERVAL` seconds while a thread waits.
* An exit time is recorded only when it was seen as it happened; otherwise
  it is unknown (None), never guessed, and what is known is kept instead:
  the last moment the process was seen running (`ExitWatch.running_at`).
"""

from __future__ import annotations

import _thread
import math
import os
import time
from collections.abc import Callable, Mapping

from ._os import LINUX

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


def wait_exited(pids: Mapping[int, Callable[[], bool]], timeout: float) -> None:
    """Wait up to ``timeout`` seconds until each of ``pids`` has exited
    entirely: the last of its threads is gone (a zombie's at once), and so
    its own children are re-parented.

    Linux: an `ExitWatch` (a pidfd each, up to its cap; past it, or without a
    descriptor, each pid's ``is_gone`` is asked every `ExitWatch.POLL_INTERVAL`
    seconds, and whether that counts a zombie leader with threads left as
    exited is the caller's).  Every other OS: returns at once.
    """
    if not _PIDFDS:
        return
    watch = ExitWatch()
    try:
        for pid, is_gone in pids.items():
            watch.add(pid, is_gone)
        end = time.monotonic() + timeout
        while watch.watching() and (remaining := end - time.monotonic()) > 0:
            watch.wait(remaining)
    finally:
        watch.close()


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
        self._wake_r = self._wake_w = -1  # see `make_wakeable`
        self._wake_lock = _thread.allocate_lock()  # a wake never writes to a closed (reused) descriptor
        self._woken = False
        self._last_look = time.monotonic()
        self._last_look_began = self._last_look  # every process watched then was running at this moment
        self._added: dict[int, float] = {}  # pid -> when `add` was told it runs
        #: pid -> `time.monotonic` when it was seen gone (None: unknown).
        self.exits: dict[int, float | None] = {}
        #: pid -> the last `time.monotonic` it was known to run, for each exit
        #: whose time is unknown: it ended between then and when it was seen gone.
        self.running_at: dict[int, float] = {}

    def add(self, pid: int, is_gone: Callable[[], bool]) -> None:
        """Watch ``pid``, a process known to run now.

        Args:
            pid: The process.
            is_gone: Whether it is gone (a zombie counts as gone), asked when it has no pidfd.
        """
        import select

        if pid in self.exits or pid in self._fds or pid in self._asked:
            return
        self._added[pid] = time.monotonic()
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
        self._woken = False
        found = self._look(0.0)
        while not found and not self._woken and self.watching():
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            found = self._look(min(remaining, self.POLL_INTERVAL) if self._asked else remaining)
        return found

    def _look(self, block: float) -> list[int]:
        began = time.monotonic()
        found: list[int] = []
        if self._poller is not None:
            ready = self._poller.poll(math.ceil(block * 1000))
            now = time.monotonic()
            # A blocking look that returned early saw the exit as it happened.
            exact = block > 0
            for fd, _ in ready:
                if fd == self._wake_r:
                    if block > 0:  # a look that does not wait leaves the wake to the wait that does
                        self._drain_wakes()
                    continue
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
        self._last_look, self._last_look_began = now, began
        return found

    def make_wakeable(self) -> None:
        """Linux: let `wake` end a `wait` at once (a pipe polled beside the
        pidfds; without a descriptor for it, a `wait` sees a wake only when it
        ends).  Elsewhere: nothing."""
        import select

        if self._poller is None or self._wake_r >= 0:
            return
        try:
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # no descriptor left
        self._poller.register(self._wake_r, select.POLLIN)

    def wake(self) -> None:
        """Make a `wait` under way (or the next one) return at once, once
        `make_wakeable` (any thread).  Elsewhere: nothing."""
        with self._wake_lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"\0")
                except OSError:
                    pass  # the pipe is full: woken already

    def _drain_wakes(self) -> None:
        self._woken = True
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError:
            pass  # empty

    def _seen_gone(self, pid: int, now: float, exact: bool) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None and self._poller is not None:
            del self._pids[fd]
            self._poller.unregister(fd)
            os.close(fd)
        self._asked.pop(pid, None)
        added = self._added.pop(pid, now)
        self.exits[pid] = now if exact or now - self._last_look <= self.PRECISION else None
        if self.exits[pid] is None:
            # Not seen gone at the look before this one (or not watched yet then).
            self.running_at[pid] = max(added, self._last_look_began)

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
        with self._wake_lock:
            if self._wake_r >= 0:
                if self._poller is not None:
                    self._poller.unregister(self._wake_r)
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1
