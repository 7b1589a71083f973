"""Helpers for test harnesses: did a test leave processes behind?

Any harness (unittest, nose, a script) can use them::

    before = shutdownbus.testing.snapshot()
    ...  # start and stop servers
    leaked = shutdownbus.testing.leaked_processes(since=before)
    assert not leaked, shutdownbus.testing.describe(leaked)

A process counts as leaked when it runs now, did not run at the snapshot, and
descends from this process.  Processes orphaned below this process stay its
descendants when it is a child subreaper, which ``shutdownbus.spawn`` makes it
on Linux; elsewhere an orphan re-parented to init is not seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._guard import is_a_guard
from ._processes import cmdline, is_running, process
from ._tree import descendant_pids

if TYPE_CHECKING:
    import psutil


@dataclass(frozen=True)
class Snapshot:
    """The processes that descended from this process at some moment.

    Attributes:
        pid: The process the snapshot was taken in.
        known: ``(pid, create_time)`` of every descendant then.
    """

    pid: int
    known: frozenset[tuple[int, float]]


def snapshot() -> Snapshot:
    """Record the descendants of this process, to compare with later.

    Returns:
        The snapshot, for `leaked_processes`.
    """
    return Snapshot(os.getpid(), frozenset(_identity(p) for p in _descendants()))


def leaked_processes(since: Snapshot, ignore: set[int] | frozenset[int] = frozenset()) -> list[psutil.Process]:
    """Descendants of this process that are running now and were not at ``since``.

    Args:
        since: A `snapshot` taken before the work under test.
        ignore: Pids to leave out (processes the harness keeps on purpose).

    Returns:
        The leaked processes, deepest first (the order to kill them in).
    """
    leaked = [p for p in _descendants() if _identity(p) not in since.known and p.pid not in ignore and is_running(p)]
    return sorted(leaked, key=_depth, reverse=True)


def describe(procs: list[psutil.Process]) -> str:
    """One line per process: pid and command line."""
    import psutil

    lines = []
    for p in procs:
        try:
            command = " ".join(p.cmdline()) or p.name()
        except psutil.Error:
            command = "?"
        lines.append(f"pid {p.pid}: {command}")
    return "\n".join(lines)


def kill(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    """Kill ``procs`` (deepest first) and wait for them to go."""
    import psutil

    for p in sorted(procs, key=_depth, reverse=True):
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)


def _descendants() -> list[psutil.Process]:
    """Our descendants, but for the guards of top-level spawners we started
    (re-parented to us, a subreaper): each ends on its own once its spawner
    is gone and what that one left is ended (see shutdownbus/_guard.py)."""
    found = (process(pid) for pid in descendant_pids(os.getpid()))
    return [p for p in found if p is not None and not is_a_guard(_name_of(p), cmdline(p))]


def _name_of(proc: psutil.Process) -> str:
    """``proc``'s name; empty where it cannot be read (psutil cannot under wine)."""
    import psutil

    try:
        return str(proc.name())
    except (psutil.Error, OSError):
        return ""


def _identity(p: psutil.Process) -> tuple[int, float]:
    import psutil

    try:
        return (p.pid, p.create_time())
    except psutil.Error:
        return (p.pid, 0.0)


def _depth(p: psutil.Process) -> int:
    import psutil

    try:
        return len(p.parents())
    except psutil.Error:
        return 0
