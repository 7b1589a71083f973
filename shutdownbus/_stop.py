"""Stopping children: the message, the deadline, escalation, and the report.

Rules of this module:

* One thread finalizes a child's stop; any other thread asking to stop the same
  child waits for that result (stopping is idempotent).
* Several children are stopped together: one wait, one escalation round, so
  the time a stop takes does not add up over siblings.
* Whatever happens, every process of the tree is gone (or reported as
  impossible to kill) when this returns, by the deadline plus
  `ESCALATION_MARGIN` (twice that if descendants outlive their parent).
* psutil is used here only (through `_tree`), after the stop message left.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import _log, _member, _platform
from ._deadlines import KILL_WAIT, TERM_GRACE, join_grace
from ._report import ReportEntry, StopReport, merge_entries
from ._tree import Member, ProcessTable, Tree, signal_members

if TYPE_CHECKING:
    from ._child import Child


@dataclass
class StopState:
    """The progress of one child's stop."""

    reason: str
    started: float
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    begun: bool = False
    already_exited: bool = False
    tree: Tree | None = None
    polite_sent: bool = False
    escalated: str | None = None
    exit_seen: float | None = None
    gave_up: bool = False
    report: StopReport | None = None


def stop_children(children: Sequence[Child], reason: str, timeout: float) -> list[StopReport]:
    """Stop ``children`` together; return one report per child, in order.

    Args:
        children: Children of this process.
        reason: Sent with the stop.
        timeout: Seconds before escalation (a stop forwarded from our own
            parent keeps its earlier deadline).
    """
    if not (math.isfinite(timeout) and timeout >= 0):
        raise ValueError("the stop timeout must be a finite, non-negative number of seconds")
    now = time.monotonic()
    mine: list[Child] = []
    for c in children:
        with c._stop_lock:
            if c._stop_state is None:
                link = c._link
                deadline, why, started = now + timeout, reason, now
                if link.stop_deadline is not None:  # already forwarded by the bus thread
                    deadline = min(deadline, link.stop_deadline)
                    why = link.stop_reason or reason
                    started = link.stop_requested_at or now
                c._stop_state = StopState(why, started, deadline)
                mine.append(c)
    if mine:
        try:
            _run(mine)
        except BaseException:
            # Interrupted (a second Ctrl-C, a stop from our own parent): the
            # stop must still complete and report, so a thread takes it over.
            threading.Thread(target=_complete, args=(mine,), name="shutdownbus-stop", daemon=True).start()
            raise
        _finish_all(mine)
    reports = []
    for c in children:
        st = _state(c)  # set above, by us or by another thread
        st.done.wait()
        if st.report is None:  # the finalizing thread was interrupted
            st.report = _build_report(c, st, time.monotonic())
        reports.append(st.report)
    return reports


def _complete(mine: list[Child]) -> None:
    try:
        _run(mine)
    finally:
        _finish_all(mine)


def _run(mine: list[Child]) -> None:
    """Send the stops, wait, escalate, sweep; safe to run again after an interruption."""
    from ._child import live_children

    bus = _member.get_bus()
    # The snapshot comes first: a child that dies right after the stop left
    # would take the knowledge of its subtree with it.
    others = {c.pid for c in live_children()}
    table = ProcessTable()  # one look at the process table for all the trees
    for c in mine:
        st = _state(c)
        if st.tree is None:
            st.tree = Tree([c.pid], marker=c._link.endpoint, not_ours=lambda: others, table=table)
    for c in mine:
        st = _state(c)
        if not st.begun:
            st.begun = True
            # A child that exited after a forwarded stop reached it did stop;
            # only one that exited before any stop was asked of it "exited".
            st.already_exited = c.poll() is not None and c._link.stop_requested_at is None
            if not st.already_exited:
                bus.request_stop(c._link, st.reason, st.deadline)
    _wait_and_escalate([c for c in mine if not _state(c).already_exited])
    _sweep_leftovers(mine)


def _state(c: Child) -> StopState:
    st = c._stop_state
    if st is None:
        raise RuntimeError("internal error: no stop state")
    return st


def _exited(c: Child) -> bool:
    st = _state(c)
    if c.poll() is None and not st.gave_up:
        return False
    if st.exit_seen is None:
        st.exit_seen = time.monotonic()
    return True


def _wait_and_escalate(pending: list[Child]) -> None:
    refreshed = time.monotonic()
    while True:
        pending = [c for c in pending if not _exited(c)]
        if not pending:
            return
        now = time.monotonic()
        for c in pending:  # our own parent's stop may have brought a deadline forward
            st = _state(c)
            st.deadline = min(st.deadline, c._link.stop_deadline or st.deadline)
        # Wake at least every quarter second, to see such a change.
        wake_at = min(now + 0.25, *(_state(c).deadline for c in pending))
        for c in pending:
            st = _state(c)
            if st.polite_sent or c.joined:
                continue
            grace_end = st.started + join_grace(st.deadline - st.started)
            if now >= grace_end:
                # Not a member: the OS-native polite request is its stop.
                c.terminate()
                st.polite_sent = True
            else:
                wake_at = min(wake_at, grace_end)
        overdue = [c for c in pending if now >= _state(c).deadline]
        if overdue:
            _escalate(overdue)
            continue
        _platform.wait_any_exit(pending, wake_at - now)
        if time.monotonic() - refreshed >= REFRESH_EVERY:  # catch processes started during the stop
            refreshed = time.monotonic()
            _refresh([_state(c).tree for c in pending])


#: How often a long stop looks for processes started since its snapshot (it
#: always looks again before escalating and after the children exited).
REFRESH_EVERY = 0.25


def _refresh(trees: list[Tree | None]) -> None:
    table = ProcessTable()
    for tree in trees:
        if tree is not None:
            tree.refresh(table)


def _escalate(overdue: list[Child]) -> None:
    """Terminate, then kill, each overdue child and all its descendants, deepest first."""
    for outcome, grace in (("terminated", TERM_GRACE), ("killed", KILL_WAIT)):
        members: list[Member] = []
        for c in overdue:
            tree = _state(c).tree
            if tree is not None:
                tree.refresh()
                members += tree.alive()
        signal_members(members, outcome)
        for c in overdue:
            if c.poll() is None:
                c.kill() if outcome == "killed" else c.terminate()
                _state(c).escalated = outcome
        _wait_gone(overdue, grace)
    for c in overdue:
        if c.poll() is None:
            _state(c).gave_up = True
            _log.warning("shutdownbus: pid %d survived SIGKILL (uninterruptible?); giving up on it", c.pid)


def _wait_gone(children: list[Child], timeout: float) -> None:
    end = time.monotonic() + timeout
    trees = [t for t in (_state(c).tree for c in children) if t is not None]
    while True:
        alive = [c for c in children if c.poll() is None]
        remaining = end - time.monotonic()
        if (not alive and not any(t.alive() for t in trees)) or remaining <= 0:
            return
        if alive:
            _platform.wait_any_exit(alive, min(remaining, 0.01))
        else:
            time.sleep(min(remaining, 0.005))


def _sweep_leftovers(mine: list[Child]) -> None:
    """Descendants still running after their child exited.

    Those that started with the tree's marker cannot hear the bus: they get
    the polite OS request at once (it is their stop).  The others (members
    among them stop on their own when they see their parent gone) get until
    the deadline.  Then whatever is left is terminated and killed.
    """
    trees = [(st.deadline, st.tree) for st in map(_state, mine) if st.tree is not None]
    for _ in range(3):
        # Looked at again each round: a process asked to go may fork as it
        # goes, and its child, re-parented to us, carries the marker.
        for _, tree in trees:
            tree.roots = [m.pid for m in tree.alive()]
        _refresh([tree for _, tree in trees])
        leftover = [(deadline, tree) for deadline, tree in trees if tree.alive()]
        if not leftover:
            break
        _stop_leftover(leftover)
    for _, tree in trees:
        tree.returncodes.update(_platform.reap_adopted(tree.members))


def _stop_leftover(leftover: list[tuple[float, Tree]]) -> None:
    """The polite request to the marked, then the deadline, then escalation."""
    for _, tree in leftover:
        signal_members([m for m in tree.alive() if m.outcome is None and tree.marked(m.proc)], "stopped")
    deadline = max(d for d, _ in leftover)
    for _, tree in leftover:
        tree.wait_gone(max(0.0, deadline - time.monotonic()))
    for outcome, grace in (("terminated", TERM_GRACE), ("killed", KILL_WAIT)):
        members: list[Member] = []
        for _, tree in leftover:
            tree.refresh()
            members += tree.alive()
        if not members:
            break
        signal_members(members, outcome)
        end = time.monotonic() + grace
        for _, tree in leftover:
            tree.wait_gone(max(0.0, end - time.monotonic()))


def _finish_all(mine: list[Child]) -> None:
    """Finish the stops that ended together.

    Their reports go up in one message, and before anyone waiting for these
    stops is released: the exit path closes the channel once they are done.
    """
    from ._child import forget

    reports = []
    # Our own stop must not cut this short (it is raised at the end of the
    # block); a report built is a report sent, whatever else fails.
    with _member.deferred_stop():
        try:
            for c in mine:
                st = _state(c)
                if st.report is None:
                    st.report = _build_report(c, st, time.monotonic())
                    reports.append(st.report)
        finally:
            try:
                _member.record_reports(reports)
            finally:
                for c in mine:
                    _member.get_bus().close_link(c._link)
                    forget(c)
                    _state(c).done.set()


def _build_report(c: Child, st: StopState, now: float) -> StopReport:
    t0 = st.started
    link = c._link
    rc = c.returncode
    if st.already_exited:
        outcome = "exited"
    elif st.escalated:
        outcome = st.escalated
    elif (
        rc == 0
        or (st.polite_sent and rc == _platform.polite_returncode())
        or (c.joined and rc == _platform.interrupted_returncode())  # Ctrl-C's way out (asyncio.run)
    ):
        outcome = "stopped"
    else:
        outcome = "failed"
    own = ReportEntry(
        pid=c.pid,
        name=c.name,
        outcome=outcome,
        returncode=rc,
        seconds=None if st.exit_seen is None or st.already_exited else round(st.exit_seen - t0, 6),
        # With a wrapper (sh -c python ...), the member is a descendant.
        member=c.joined and link.member_pid in (None, c.pid),
    )
    tree = st.tree
    escalated = {m.pid: m.outcome for m in tree.members.values() if m.outcome} if tree else {}
    # The member's own report, its times shifted to our stop's start.
    shift = (link.stop_sent_at - t0) if link.stop_sent_at is not None else 0.0
    reported = []
    for e in link.entries:
        entry = ReportEntry(**e)
        if entry.seconds is not None:
            entry = replace(entry, seconds=round(entry.seconds + shift, 6))
        if entry.pid in escalated:
            entry = replace(entry, outcome=escalated[entry.pid] or entry.outcome)
        reported.append(entry)
    known = {e.pid for e in reported} | {c.pid}
    others = []
    if tree is not None:
        for m in sorted(tree.members.values(), key=lambda m: m.depth):
            if m.pid in known:
                continue
            if m.outcome:
                m_outcome = m.outcome
            elif st.exit_seen is not None and m.gone_at is not None and m.gone_at > st.exit_seen + 0.001:
                m_outcome = "lost"  # outlived its ancestor and went on its own
            else:
                m_outcome = "stopped"
            others.append(
                ReportEntry(
                    pid=m.pid,
                    name=m.name,
                    outcome=m_outcome,
                    returncode=tree.returncodes.get(m.pid),
                    seconds=None if m.gone_at is None else round(max(0.0, m.gone_at - t0), 6),
                    member=m.pid == link.member_pid,
                )
            )
    end = max([now] + ([st.exit_seen] if st.exit_seen else []))
    return StopReport(reason=st.reason, entries=merge_entries([[own], reported, others]), seconds=round(end - t0, 6))


def sweep_own_descendants(stop_received_at: float, deadline: float) -> list[ReportEntry]:
    """At a member's exit: stop the descendants that are not `Child` objects.

    They get the polite OS request (their stop, since they cannot hear the
    bus), until ``deadline`` minus `KILL_WAIT` to go, then a kill.

    Args:
        stop_received_at: When our own stop arrived (the entries' time origin).
        deadline: When we must be gone.

    Returns:
        One entry per such descendant.
    """
    t0 = stop_received_at
    tree = Tree([os.getpid()])
    if not tree.alive():
        return []
    signal_members(tree.alive(), "stopped")
    tree.wait_gone(max(0.0, deadline - KILL_WAIT - time.monotonic()))
    tree.refresh()
    signal_members(tree.alive(), "killed")
    tree.wait_gone(KILL_WAIT)
    tree.returncodes.update(_platform.reap_adopted(tree.members))
    return [
        ReportEntry(
            pid=m.pid,
            name=m.name,
            outcome=m.outcome or "stopped",
            returncode=tree.returncodes.get(m.pid),
            seconds=None if m.gone_at is None else round(m.gone_at - t0, 6),
            member=False,
        )
        for m in sorted(tree.members.values(), key=lambda m: m.depth)
    ]
