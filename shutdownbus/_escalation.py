"""Making processes go: the OS's requests to a tree's processes, deepest first, by a deadline.

Rules of this module:

* `escalate` is the one escalation of the library: a stop's deadline,
  leftovers, a member's own descendants at its exit, the admin's root.
* Processes are signalled deepest first, from a fresh look at their tree
  (processes started meanwhile are not missed), through psutil objects that
  check the creation time (a reused pid is never signalled); a process
  whose state cannot be read is signalled by pid (fail closed).
"""

from __future__ import annotations

import os
import time

from . import _platform, _stop_log
from ._deadlines import KILL_WAIT, TERM_GRACE
from ._outcome import Outcome
from ._processes import marker_of
from ._tree import Tree

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Sequence
    from typing import Protocol

    import psutil

    from ._report import ReportEntry
    from ._tree import Member

    class Head(Protocol):
        """A process above a tree's members that its owner signals its own way
        (our own child, through its ``Popen``; a registered root)."""

        def signal(self, outcome: Outcome) -> None:
            """Send the request of ``outcome`` (``terminated`` or ``killed``) if still running."""

        def gone(self) -> bool:
            """Whether it is gone."""


def signal_members(members: Iterable[Member], outcome: Outcome) -> None:
    """Send the kill (outcome ``killed``), else the polite request, deepest first.

    Members that are already gone are skipped; ``outcome`` is recorded on
    those that were signalled.
    """
    import psutil

    for m in sorted(members, key=lambda m: -m.depth):
        try:
            if not m.checked():
                continue
            if outcome == Outcome.KILLED:
                m.proc.kill()
            else:
                m.proc.terminate()
            _record(m, outcome)
        except psutil.Error:
            pass
        except OSError:
            # psutil could not check that the pid is still this process (no
            # descriptor left): it was seen in the tree, so signal it by pid.
            # Loaded by then (psutil imports it): this runs when no descriptor
            # is left, so it must not need a file.  Not at the top: `list`
            # loads this module and needs no signal.
            import signal

            kill = outcome == Outcome.KILLED and hasattr(signal, "SIGKILL")
            try:
                os.kill(m.pid, signal.SIGKILL if kill else signal.SIGTERM)
                _record(m, outcome)
            except OSError:
                pass


def _record(m: Member, outcome: Outcome) -> None:
    """What was done to ``m``: the outcome of escalation, or, for the polite
    request that is a non-member's stop (``stopped``), the request and when."""
    if outcome == Outcome.STOPPED:
        m.ask(_platform.default_request())
    else:
        m.outcome = outcome


#: Past a deadline: the polite request, `TERM_GRACE` seconds, the kill, then
#: up to `KILL_WAIT` seconds to see the processes gone.
ESCALATION = ((Outcome.TERMINATED, TERM_GRACE), (Outcome.KILLED, KILL_WAIT))
#: A polite request with less time than this to be heeded is not sent: the kill follows at once.
MIN_GRACE = 0.01


def escalate(
    trees: Sequence[Tree],
    heads: Sequence[Head] = (),
    steps: Sequence[tuple[Outcome, float]] = ESCALATION,
    companions: bool = True,
    until: float | None = None,
) -> None:
    """Make every process of ``trees`` (and ``heads``) go: each step's signal,
    deepest first, from a fresh look (processes started meanwhile are not
    missed), then up to the step's grace to see them gone.

    This is the one escalation of the library: a stop's deadline, leftovers,
    a member's own descendants at its exit, the admin's root.

    Args:
        trees: The trees (they may share one `_platform.ExitWatch`; heads
            should be watched in it too, so that waiting sees them go).
        heads: Processes above the trees, signalled after their trees.
        steps: ``(outcome, grace)`` pairs.
        companions: Signal `COMPANIONS` too.
        until: When the escalation must be over (`time.monotonic`): the
            graces left are cut in proportion so that the last step's wait
            ends then (a process that is itself stopping escalates its
            children within what it kept for that, `_deadlines.escalation_end`),
            a step whose share is under `MIN_GRACE` is skipped, but the last
            step's signal is always sent.  Several escalations of one stop
            (the children at their deadline, then descendants that outlived
            them) share one bound.
    """
    for i, (outcome, grace) in enumerate(steps):
        last = i == len(steps) - 1
        if until is not None:
            graces_left = sum(g for _, g in steps[i:])
            available = max(0.0, until - time.monotonic())
            grace = grace * min(1.0, available / graces_left) if graces_left > 0 else 0.0
            if grace < MIN_GRACE and not last:
                continue
        members: list[Member] = []
        for tree in trees:
            tree.refresh()
            members += [m for m in tree.alive() if companions or not m.companion]
        live_heads = [h for h in heads if not h.gone()]
        if not members and not live_heads:
            return
        signal_members(members, outcome)
        for head in live_heads:
            head.signal(outcome)
        # Heads that say who they are (our own children: `_stop`) are named in the log too.
        named = [who for who in (getattr(h, "who", None) for h in live_heads) if who is not None]
        _stop_log.escalated(outcome, [(m.pid, m.name) for m in members if m.outcome == outcome] + named)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            left = [m for tree in trees for m in tree.alive() if companions or not m.companion]
            if not left and all(h.gone() for h in heads):
                break
            watch = trees[0].watch if trees else None
            if watch is not None and watch.watching():
                watch.wait(end - time.monotonic())
            else:
                time.sleep(min(0.005, max(0.0, end - time.monotonic())))


class OwnDescendants:
    """The descendants of this process that cannot hear the bus, watched and stopped at its exit.

    They are what this process started without `spawn`: plain subprocesses,
    multiprocessing's workers, forks.  A process spawned on the bus (it
    started with an endpoint other than our own in its environment) belongs,
    with its subtree, to one of our `Child` objects, whose stop covers it.
    `COMPANIONS` are never asked to go: they exit on their own once this
    process is gone, and its parent's stop accounts for them.

    `wait` watches them go while the program cleans up, so that each exit
    time is known; `finish`, at this process's exit, gives those still running
    the polite OS request (their stop), kills what is left by the deadline,
    and reports.

    Args:
        own_marker: The endpoint this process started with (a fork of this
            process carries it too), or None.
    """

    def __init__(self, own_marker: str | None) -> None:
        def spawned_on_the_bus(proc: psutil.Process) -> bool:
            marker = marker_of(proc)
            return marker is not None and marker != own_marker

        self.tree = Tree([os.getpid()], prune=spawned_on_the_bus)

    def wait(self, done: threading.Event) -> None:
        """Watch them go until all are gone or ``done`` is set."""
        while not done.is_set() and self.tree.wait_gone(0.02, companions=False):
            pass

    def finish(self, t0: float, deadline: float) -> list[ReportEntry]:
        """At exit: ask those still running to go, wait, kill what is left at ``deadline``.

        Args:
            t0: When our own stop arrived (the entries' time origin).
            deadline: When we must be gone.

        Returns:
            One entry per process, but for companions still running.
        """
        self.tree.refresh()
        signal_members([m for m in self.tree.alive() if not m.companion], Outcome.STOPPED)
        self.tree.wait_gone(max(0.0, deadline - KILL_WAIT - time.monotonic()), companions=False)
        escalate([self.tree], steps=((Outcome.KILLED, KILL_WAIT),), companions=False)
        running = {m.pid for m in self.tree.alive() if m.companion}
        return self.tree.entries(t0, skip=running)
