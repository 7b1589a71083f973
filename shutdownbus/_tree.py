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
    """

    def __init__(
        self, roots: Iterable[int], marker: str | None = None, not_ours: Callable[[], set[int]] | None = None
    ) -> None:
        self.roots = list(roots)
        self.marker = marker
        self.not_ours = not_ours
        self.members: dict[int, Member] = {}
        self.returncodes: dict[int, int] = {}  # of members we reaped (as their subreaper)
        self._marked: dict[int, bool] = {}
        self.refresh()

    def refresh(self) -> None:
        """Add descendants started since the last look, and marked processes we adopted."""
        import psutil

        roots = list(self.roots)
        if self.marker is not None:
            roots += [p.pid for p in self._adopted() if p.pid not in self.members]
        for root in roots:
            try:
                found = psutil.Process(root).children(recursive=True)
            except psutil.Error:
                continue
            by_pid = {p.pid: p for p in found}
            for p in found:
                if p.pid in self.members:
                    continue
                try:
                    ppid = p.ppid()
                except psutil.Error:
                    continue
                depth, up = 1, ppid
                while up in by_pid and up != root and depth < 10_000:
                    depth, up = depth + 1, _ppid(by_pid[up])
                self.members[p.pid] = Member(p, ppid, depth, display_name(p))

    def _adopted(self) -> list[psutil.Process]:
        import psutil

        skip = set(self.roots) | (self.not_ours() if self.not_ours else set())
        found: list[psutil.Process] = []
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return found
        for p in children:
            if p.pid in skip or p.pid in self.members or not self.marked(p):
                continue
            try:
                self.members[p.pid] = Member(p, p.ppid(), 1, display_name(p))
            except psutil.Error:
                continue
            found.append(p)
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
            if _is_running(m.proc):
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


def _ppid(proc: psutil.Process) -> int:
    import psutil

    try:
        return int(proc.ppid())
    except psutil.Error:
        return 0


def _is_running(proc: psutil.Process) -> bool:
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
            if not _is_running(m.proc):
                continue
            if outcome == "killed":
                m.proc.kill()
            else:
                m.proc.terminate()
            m.outcome = outcome
        except psutil.Error:
            pass
