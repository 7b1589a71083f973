"""Stopping children: the live set, the message, the deadline, escalation, and the report.

Rules of this module:

* It is the one owner of stopping children: the set of children that may
  still need a stop (`track`, `forget`, `live_children`), each child's
  `StopState`, and every way such a stop starts (`Child.stop`, `stop_all` for
  our own stop and our exit, the test harness's `stop_children`).  It knows
  nothing of `_member`: what it needs of this process's place on the bus
  (the bus, our own stop, where reports go, holding our stop back) is handed
  to it as a `_member.Relay` with each child tracked, and `_member` reaches it
  only through the hooks `_child` installs (and `_remains`, which ends what
  a child that died on its own left behind, through `set_remains_hook`: a
  stop of that child takes it over).  So calls run one way, as the
  imports do: ``_child -> _stop -> _bus -> _protocol``, ``_child -> _member -> _bus``.
* A deadline is an absolute `time.monotonic` instant from the moment a stop
  starts (`Child.stop` turns its timeout into one) to the wire, where the bus
  turns it into a budget (`_deadlines`).
* One thread finalizes a child's stop; any other thread asking to stop the same
  child waits for that result (stopping is idempotent).
* Several children are stopped together: one wait, one escalation round, so
  the time a stop takes does not add up over siblings.
* Whatever happens, every process of the tree is gone (or reported as
  impossible to kill) when this returns, by `_deadlines.escalation_end`: the
  deadline plus `ESCALATION_MARGIN`, or this process's own deadline when it
  is itself stopping.  The escalation of the children and those of the
  descendants that outlived them share that end (`escalate`'s ``until``).
  One exception, on a stop that this process passes on: a child that said
  farewell (`_farewell_counts`) may still be finishing its exit, which the
  stop's top waits for, escalates and reaps (docs/lifecycle.md, "Farewells").
* psutil is used through `_processes`, `_tree` and `_escalation` only.  The
  snapshot of a child's tree is taken before the stop message leaves: a
  child that dies at once would take the knowledge of its subtree with it.
  One exception, where orphans come to us (Linux, a subreaper): a member's
  tree is taken right after its stop is handed to the bus thread, so that
  the walk does not hold the stop back.  If that member dies at once, what
  it leaves is re-parented to us, and told by the endpoints it carries
  (`Tree`'s ``markers``).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
import weakref
from collections.abc import Sequence

from . import _cpython, _log, _platform, _progress, _stop_log, _transport
from ._bus import Link
from ._deadlines import escalation_end, join_grace_end, level_deadline
from ._escalation import escalate, signal_members
from ._outcome import Outcome
from ._processes import runs
from ._report import ReportEntry, StopReport, merge_entries
from ._tree import ProcessTable, Tree

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable

    from ._child import Child
    from ._member import Relay


class StopState:
    """The progress of one child's stop."""

    __slots__ = (
        "child",
        "link",
        "reason",
        "started",
        "deadline",
        "done",
        "begun",
        "already_exited",
        "watch",
        "tree",
        "polite_sent",
        "requested_at",
        "escalated",
        "exit_seen",
        "gave_up",
        "farewelled",
        "last_group",
        "remains",
        "report",
    )

    def __init__(self, child: Child, link: Link, reason: str, started: float, deadline: float) -> None:
        self.child = child
        self.link = link
        self.reason = reason
        self.started = started
        self.deadline = deadline
        self.done = threading.Event()
        self.begun = False
        self.already_exited = False
        self.watch: _platform.ExitWatch | None = None  # shared by the stops that run together
        self.tree: Tree | None = None
        self.polite_sent = False
        self.requested_at: float | None = None  # when the polite request was sent
        self.escalated: Outcome | None = None
        self.exit_seen: float | None = None
        self.gave_up = False
        self.farewelled = False  # gone on at its farewell, its exit left to the stop's top
        self.last_group = True  # of the stop's `stop_order` groups: an earlier group's must be gone
        self.remains: list[Tree] = []  # what it left when it died on its own, for its tree (`set_remains_hook`)
        self.report: StopReport | None = None


# -- the children of this process ------------------------------------------------
#
# All guarded by `_lock`.  `_live` holds strong references: a child whose
# object the program dropped must still be stopped when we exit.  The others
# are weak: a report or a link is kept as long as its `Child` is.

_lock = threading.Lock()
_live: set[Child] = set()
_links: weakref.WeakKeyDictionary[Child, Link] = weakref.WeakKeyDictionary()
_stops: dict[Child, StopState] = {}  # stops under way
_reports: weakref.WeakKeyDictionary[Child, StopReport] = weakref.WeakKeyDictionary()
#: The endpoints (the markers that their non-members, and what their members
#: started by other means, inherited) of children that exited on their own,
#: with their stop timeouts: what is left of their trees is ended at our
#: exit (`at_exit`).
_exited_markers: dict[str, float] = {}
#: What this process's place on the bus gives us (`track` is handed it).
_relay: Relay | None = None
#: `_remains.claim`, once `_child` installed it (`set_remains_hook`).
_claim_remains: Callable[[list[Child]], dict[Child, list[Tree]]] | None = None


def _forget_after_fork() -> None:
    # A forked child does not own its parent's children.
    global _lock
    _lock = threading.Lock()
    _live.clear()
    _links.clear()
    _stops.clear()
    _reports.clear()
    _exited_markers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def track(child: Child, link: Link, relay: Relay) -> None:
    """Count ``child``, just started on ``link``, among the children to stop.

    If this process is stopping already, its stop was forwarded before the
    child existed: the child gets the same deadline as its siblings now.

    Args:
        child: The child.
        link: Its channel.
        relay: What this process's place on the bus gives to the stops (the
            same for every child of a process).
    """
    global _relay
    with _lock:
        _relay = relay
        _links[child] = link
        _live.add(child)
    ours = relay.own_stop()
    if ours is not None:
        reason, _, theirs = ours
        relay.bus().request_stop(link, reason, theirs)


def set_remains_hook(claim: Callable[[list[Child]], dict[Child, list[Tree]]]) -> None:
    """Install `_remains.claim` (called by `_child`): a stop of children that
    died on their own takes what they left behind into their trees, to end
    it by its deadline and report it (what was gone as the stop began as
    ``exited``)."""
    global _claim_remains
    _claim_remains = claim


def _the_relay() -> Relay:
    relay = _relay
    if relay is None:  # every child was tracked: there is one
        raise RuntimeError("shutdownbus: a child that was never tracked is being stopped; this is a bug")
    return relay


def forget(child: Child) -> None:
    """Drop a child that needs no stop any more."""
    with _lock:
        _live.discard(child)


def live_children() -> list[Child]:
    """Children of this process that may still be running."""
    with _lock:
        return list(_live)


def unreaped_pids() -> set[int]:
    """The pids of our children on the bus that are not reaped yet: running,
    or exited (one that said farewell may still be exiting, its exit the
    stop's top's to collect).  None of these pids can belong to another
    process yet, unless the program reaped a child behind ``Popen``'s back."""
    with _lock:
        children = [*_live, *_reports]
    return {c.pid for c in children if c.returncode is None or c._exit_left_to_the_top}


def stop_asked_of(child: Child) -> bool:
    """Whether a stop of ``child`` was asked for (here, or forwarded from our own parent)."""
    with _lock:
        link = _links.get(child)
        return child in _stops or child in _reports or (link is not None and link.stop_deadline is not None)


def release_if_done(child: Child) -> None:
    """Free the channel of a child that exited on its own, with no stop asked of it."""
    link = _links.get(child)
    if link is not None and child.returncode is not None and not stop_asked_of(child):
        _the_relay().bus().close_link(link)
        with _lock:
            _live.discard(child)
            _exited_markers[link.endpoint] = child.stop_timeout


def stop_all(reason: str, deadline: float | None) -> list[StopReport]:
    """Stop every child of this process that is still running, all at once.

    Args:
        reason: The stop's reason.
        deadline: When they must be gone (`time.monotonic`); None means each
            child's own `Child.stop_timeout` from now.

    Returns:
        One report per child stopped.
    """
    children = [c for c in live_children() if c.returncode is None or stop_asked_of(c)]
    if not children:
        return []
    if deadline is None:
        deadline = time.monotonic() + max(c.stop_timeout for c in children)
    return stop_children(children, reason, deadline=deadline)


def stop_children(
    children: Sequence[Child],
    reason: str,
    timeout: float | None = None,
    *,
    deadline: float | None = None,
    progress: Callable[[_progress.StopProgress], object] | None = None,
) -> list[StopReport]:
    """Stop ``children`` together; return one report per child, in order.

    Args:
        children: Children of this process.
        reason: Sent with the stop.
        timeout: Seconds before escalation, from now.
        deadline: Or when to escalate (`time.monotonic`); one of the two.  A
            stop forwarded from our own parent keeps its earlier deadline.
        progress: Called about every `REFRESH_EVERY` seconds with what the
            stops still wait for, until the children exited or were
            escalated, if this call leads them (not one that joins a stop
            under way).

    Returns:
        One report per child, the same one for a child stopped before.

    Raises:
        ValueError: ``timeout`` is not a finite, non-negative number, or
            neither or both of ``timeout`` and ``deadline`` were given.
    """
    now = time.monotonic()
    if (timeout is None) == (deadline is None):
        raise ValueError("stop_children takes a timeout or a deadline")
    if timeout is not None:
        if not (math.isfinite(timeout) and timeout >= 0):
            raise ValueError("the stop timeout must be a finite, non-negative number of seconds")
        deadline = now + timeout
    assert deadline is not None
    mine: list[StopState] = []
    waits: list[StopState | StopReport] = []
    with _lock:
        for c in children:
            if c in _reports:
                waits.append(_reports[c])
                continue
            st = _stops.get(c)
            if st is None:
                link = _links[c]
                due, why, started = deadline, reason, now
                if link.stop_deadline is not None:  # already forwarded by the bus thread
                    due = min(due, link.stop_deadline)
                    why = link.stop_reason or reason
                    started = link.stop_requested_at or now
                st = _stops[c] = StopState(c, link, why, started, due)
                mine.append(st)
            waits.append(st)
    if mine:
        orders = sorted({c.stop_order for c in children})
        try:
            for level, order in enumerate(orders):
                # One group at a time, each within its share of the time
                # (a single group, the common case, is the whole stop).
                group = [st for st in mine if st.child.stop_order == order]
                if len(orders) > 1:
                    for st in group:
                        st.deadline = min(st.deadline, level_deadline(now, deadline, level, len(orders)))
                        st.last_group = level == len(orders) - 1
                if group:
                    _stop_log.sent(
                        reason, [(st.child.pid, st.child.name) for st in group], min(st.deadline for st in group) - now
                    )
                    _run(group, progress)
                    _finish_all(group)
                # Stops of this group that another thread leads (Child.stop): the next group waits for them too.
                for w in waits:
                    if isinstance(w, StopState) and w not in mine and w.child.stop_order == order:
                        w.done.wait()
        except BaseException:
            # Interrupted (a second Ctrl-C, a stop from our own parent): the
            # stop must still complete and report, so a thread takes it over.
            left = [st for st in mine if not st.done.is_set()]
            threading.Thread(target=_complete, args=(left,), name="shutdownbus-stop", daemon=True).start()
            raise
    reports = []
    for w in waits:
        if isinstance(w, StopReport):
            reports.append(w)
            continue
        w.done.wait()
        if w.report is None:  # the finalizing thread was interrupted
            w.report = _build_report(w, time.monotonic())
        reports.append(w.report)
    return reports


def _complete(mine: list[StopState]) -> None:
    try:
        _run(mine)
    finally:
        _finish_all(mine)


def _run(mine: list[StopState], progress: Callable[[_progress.StopProgress], object] | None = None) -> None:
    """Send the stops, wait, escalate, sweep; safe to run again after an interruption."""
    bus = _the_relay().bus()
    if _claim_remains is not None:
        for child, trees in _claim_remains([st.child for st in mine]).items():
            next(st for st in mine if st.child is child).remains += trees
    # Our other children have trees of their own; what a child left is taken into its tree below.
    not_ours = {c.pid for c in live_children()} | {pid for st in mine for t in st.remains for pid in t.members}
    table = ProcessTable()  # one look at the process table for all the trees
    # One watch for the children and their trees, so one wait sees every exit.
    watch = next((st.watch for st in mine if st.watch is not None), None) or _platform.ExitWatch()
    watch.make_wakeable()  # a child's farewell wakes the wait (`_exit_noted`)

    def take_the_tree(st: StopState, member: bool) -> Tree:
        st.tree = Tree(
            [st.child.pid],
            markers=[st.link.endpoint],
            not_ours=lambda: not_ours,
            table=table,
            watch=watch,
            watched=not member,
            dead_owner=_transport.dead_owner,
            after_the_request=member and st.begun and not st.already_exited,
            # Reaped already (`poll`): its pid may be another process's by now.
            reaped_roots=[st.child.pid] if st.child.returncode is not None else (),
        )
        return st.tree

    for st in mine:
        st.link.on_farewell = watch.wake
        if st.watch is None:
            watch.add(st.child.pid, functools.partial(_returned, st.child))
            st.watch = watch
        # A member watches and reports its own tree: we look at it once the
        # member is gone, or at the deadline (`Tree`'s ``watched``).  Where
        # its orphans come to us, we take it in once the stop is on its way
        # (below); the tree of a child that is not a member is taken now:
        # what the request ends must be watched from before it is sent.
        if st.tree is None and not (_is_member(st) and _platform.orphans_stay_in_the_tree()):
            take_the_tree(st, member=_is_member(st))
    for st in mine:
        if not st.begun:
            # A child that exited after a forwarded stop reached it did stop;
            # only one that exited before any stop was asked of it "exited".
            st.already_exited = st.child.poll() is not None and st.link.stop_requested_at is None
            if not st.already_exited:
                bus.request_stop(st.link, st.reason, st.deadline)
            # Only now: a run interrupted before the request (`_complete`) makes it (a repeated one changes nothing).
            st.begun = True
    for st in mine:
        # A member's tree, once its stop is handed to the bus thread: a walk
        # of the whole subtree (some 0.25 ms a process) no longer holds back
        # the stop of the stop's top (173 ms on a 521-process tree), or of an
        # ordered stop's later groups.  (A member below passes its parent's
        # stop on from its bus thread before this runs: there the request
        # changes nothing.)  The walk is for the case that the member is
        # killed: what it leaves comes to us (Linux) and is told by the
        # endpoints it carries, as between any two walks (see the rules above).
        tree = st.tree or take_the_tree(st, member=True)
        for remains in st.remains:
            tree.take_over(remains)
        st.remains = []
    _wait_and_escalate([st for st in mine if not st.already_exited], progress)
    _sweep_leftovers(mine)


def _asked_with_the_group(tree: Tree, group: int, request: str) -> None:
    """Record on the processes of process group ``group`` that its polite
    request reached them too (they are not ``lost`` when they go after it)."""
    for m in tree.alive():
        try:
            if os.getpgid(m.pid) == group:
                m.ask(request)
        except OSError:
            pass  # gone meanwhile


def _returned(child: Child) -> bool:
    """Whether ``child`` has exited and its status was collected (`Popen.poll`)."""
    return child.poll() is not None


def _exit_noted(st: StopState) -> bool:
    """Whether the child of ``st`` is gone (or given up on, or said farewell
    to a stop that we pass on: `_farewell_counts`), noting when that was first seen."""
    if st.exit_seen is not None:
        return True
    farewell = st.link.farewell_at
    if st.child.poll() is not None or st.gave_up:
        st.exit_seen = time.monotonic()
        _stop_log.child_exited(st.child.pid, st.child.name, st.child.returncode, st.exit_seen - st.started)
        if st.tree is not None:
            # A member's tree was its own to watch: what outlives it is ours
            # from now on (seen ending, so that it can be told `lost`), not
            # only once its siblings are done too.
            st.tree.alive()
    elif farewell is not None and _farewell_counts(st):
        st.farewelled, st.exit_seen = True, farewell
        _stop_log.child_said_farewell(st.child.pid, st.child.name, farewell - st.started)
    return st.exit_seen is not None


def _is_member(st: StopState) -> bool:
    """Whether the child of ``st`` joined the bus itself (not a process below a wrapper of it)."""
    return bool(st.child.joined and st.link.member_pid in (None, st.child.pid))


def _farewell_counts(st: StopState) -> bool:
    """Whether the farewell of the child of ``st`` ends our wait for it: it
    said it (only its finalization is left), it is the member itself (not a
    wrapper's), and this process says farewell to its own parent, so that
    the stop's top, which waits for every exit, waits for this one too."""
    return (
        st.link.farewell_at is not None
        and _is_member(st)
        and not st.child.clean_exits  # what only its parent knows is clean: its exit is waited for
        and st.last_group  # the next group of an ordered stop waits until this one is gone
        and _the_relay().passes_farewells()
        # Last, and only while no thread here waits for it (one that does may
        # reap it, and its status would be lost): from now on nothing reaps it.
        and _cpython.mark_unwaited(st.child, functools.partial(setattr, st.child, "_exit_left_to_the_top", True))
    )


def _wait_and_escalate(
    pending: list[StopState], progress: Callable[[_progress.StopProgress], object] | None = None
) -> None:
    refreshed = members_refreshed = time.monotonic()
    while True:
        pending = [st for st in pending if not _exit_noted(st)]
        if not pending:
            return
        now = time.monotonic()
        # Our own parent's stop may have brought a deadline forward: the one it
        # forwarded (the first group's), or ours for our children (every group:
        # a later group's link gets no deadline until its turn).
        ours = _the_relay().own_stop()
        for st in pending:
            st.deadline = min(st.deadline, st.link.stop_deadline or st.deadline, ours[2] if ours else st.deadline)
        # Wake at least every quarter second, to see such a change.
        wake_at = min(now + 0.25, *(st.deadline for st in pending))
        for st in pending:
            policy = st.child.stop_policy
            if st.polite_sent or st.child.joined or policy.joins is True:
                continue  # a declared member waits for its join, however slow (_policy's rule)
            # A child declared not to join gets no grace: its request goes now.
            grace_end = (
                st.started if policy.joins is False else join_grace_end(st.link.opened_at, st.started, st.deadline)
            )
            if now >= grace_end:
                # Not a member: the OS-native polite request is its stop.  Where
                # that request ends a process outright, it cannot stop its own
                # children (a server its workers): they get it too, deepest first.
                # Windows: where that request ends a process outright
                # (TERMINATE), the child's job ends it and its whole subtree at
                # once, also what no walk finds (see `_end_job`).
                final = _platform.request_is_final(policy.request)
                if final and _end_job(st, Outcome.STOPPED):
                    st.requested_at = time.monotonic()
                else:
                    if final and st.tree is not None:
                        signal_members(st.tree.alive(), Outcome.STOPPED)
                    if _platform.send_request(st.child, policy.request, group=policy.group):
                        st.requested_at = time.monotonic()
                        if policy.group and st.tree is not None:
                            _asked_with_the_group(st.tree, st.child.pid, policy.request)
                    elif _end_job(st, Outcome.TERMINATED):
                        # Windows: CTRL_BREAK could not be sent (no console:
                        # pythonw, a service; wine): no polite request can reach
                        # it, so its job ends it now, not at its deadline.
                        st.escalated = Outcome.TERMINATED
                st.polite_sent = True
            else:
                wake_at = min(wake_at, grace_end)
        overdue = [st for st in pending if now >= st.deadline]
        if overdue:
            _escalate(overdue)
            continue
        watch = pending[0].watch
        if watch is not None:
            watch.wait(wake_at - now)
        now = time.monotonic()
        if now - refreshed >= REFRESH_EVERY:  # catch processes started during the stop
            refreshed = now
            members_due = now - members_refreshed >= MEMBER_TREE_REFRESH_EVERY
            if members_due:
                members_refreshed = now
            _refresh([st.tree for st in pending if st.tree is not None and (st.tree.watched or members_due)])
            if progress is not None:
                _progress.call(progress, functools.partial(_progress.of_stops, pending))


#: How often a long stop looks for processes started since its snapshot (it
#: always looks again before escalating and after the children exited).
REFRESH_EVERY = 0.25
#: How often it looks below a member child that still runs (a tree it has
#: not been asked about: `Tree`'s ``watched``).  That member stops and
#: reports its own tree; the look only keeps what it started known here,
#: should it be killed before it reports.  On Linux what inherited the
#: member's endpoint comes to us and is found without it
#: (`_environment.ENV_BELOW`), so it looks every second there; elsewhere
#: (no subreaper) as often as below other children.  At every level of a
#: tree of members the looks covered all that lies below (processes x
#: depth): in a member with ten leaf members, 7 of the 10 ms of CPU that
#: its wait took (the 111-process tree).
MEMBER_TREE_REFRESH_EVERY = 1.0 if _platform.orphans_stay_in_the_tree() else REFRESH_EVERY


def _refresh(trees: list[Tree]) -> None:
    if not trees:
        return  # no table: elsewhere than on Linux, making one reads the whole process table
    table = ProcessTable()
    for tree in trees:
        tree.refresh(table)


class _ChildHead:
    """Our own child, signalled through its ``Popen`` (which keeps its exit status)."""

    def __init__(self, st: StopState) -> None:
        self.st = st
        self.who = (st.child.pid, st.child.name)  # for the stop log (`_escalation.escalate`)

    def signal(self, outcome: Outcome) -> None:
        if self.st.child.poll() is None:
            self.st.child.kill() if outcome == Outcome.KILLED else self.st.child.terminate()
            self.st.escalated = outcome

    def gone(self) -> bool:
        return self.st.child.poll() is not None


def own_deadline() -> float | None:
    """This process's own deadline, when it is itself stopping (see `_deadlines.escalation_end`)."""
    ours = _the_relay().own_stop()
    return None if ours is None else ours[1]


def _escalate(overdue: list[StopState]) -> None:
    """Terminate, then kill, each overdue child and all its descendants, deepest first.

    Windows: each child's job ends its whole subtree first (`_end_job`); the
    walk then finds only what escaped the job.
    """
    until = escalation_end(max(st.deadline for st in overdue), own_deadline())
    _stop_log.deadline_passed((st.child.pid, st.child.name) for st in overdue)
    for st in overdue:
        if _end_job(st, Outcome.TERMINATED):
            st.escalated = Outcome.TERMINATED
    escalate([st.tree for st in overdue if st.tree is not None], [_ChildHead(st) for st in overdue], until=until)
    for st in overdue:
        if st.child.poll() is None:
            st.gave_up = True
            _log.warning("shutdownbus: pid %d survived SIGKILL (uninterruptible?); giving up on it", st.child.pid)


# -- Windows: the job of each child (see _platform.contain) ----------------------


def _end_job(st: StopState, outcome: Outcome) -> bool:
    """Windows: end the child and its whole subtree at once with its Job
    Object (TerminateJobObject): what the walk sees and what it cannot (a
    process whose parent exited is nobody's child there, and one that dropped
    the marker from its environment is not recognised).  The processes of the
    tree still running, and those of the job that no walk found (taken into
    the tree first, so that the report lists them), get ``outcome``.
    Elsewhere, or a child with no job, or one that exited: False, nothing done."""
    job = st.child.job
    if job is None or st.child.poll() is not None:
        return False
    alive = []
    if st.tree is not None:
        st.tree.refresh()
        # What the job holds and no walk found is ended too: the report says so.
        st.tree.take_in(job.pids() or (), st.child.pid)
        alive = st.tree.alive()
    if not job.terminate():
        return False
    for m in alive:
        m.outcome = m.outcome or outcome
    return True


def _end_leftover_jobs(mine: list[StopState]) -> None:
    """Windows: once a stop is over, end what is still in each child's job:
    processes the walk could not see (see `_end_job`).  Elsewhere: nothing."""
    for st in mine:
        job = st.child.job
        if job is not None and job.active_processes():
            job.terminate()


def _sweep_leftovers(mine: list[StopState]) -> None:
    """Descendants still running after their child exited.

    Those that started with the tree's marker cannot hear the bus (a
    non-member's descendants, what a member started by other means than
    `spawn`), nor can non-members that a dead process of the tree left
    (`Tree.left_by_the_dead`): they get the polite OS request at once (it
    is their stop).
    The others (members among them stop on their own when they see their
    parent gone) and companions (`Tree`) get until the deadline.  Then
    whatever is left is terminated and killed.

    A tree whose children could not be listed (no descriptor left: see
    `_tree`) may hide processes: it is looked at again until its deadline,
    in case the descriptors come back, and the report says what could not
    be checked.
    """
    # A child that said farewell has stopped its tree; its exit, and what is
    # still finishing below it, are the stop's top's to wait for (and reap).
    trees = [(st.deadline, st.tree) for st in mine if st.tree is not None and not st.farewelled]
    rounds = 0
    while True:
        # Looked at again each round: a process asked to go may fork as it
        # goes, and its child, re-parented to us, carries the marker.
        for _, tree in trees:
            tree.roots = [m.pid for m in tree.alive()]
        _refresh([tree for _, tree in trees])
        leftover = [(deadline, tree) for deadline, tree in trees if tree.alive()]
        if not leftover or rounds == 3:
            hidden = [deadline for deadline, tree in trees if tree.unchecked and time.monotonic() < deadline]
            if not hidden:
                break
            time.sleep(min(0.05, max(hidden) - time.monotonic()))
            continue
        rounds += 1
        for _, tree in leftover:
            unheard = [
                m
                for m in tree.alive()
                if m.outcome is None and not m.companion and (tree.marked(m.proc) or tree.left_by_the_dead(m))
            ]
            signal_members(unheard, Outcome.STOPPED)
        deadline = max(d for d, _ in leftover)
        for _, tree in leftover:
            tree.wait_gone(max(0.0, deadline - time.monotonic()))
        # However many rounds it takes, the escalations of one stop end together.
        escalate([tree for _, tree in leftover], until=escalation_end(deadline, own_deadline()))
    _end_leftover_jobs(mine)
    for st in mine:
        if st.tree is not None and not st.farewelled:
            _reap(st)


def _reap(st: StopState) -> None:
    """Collect the exit status of what of the tree of ``st`` was re-parented
    to us (a subreaper): processes orphaned below it, and those that said
    farewell (`Farewell`), whose parents went on without reaping them.

    Linux: a zombie comes to us only once its parent has exited entirely
    (all its threads), which may be a moment after that parent looked gone:
    each process that said farewell and is not reaped yet is waited for
    until it has exited entirely, so that, when they all have, every one of
    them is ours to reap (none is left a zombie in this process).
    """
    tree = st.tree
    assert tree is not None
    # Not what was reaped before (by `_remains`): its pid may be another process's by now.
    reaped = tree.settled | tree.returncodes.keys()  # a second run (`_complete`) reaps none of them again
    tree.returncodes.update(_platform.reap_adopted(pid for pid in tree.members if pid not in reaped))
    if not _platform.orphans_stay_in_the_tree():
        return  # nothing says farewell there (`_member._says_farewell`)
    farewelled = {e["pid"] for e in st.link.entries if e["member"] and e["returncode"] is None}
    left = farewelled - tree.returncodes.keys() - {st.child.pid}
    if left:
        tree.wait_exited(left, escalation_end(st.deadline, own_deadline()) - time.monotonic())
        tree.returncodes.update(_platform.reap_adopted(left))


def _finish_all(mine: list[StopState]) -> None:
    """Finish the stops that ended together.

    Their reports go up in one message, and before anyone waiting for these
    stops is released: the exit path closes the channel once they are done.
    """
    reports = []
    relay = _the_relay()
    # Our own stop must not cut this short (it is raised at the end of the
    # block); a report built is a report sent, whatever else fails.
    with relay.deferred_stop():
        try:
            for st in mine:
                if st.report is None:
                    st.report = _build_report(st, time.monotonic())
                    reports.append(st.report)
                    _stop_log.child_done(st.report)
        finally:
            try:
                relay.send_reports(reports)
            finally:
                bus = relay.bus()
                with _lock:
                    for st in mine:
                        st.link.on_farewell = None  # the watch (its descriptors) goes with the stop
                        bus.close_link(st.link)
                        _live.discard(st.child)
                        _stops.pop(st.child, None)
                        if st.tree is not None and st.tree.unchecked:  # it may have left orphans we could not see
                            _exited_markers[st.link.endpoint] = st.child.stop_timeout
                        if st.report is not None:
                            _reports[st.child] = st.report
                for st in mine:
                    st.done.set()


def _build_report(st: StopState, now: float) -> StopReport:
    t0 = st.started
    c, link = st.child, st.link
    rc = c.returncode
    outcome: Outcome
    if st.already_exited:
        outcome = Outcome.EXITED
    elif st.escalated:
        outcome = st.escalated
    elif st.farewelled and rc is None:
        outcome = Outcome.STOPPED  # its exit status is the top's to collect (`_reaped_here`)
    elif (
        rc == 0
        or (st.polite_sent and rc == _platform.request_returncode(c.stop_policy.request))
        # A member may leave the way Ctrl-C's KeyboardInterrupt does (asyncio.run),
        # or turn the stop into its own SIGTERM and die of it once done (uvicorn).
        or (c.joined and rc in _platform.stopped_returncodes())
        or (rc is not None and (rc if rc >= 0 else 128 - rc) in c.clean_exits)  # spawn(clean_exits=...)
    ):
        outcome = Outcome.STOPPED
    else:
        outcome = Outcome.FAILED
    # With a wrapper (sh -c python ...), the member is a descendant.
    member = c.joined and link.member_pid in (None, c.pid)
    request, sent_at = ("stop", link.stop_sent_at) if member else (c.stop_policy.request, st.requested_at)
    own = ReportEntry(
        pid=c.pid,
        name=c.name,
        outcome=outcome,
        returncode=rc,
        seconds=None if st.exit_seen is None or st.already_exited else round(st.exit_seen - t0, 6),
        member=member,
        request=request if sent_at is not None else None,
        requested=None if sent_at is None else round(max(0.0, sent_at - t0), 6),
    )
    tree = st.tree
    escalated = {m.pid: m.outcome for m in tree.members.values() if m.outcome} if tree else {}
    # The member's own report, its times shifted to our stop's start.
    shift = (link.stop_sent_at - t0) if link.stop_sent_at is not None else 0.0
    reported = []
    for e in link.entries:
        entry = ReportEntry.from_dict(e)
        if not _may_be_in(entry.pid, c.pid, tree):
            continue
        if entry.seconds is not None:
            entry = entry.replace(seconds=round(entry.seconds + shift, 6))
        if entry.requested is not None:
            entry = entry.replace(requested=round(entry.requested + shift, 6))
        if entry.pid in escalated:
            entry = entry.replace(outcome=escalated[entry.pid] or entry.outcome)
        if entry.member and entry.returncode is None and tree is not None and entry.pid in tree.returncodes:
            entry = _reaped_here(entry, tree, t0)
        if entry.member and entry.request is None:  # it joined: its own parent's stop reached it over the bus
            entry = entry.replace(request="stop")
        reported.append(entry)
    known = {e.pid for e in reported} | {c.pid}
    others = [] if tree is None else tree.entries(t0, lost_after=st.exit_seen, member_pid=link.member_pid, skip=known)
    end = max([now] + ([st.exit_seen] if st.exit_seen else []))
    unchecked = tuple(sorted(tree.unchecked)) if tree is not None else ()
    entries = merge_entries([[own], reported, others])
    return StopReport(reason=st.reason, entries=entries, seconds=round(end - t0, 6), unchecked=unchecked)


def _reaped_here(entry: ReportEntry, tree: Tree, t0: float) -> ReportEntry:
    """A member's entry for a process that said farewell to its parent
    (`Farewell`): we reaped it, so its exit status, and when it was gone,
    are ours to fill in.  A status that is not a stop's (0, or the signal of
    one) makes it ``failed``: its parent declared no other clean exit for
    it, or it would have waited for the exit itself (`_farewell_counts`)."""
    rc = tree.returncodes[entry.pid]
    member = tree.members.get(entry.pid)
    if member is not None and member.gone_at is not None:
        entry = entry.replace(seconds=round(max(0.0, member.gone_at - t0), 6))
    if entry.outcome == Outcome.STOPPED and rc != 0 and rc not in _platform.stopped_returncodes():
        entry = entry.replace(outcome=Outcome.FAILED)
    return entry.replace(returncode=rc)


def _may_be_in(pid: int, root: int, tree: Tree | None) -> bool:
    """Whether a member's report entry for ``pid`` may be of its own subtree.

    A process we saw in the subtree is; one that is gone may have been (it
    can have come and gone between two looks); one that runs now outside
    the subtree (pid 1, our own, an ancestor's) was put there by a member
    that lies, and is dropped.
    """
    if pid == root or (tree is not None and pid in tree.members):
        return True
    return pid != os.getpid() and not runs(pid)


def at_exit(reason: str, deadline: float | None) -> None:
    """At this process's exit: stop the children still running, then end what
    is left of the trees of children that exited on their own.

    A child that never joined (a shell script, a server in another language)
    may leave processes behind when it exits: background jobs, a daemon that
    double-forked; so may a member, with what it started by other means
    than `spawn`.  They carry its marker (`Tree`), and as a subreaper (Linux) we
    adopted them; they get the polite request, the child's stop timeout to
    go, then escalation.  Elsewhere they were adopted by init, out of reach.

    Args:
        reason: The stop's reason.
        deadline: When they must be gone (`time.monotonic`); None means each
            child's own `Child.stop_timeout` from now.
    """
    stop_all(reason, deadline)
    with _lock:
        exited = dict(_exited_markers)
    if not exited or not _platform.has_children():
        return
    tree = Tree([], markers=exited)
    if tree.alive():
        signal_members([m for m in tree.alive() if not m.companion], Outcome.STOPPED)
        end = deadline if deadline is not None else time.monotonic() + max(exited.values())
        tree.wait_gone(max(0.0, end - time.monotonic()))
        escalate([tree])
    tree.watch.close()
