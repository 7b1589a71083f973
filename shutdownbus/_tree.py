"""Process-tree snapshots and escalation, on psutil.

Rules of this module:

* psutil is imported here only, and only when a stop needs it, so that a
  member that merely joins the bus never pays for it.
* Processes are held as ``psutil.Process`` objects, which check the process
  creation time before sending a signal: a pid reused by an unrelated process
  is never signalled.
* This module never waits on (reaps) a direct child: its exit status belongs
  to its ``Popen`` object.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _platform
from ._transport import ENV_ENDPOINT

if TYPE_CHECKING:
    import psutil


@dataclass
class Member:
    """One process of a snapshot."""

    proc: psutil.Process
    ppid: int
    depth: int
    name: str
    gone_at: float | None = None  # time.monotonic() when first seen gone
    outcome: str | None = None  # set by escalation: "terminated" or "killed"

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


def display_name(proc: psutil.Process) -> str:
    """``argv[0]``'s basename, else the OS's process name."""
    import psutil

    try:
        cmdline = proc.cmdline()
        if cmdline and cmdline[0]:
            return os.path.basename(str(cmdline[0]))[:256]
    except (psutil.Error, OSError):
        pass  # a zombie has no command line left, but still its name
    try:
        return str(proc.name())[:256]
    except (psutil.Error, OSError):
        return "?"


class Tree:
    """A refreshable snapshot of the descendants of some root processes.

    Processes once seen stay in the snapshot after they exit, so a stop can
    report on each of them; `refresh` adds the ones started since.

    A descendant that double-forks, or whose parent died, is re-parented to
    this process (a subreaper) and so leaves the subtree of its root.  With a
    ``marker``, `refresh` finds such processes among our own children: they
    carry the marker (the spawn's endpoint, which is not secret) in the
    environment they started with, inherited from a child that never joined.

    Args:
        roots: Pids whose descendants to track (the roots themselves are not included).
        marker: The value of ``SHUTDOWNBUS_ENDPOINT`` that the tree's non-members inherited.
        not_ours: Returns the pids of our children that belong elsewhere (our other `Child` objects).
        table: A `ProcessTable` for the first look.
    """

    def __init__(
        self,
        roots: Iterable[int],
        marker: str | None = None,
        not_ours: Callable[[], set[int]] | None = None,
        table: ProcessTable | None = None,
    ) -> None:
        self.roots = list(roots)
        self.marker = marker
        self.not_ours = not_ours
        self.members: dict[int, Member] = {}
        self.returncodes: dict[int, int] = {}  # of members we reaped (as their subreaper)
        self._marked: dict[int, bool] = {}
        self.refresh(table)

    def refresh(self, table: ProcessTable | None = None) -> None:
        """Add descendants started since the last look, and marked processes we adopted.

        A process that dies while the walk reads the tree hands its children
        to an ancestor whose list may have been read already; a walk that met
        such a process is taken again, with a fresh table, until it finds
        nothing new (three walks at most).

        Args:
            table: The `ProcessTable` to look in (one can serve many trees);
                a fresh one if None.
        """
        if table is None:
            table = ProcessTable()
        for attempt in range(3):
            added = self._walk(table)
            if not table.met_the_dead or (attempt > 0 and not added):
                return
            table = ProcessTable()

    def _walk(self, table: ProcessTable) -> int:
        """One walk down the tree; the number of processes it added."""
        import psutil

        added = 0
        roots = list(self.roots)
        if self.marker is not None:
            roots += self._adopt(table.children(os.getpid()))
        for root in roots:
            depth_of = {root: 0}
            queue = [root]
            while queue:
                parent = queue.pop()
                for pid in table.children(parent):
                    if pid in depth_of:
                        continue
                    depth_of[pid] = depth_of[parent] + 1
                    queue.append(pid)
                    if pid in self.members:
                        continue
                    try:
                        proc = psutil.Process(pid)
                    except psutil.Error:
                        continue
                    self.members[pid] = Member(proc, parent, depth_of[pid], display_name(proc))
                    added += 1
        return added

    def _adopt(self, our_children: list[int]) -> list[int]:
        """Marked processes among our own children: members at depth 1; their pids."""
        import psutil

        skip = set(self.roots) | (self.not_ours() if self.not_ours else set())
        found = []
        for pid in our_children:
            if pid in skip or pid in self.members:
                continue
            try:
                proc = psutil.Process(pid)
                if not self.marked(proc):
                    continue
                self.members[pid] = Member(proc, os.getpid(), 1, display_name(proc))
            except psutil.Error:
                continue
            found.append(pid)
        return found

    def marked(self, proc: psutil.Process) -> bool:
        """Whether ``proc`` started with this tree's marker in its environment
        (so it is a non-member of this tree: it cannot hear the bus)."""
        import psutil

        if self.marker is None:
            return False
        if proc.pid not in self._marked:
            try:
                self._marked[proc.pid] = proc.environ().get(ENV_ENDPOINT) == self.marker
            except (psutil.Error, OSError):
                self._marked[proc.pid] = False
        return self._marked[proc.pid]

    def alive(self) -> list[Member]:
        """Members still running (a zombie counts as gone), deepest first."""
        now = time.monotonic()
        out = []
        for m in self.members.values():
            if m.gone_at is not None:
                continue
            if is_running(m.proc):
                out.append(m)
            else:
                m.gone_at = now
        return sorted(out, key=lambda m: -m.depth)

    def wait_gone(self, timeout: float) -> list[Member]:
        """Wait up to ``timeout`` seconds for every member to go; return the rest."""
        end = time.monotonic() + timeout
        delay = 0.001
        while True:
            alive = self.alive()
            if not alive or time.monotonic() >= end:
                return alive
            time.sleep(min(delay, max(0.0, end - time.monotonic())))
            delay = min(delay * 2, 0.02)


class ProcessTable:
    """Who is whose child, looked up as a walk down a tree needs it.

    Where the kernel lists each process's children (Linux), a lookup reads that
    process's entries only, so walking a tree costs in proportion to the tree.
    Elsewhere one psutil pass over the whole process table, made up front,
    answers every lookup.  Answers are kept: make a new table to see the
    processes started since.
    """

    def __init__(self) -> None:
        self._children: dict[int, list[int]] = {}
        #: Whether a process was gone (or a zombie) when its children were read.
        self.met_the_dead = False
        self._complete = not _platform.KERNEL_LISTS_CHILDREN
        if self._complete:
            import psutil

            for proc in psutil.process_iter(["ppid"]):
                parent = proc.info.get("ppid")
                if parent is not None:
                    self._children.setdefault(int(parent), []).append(int(proc.pid))

    def children(self, pid: int) -> list[int]:
        """The pids of ``pid``'s children (running or zombie) when the table was made or first asked."""
        if self._complete:
            return self._children.get(pid, [])
        if pid not in self._children:
            self._children[pid] = _platform.child_pids(pid)
            if not self._children[pid] and _platform.has_exited(pid):
                # It died, and its children (if it had any) may have moved to
                # an ancestor already read: the walk must look again.
                self.met_the_dead = True
        return self._children[pid]


def is_running(proc: psutil.Process) -> bool:
    """Whether ``proc`` runs (a zombie counts as gone)."""
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def signal_members(members: Iterable[Member], outcome: str) -> None:
    """Send the kill (outcome ``killed``), else the polite request, deepest first.

    Members that are already gone are skipped; ``outcome`` is recorded on
    those that were signalled.
    """
    import psutil

    for m in sorted(members, key=lambda m: -m.depth):
        try:
            if not is_running(m.proc):
                continue
            if outcome == "killed":
                m.proc.kill()
            else:
                m.proc.terminate()
            m.outcome = outcome
        except psutil.Error:
            pass
