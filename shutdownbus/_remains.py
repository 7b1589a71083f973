"""What a killed child leaves behind: the remains of a dead spawner (Linux).

A child of ours that is killed (SIGKILL, the OOM killer, a crash) stops
none of its own children.  Those that may not join get their polite request
from the kernel (the parent-death signal that `spawn` sets up); their own
children (a shell's background jobs, a server's workers) get nothing, and
the kernel re-parents them to the nearest subreaper, which is this process:
every process that spawns is one.  This module ends them, as the dead child
would have.

Rules of this module:

* It acts on the exit of a child of ours that no stop of ours asked for (a
  stop walks and escalates that child's tree itself), and looks for remains
  from then until that child's stop timeout and the escalation margin have
  passed, or until a stop of that child begins: what the kernel re-parents
  later is left to our own stop.
* It ends only processes re-parented to us that carry, in the environment
  they started with, a spawn marker (``SHUTDOWNBUS_ENDPOINT``) whose owner
  is that dead child of ours, by pid and start time
  (`_transport.owner_is_dead`): never a process of a live spawner, such as
  a daemon that double-forked below a child that runs, nor what a stranger
  (a top-level spawner we started with Popen) left to us as the nearest
  subreaper: that is its guard's (`_guard`).
* A member among them (`_platform.joined_the_bus`) is stopping itself on
  'parent-lost': it is not asked to go.  Every other process gets SIGTERM
  at once (a stop signal its dead spawner declared for a child is not
  known here; that child got it from the kernel): a member that cannot be
  told from outside (one in another language) got the parent-death signal
  a moment before, and takes this one as it took that (protocol 7.6; the
  Node.js member does).
* A marker's processes have its stop timeout (``SHUTDOWNBUS_STOP_TIMEOUT``,
  as the dead child gave it) and the escalation margin from when they were
  found (a member among them stopping on 'parent-lost' escalates its own
  by then); then what is left is escalated, deepest first, and reaped.
* Linux only (pidfds, subreapers); elsewhere nothing is watched: Windows'
  Job Objects end a dead spawner's subtree, and macOS has no way
  (docs/lifecycle.md).
* One thread of its own, started by the first death, ending when its last
  look is done; the bus thread only tells it of a death.
* What it found is that dead child's subtree: a stop of that child that
  begins within that time takes it into that child's tree (`claim`, which
  `_child` gives `_stop` as a hook), what ended and what still runs, to end
  it by its own deadline and report it; from then on nothing of that child
  is taken here.  Nothing of it is kept here past that time, whether a stop
  came or not.
"""

from __future__ import annotations

import os
import threading
import time

from . import _platform, _stop, _transport
from ._deadlines import ESCALATION_MARGIN, escalation_end, stop_timeout_from
from ._environment import ENV_ENDPOINT, ENV_STOP_TIMEOUT
from ._escalation import escalate, signal_members
from ._outcome import Outcome
from ._processes import environment_of, parent_pid, process, runs
from ._tree import Tree

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from ._bus import Bus
    from ._child import Child

#: How often our children are looked at while remains may still come.
LOOK_EVERY = 0.05

_lock = threading.Lock()  # guards the two below, and which children of ours died (`_Remains`)
_look_until = 0.0  # `time.monotonic` of the last look still due
_sweeper: threading.Thread | None = None
_looking = threading.Lock()  # one look at a time (the sweeper's, or the exit path's)


def watch(child: Child, bus: Bus) -> None:
    """Linux: when ``child`` exits with no stop of ours asked of it, look for
    its remains (see the module's rules).  Every other OS: nothing."""
    fd = _platform.exit_fd(child.pid)
    if fd is None:
        return
    try:
        # Its identity, as its runtime directory names it; not reaped yet,
        # so readable even if it has exited already (a shell that started
        # a background job and ended at once).
        started = _transport.start_ticks(child.pid, zombie=True)
    except OSError:
        started = None
    if started is None:
        os.close(fd)
        return  # it cannot be told: no marker can be proven its

    def on_exit() -> None:  # on the bus thread
        bus.unwatch(fd)
        os.close(fd)
        if not _stop.stop_asked_of(child):
            look_for_remains(child.stop_timeout + ESCALATION_MARGIN, (child.pid, started), child)

    bus.watch(fd, on_exit)


def look_for_remains(window: float, dead: tuple[int, int], child: Child | None = None) -> None:
    """Look for what the dead child ``dead`` (pid, start ticks) left behind
    among our children from now until ``window`` seconds have passed (longer
    if a look is due later already).  ``child`` is its `Child`, whose stop
    takes over what was found (`claim`)."""
    global _look_until, _sweeper
    with _lock:
        _remains.dead_children[dead] = child
        _remains.deaths_told += 1
        _remains.expires[dead] = time.monotonic() + window
        _look_until = max(_look_until, time.monotonic() + window)
        if _sweeper is not None:
            return  # it looks until then (it sets itself to None, under the lock, as it ends)
        _sweeper = threading.Thread(target=_sweep, name="shutdownbus-remains", daemon=True)
        _sweeper.start()


def at_exit(deadline: float | None) -> None:
    """At this process's exit: end the remains found or due, by ``deadline``
    (`time.monotonic`; None: by their own deadlines)."""
    global _look_until
    with _lock:
        if _sweeper is None:
            return  # no look is due: no child of ours died on its own lately
        _look_until = 0.0
    with _looking:
        _remains.look()
        _remains.finish(deadline)


def claim(children: Collection[Child]) -> dict[Child, list[Tree]]:
    """For a stop of ``children`` that begins: hand it what was found of
    each that died on its own, to take into that child's tree
    (`Tree.take_over`).  What ended here (reaped, so gone before the stop's
    top could see it) is for its report; what still runs is the stop's from
    now on, to wait for, escalate, reap and report.  What the kernel
    re-parents to us later is left to the stop's own look (`Tree`'s
    ``dead_owner``).

    Args:
        children: The children whose stop begins.

    Returns:
        For each child that had any: the trees found of it, ended or not.
    """
    if not any(child in children for child in list(_remains.dead_children.values())):
        return {}  # the usual case: none of them died on its own lately
    with _looking:
        return _remains.claim(children)


def _sweep() -> None:
    global _sweeper
    while True:
        with _looking:
            _remains.look()
            with _lock:
                if time.monotonic() >= _look_until and not _remains.pending:
                    _remains.forget()  # a pid judged now may be another process's by the next death
                    _sweeper = None
                    return
        time.sleep(LOOK_EVERY)


def end_what_a_dead_spawner_left(spawner: tuple[int, int], asked: Callable[[int], bool]) -> None:
    """A guard's work (`_guard`), once the process it guards, ``spawner``, is
    dead: end every process of this user that carries one of its markers, as
    `look_for_remains` does for our children, and return when they are gone.

    Args:
        spawner: The dead spawner's pid and start ticks (its runtime
            directory's owner file names them).
        asked: Whether a pid is one that got a request from the kernel at its
            death (its parent-death signal): it is not asked again, nor what
            runs below it; all are escalated at their deadline.
    """
    remains = _Remains(
        candidates=_platform.pids_of_this_user,
        owner=lambda marker: spawner if _transport.owner_is_dead(marker, owner=spawner) else None,
        asked=asked,
    )
    # Unlike our children, they all carry the marker from their start: what
    # is there is found at once (or at a later look, if in the middle of an
    # exec), and what they start meanwhile is found below them.
    look_until = time.monotonic() + FIRST_LOOKS
    while True:
        remains.look()
        if time.monotonic() >= look_until and not remains.pending:
            return
        time.sleep(LOOK_EVERY)


#: How long a guard looks for remains that are not all there at once (a
#: process in the middle of its exec, whose environment cannot be read yet).
FIRST_LOOKS = 0.25


def _our_children() -> list[int]:
    return _platform.child_pids(os.getpid())


class _Remains:
    """The remains found so far, each marker's with its own deadline.

    Args:
        candidates: The pids to look among (our children, by default).
        owner: The dead process, ``(pid, start ticks)``, that made a marker
            whose carriers are remains; None for any other marker (by
            default: the owner must be one of our children that died on its own).
        asked: Whether a pid already got a request from the kernel (none, by default).
    """

    def __init__(
        self,
        candidates: Callable[[], list[int]] = _our_children,
        owner: Callable[[str], tuple[int, int] | None] | None = None,
        asked: Callable[[int], bool] = lambda pid: False,
    ) -> None:
        self.candidates, self.asked = candidates, asked
        self.owner = owner or self._dead_child_that_made
        #: Whether an owner may be told of after its remains were first seen:
        #: our children's deaths come from the bus thread; a guard knows its
        #: one dead spawner from the start.
        self.owners_die_later = owner is None
        #: Our children that died on their own, (pid, start ticks), with
        #: their `Child`: the markers whose owners they are (and no other: a
        #: process that someone else's spawner left to us, the nearest
        #: subreaper, is that spawner's guard's business).
        self.dead_children: dict[tuple[int, int], Child | None] = {}
        #: When each dead child's look ends (`look_for_remains`' window).
        self.expires: dict[tuple[int, int], float] = {}
        #: The dead owner of each tree taken, and the trees ended, by owner,
        #: until a stop of that owner's `Child` takes them over (`claim`).
        self.owner_of: dict[Tree, tuple[int, int]] = {}
        self.ended: dict[tuple[int, int], list[Tree]] = {}
        self.judged: dict[int, str | None] = {}  # pid of a candidate -> its dead owner's marker, or None
        #: Candidates whose marker's owner is no dead child of ours, yet: it
        #: may be one whose death the bus thread has not told us of (the
        #: kernel re-parents its orphans to us as it dies).  Judged again
        #: while they are our children, once a death was told since (by
        #: pid -> its marker, its stop timeout, its start time, and
        #: `deaths_told` when it was last judged).
        self.unowned: dict[int, tuple[str, str | None, float | None, int]] = {}
        self.deaths_told = 0  # how many deaths `look_for_remains` was told of
        self.spared: set[int] = set()  # pids not asked to go (members that joined)
        self.pending: list[tuple[Tree, float]] = []  # (remains, deadline)
        # Of each pending tree: the processes left to others (members that
        # joined, children the kernel asked), and those not asked yet.
        self.heads: dict[Tree, set[int]] = {}
        self.unasked: dict[Tree, set[int]] = {}

    def forget(self) -> None:
        """Forget the processes judged and spared, the dead children and what
        was ended of them (none is pending)."""
        self.judged.clear()
        self.unowned.clear()
        self.spared.clear()
        self.dead_children.clear()
        self.expires.clear()
        self.owner_of.clear()
        self.ended.clear()

    def _dead_child_that_made(self, marker: str) -> tuple[int, int] | None:
        return next((dead for dead in list(self.dead_children) if _transport.owner_is_dead(marker, owner=dead)), None)

    def _drop_the_expired(self) -> None:
        """Forget each dead child whose look is over and of which nothing is
        pending: a sweeper that new deaths keep looking would otherwise keep
        them all (a server whose children are killed now and then)."""
        now = time.monotonic()
        pending = {self.owner_of.get(tree) for tree, _ in self.pending}
        for dead, until in list(self.expires.items()):
            if now >= until and dead not in pending:
                self._drop(dead)

    def _drop(self, dead: tuple[int, int]) -> None:
        self.expires.pop(dead, None)
        self.dead_children.pop(dead, None)
        self.ended.pop(dead, None)

    def look(self) -> None:
        """One look at the candidates: take what is new, ask what its head
        left, escalate what is due."""
        with _lock:  # the bus thread adds the dead children under it
            self._drop_the_expired()
        found, carriers = self._new_remains()
        for owner, markers in found.items():
            self._take(owner, markers, carriers)
        for tree, _ in self.pending:
            self._ask(tree)
        now = time.monotonic()
        self._end([p for p in self.pending if p[1] <= now or not p[0].alive()])

    def finish(self, deadline: float | None) -> None:
        """Wait (up to ``deadline``, or each one's own) for the remains to
        go, and escalate the rest (by ``deadline``, if given: the escalation
        then leaves part of it for that)."""
        for tree, own in list(self.pending):
            end = own if deadline is None else min(own, deadline)
            tree.wait_gone(max(0.0, end - time.monotonic()))
        until = None if deadline is None else escalation_end(deadline, _stop.own_deadline())
        self._end(list(self.pending), until=until)

    def _end(self, due: list[tuple[Tree, float]], until: float | None = None) -> None:
        for tree, deadline in due:
            self.pending.remove((tree, deadline))
            self.heads.pop(tree, None)
            self.unasked.pop(tree, None)
            if tree.alive():
                escalate([tree], until=until)
            tree.returncodes.update(_platform.reap_adopted(tree.members))
            tree.watch.close()
            owner = self.owner_of.pop(tree, None)
            if owner is not None and self.dead_children.get(owner) is not None:  # a stop of it may take it over
                self.ended.setdefault(owner, []).append(tree)
        if not self.pending and self.spared:
            _platform.reap_adopted(self.spared)

    def _stop_asked_of(self, owner: tuple[int, int]) -> bool:
        """Whether a stop of the dead child ``owner`` was asked: it claims
        what was taken of it, and its own look takes the rest (`claim`)."""
        child = self.dead_children.get(owner)
        return child is not None and _stop.stop_asked_of(child)

    def claim(self, children: Collection[Child]) -> dict[Child, list[Tree]]:
        """`claim` (the module's function), under `_looking`."""
        claimed: dict[Child, list[Tree]] = {}
        for dead, child in list(self.dead_children.items()):
            if child is None or child not in children:
                continue
            running = [tree for tree, _ in self.pending if self.owner_of.get(tree) == dead]
            self.pending = [(tree, until) for tree, until in self.pending if tree not in running]
            for tree in running:
                del self.owner_of[tree]
                self.heads.pop(tree, None)
                self.unasked.pop(tree, None)
                self.spared.difference_update(tree.members)  # the stop's to reap now, not ours
            claimed[child] = self.ended.get(dead, []) + running
            with _lock:
                self._drop(dead)
        return claimed

    def _new_remains(self) -> tuple[dict[tuple[int, int], dict[str, float]], list[int]]:
        """Markers of dead owners carried by candidates not seen before, by
        owner, with their stop timeouts; and those candidates."""
        try:
            candidates = self.candidates()
        except OSError:
            return {}, []
        # A judgment holds while its process is a candidate: once it is not
        # (it ended and was reaped), its pid may come back as another process
        # (pid_max is often 32768), which must be judged afresh.  A sweeper
        # that each new death keeps looking (a server whose children end now
        # and then) used to keep every judgment: that process's remains,
        # should it get a judged pid, went unseen (and the dict grew).
        current = set(candidates)
        for pid in [pid for pid in self.judged if pid not in current]:
            del self.judged[pid]
            self.unowned.pop(pid, None)
        ours = {c.pid for c in _stop.live_children()}
        found: dict[tuple[int, int], dict[str, float]] = {}
        carriers: list[int] = []
        for pid in candidates:
            if pid in self.unowned and pid not in ours:
                self._judge_again(pid, found, carriers)
                continue
            if pid in self.judged or pid in ours:
                continue
            if any(pid in tree.members for tree, _ in self.pending):
                self.judged[pid] = None  # re-parented from remains already taken: not asked twice
                continue
            proc = process(pid)
            environ = environment_of(proc) if proc is not None else {}
            if not environ:
                if proc is None or not runs(pid) or _older_than(pid, NEWBORN):
                    self.judged[pid] = None  # gone, or none to read (a kernel thread): never one of ours
                continue  # in the middle of its exec: judged at a later look
            marker = environ.get(ENV_ENDPOINT)
            self.judged[pid] = None
            if marker is None:
                continue
            self.unowned[pid] = marker, environ.get(ENV_STOP_TIMEOUT), _started(pid), -1
            self._judge_again(pid, found, carriers)
            if not self.owners_die_later:
                self.unowned.pop(pid, None)  # judged for good
        return found, carriers

    def _judge_again(self, pid: int, found: dict[tuple[int, int], dict[str, float]], carriers: list[int]) -> None:
        """Take ``pid`` among the remains found (into ``found`` and
        ``carriers``) if the owner of its marker is a dead child of ours by
        now, and no stop of that child was asked."""
        marker, stop_timeout, started, told = self.unowned[pid]
        if told == self.deaths_told:
            return  # no death told since: the same answer
        if told >= 0 and (started is None or _started(pid) != started):
            del self.unowned[pid], self.judged[pid]  # another process by now: judged afresh at the next look
            return
        self.unowned[pid] = marker, stop_timeout, started, self.deaths_told
        owner = self.owner(marker)
        if owner is None:
            return  # not yet, or never: judged again once another death is told
        del self.unowned[pid]
        if self._stop_asked_of(owner):
            return
        self.judged[pid] = marker
        found.setdefault(owner, {})[marker] = stop_timeout_from(stop_timeout)
        carriers.append(pid)

    def _take(self, owner: tuple[int, int], markers: dict[str, float], carriers: list[int]) -> None:
        """Take the carriers of ``markers`` (those of ``owner``'s) and what runs below them."""
        tree = Tree(
            [], markers=markers, not_ours=lambda: {c.pid for c in _stop.live_children()}, adopt_from=lambda: carriers
        )
        self.owner_of[tree] = owner
        self.spared.update(m.pid for m in tree.alive() if _platform.joined_the_bus(m.pid))
        # A member stops its own children on 'parent-lost', each with its own
        # request; a child the kernel asked takes what it started along (an
        # nginx master its workers): neither they nor what runs below them
        # is asked again while they run (what one leaves when it ends is
        # asked then).  All of it is escalated at the deadline.
        self.heads[tree] = {pid for pid in tree.members if pid in self.spared or self.asked(pid)}
        self.unasked[tree] = set(tree.members)
        self._ask(tree)
        self.pending.append((tree, time.monotonic() + max(markers.values()) + ESCALATION_MARGIN))

    def _ask(self, tree: Tree) -> None:
        """Ask to go what of ``tree`` was not asked yet and runs below no
        live head (a head that died, a shell the kernel asked, leaves its
        background jobs to us)."""
        unasked = self.unasked.get(tree)
        if not unasked:
            return
        alive = [m for m in tree.alive() if m.pid in unasked]
        heads = {m.pid for m in alive if m.pid in self.heads[tree]}
        parents = {m.pid: parent_pid(m.proc) for m in alive}  # now: a carrier is shown below us, not its parent
        due = [m for m in alive if not _below(m.pid, heads, parents)]
        signal_members(due, Outcome.STOPPED)
        unasked.difference_update(m.pid for m in due)
        unasked.intersection_update(m.pid for m in alive)


def _below(pid: int, heads: set[int], parents: dict[int, int | None]) -> bool:
    """Whether ``pid`` is one of ``heads`` or runs below one, by ``parents``."""
    seen: int | None = pid
    for _ in range(len(parents) + 1):  # a bound, should the links loop (pids reused meanwhile)
        if seen is None:
            return False
        if seen in heads:
            return True
        seen = parents.get(seen)
    return False


def _started(pid: int) -> float | None:
    """When process ``pid`` started (`_platform.started_at`); None if gone or unknown."""
    try:
        return _platform.started_at(pid)
    except OSError:
        return None


def _older_than(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` started more than ``seconds`` ago (True if gone)."""
    try:
        started = _platform.started_at(pid)
    except OSError:
        return True
    return started is None or time.time() - started > seconds


#: A process without a readable environment this long after its start has
#: none to read (a kernel thread), rather than being in the middle of an exec.
NEWBORN = 1.0

_remains = _Remains()


def _forget_after_fork() -> None:
    # A forked child has no sweeper thread, and the remains are its parent's.
    global _remains, _sweeper, _look_until, _lock, _looking
    _remains, _sweeper, _look_until = _Remains(), None, 0.0
    _lock, _looking = threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
