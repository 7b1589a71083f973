"""The stop's view of a process tree: who is below whom, watched until gone.

Rules of this module:

* A `Tree` is a snapshot of the descendants of some roots that a stop
  refreshes: processes once seen stay in it after they exit, so the stop
  can report on each of them.
* This module never waits on (reaps) a direct child: its exit status belongs
  to its ``Popen`` object.  Only processes re-parented to us (as a subreaper)
  are reaped (`_platform.reap_adopted`), and only when the caller knows them
  to be such orphans.
* An exit time is recorded when the exit was seen as it happened (see
  `_platform.ExitWatch`); otherwise it is unknown, never guessed.
* A tree below a member (``watched=False``) is not watched while the member
  lives: the member stops it and reports each exit.  It is looked at when
  anyone first asks what still runs (`alive`: the stop does once the member
  is gone, and at the deadline; a progress callback does at once), and from
  then on watched.  So a stop watches its children and what outlives them:
  the descriptors it holds and the exits it waits on grow with the
  processes, not with processes x depth (its walks still cover the tree).
  Companions are watched all along: they outlive their owner by design.
* Failing to read a process's state is never taken for its exit (fail
  closed): a process we could not check stays in the tree, counts as
  running, is signalled by pid if need be, and is reported ``unchecked``.
  Nor is a zombie leader whose other threads still run: its process has
  not ended, and its children come to a subreaper only once it has.
* psutil is reached through `_processes`, but for the few calls a walk
  makes itself (imported by the functions, never at the top).
"""

from __future__ import annotations

import functools
import os
import time

from . import _platform
from ._environment import ENV_BELOW, ENV_ENDPOINT
from ._names import describe
from ._outcome import Outcome
from ._processes import cmdline, describe_process, environment_of, parent_pid, process, runs

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    import psutil

    from ._report import ReportEntry


class Member:
    """One process of a snapshot.

    Attributes:
        proc: The process.
        ppid: Its parent when first seen.
        depth: 1 for a child of a root, 2 for a grandchild, ...
        name: What ``ps`` users recognise it by (see `describe`).
        companion: It exits on its own once its owner exits (see `COMPANIONS`).
        exited_early: It had exited (a zombie) at the tree's first look.
        gone: It has been seen gone (or a zombie).
        gone_at: `time.monotonic` of its exit, when seen as it happened.
        seen_gone_at: `time.monotonic` when it was first seen gone.
        running_at: When its exit time is unknown: the last `time.monotonic`
            it was known to run (it ended between then and `seen_gone_at`).
        outcome: Set by the OS request that was sent to it: ``stopped``
            (the polite request, as its stop), ``terminated`` or ``killed``.
    """

    __slots__ = (
        "proc",
        "ppid",
        "depth",
        "name",
        "companion",
        "exited_early",
        "gone",
        "gone_at",
        "seen_gone_at",
        "running_at",
        "outcome",
        "seen_at",
        "name_unsure",
        "unchecked",
        "request",
        "requested_at",
    )

    def __init__(
        self, proc: psutil.Process, ppid: int, depth: int, name: str, companion: bool = False, seen_at: float = 0.0
    ) -> None:
        self.proc = proc
        self.ppid = ppid
        self.depth = depth
        self.name = name
        self.companion = companion
        self.exited_early = False
        self.gone = False
        self.gone_at: float | None = None
        self.seen_gone_at: float | None = None
        self.running_at: float | None = None
        self.outcome: Outcome | None = None
        self.seen_at = seen_at  # when first seen (`time.monotonic`)
        self.name_unsure = False  # its name may not be its own yet: read again (see `Tree.NEWBORN`)
        self.unchecked = False  # its state could not be read at the last look
        self.request: str | None = None  # the polite request it was sent, if any (`ask`)
        self.requested_at: float | None = None  # `time.monotonic` when

    def __repr__(self) -> str:
        state = f"gone, {self.outcome or 'on its own'}" if self.gone else "running"
        return f"<Member pid={self.pid} {self.name!r} depth={self.depth} {state}>"

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def went_after(self, moment: float) -> bool:
        """Whether it is known to have gone only after ``moment``: by its exit
        time when known, else by a look that saw it running after ``moment``.
        Seen gone after ``moment`` is no proof: it may have ended before."""
        when = self.gone_at if self.gone_at is not None else self.running_at
        return when is not None and when > moment + 0.001

    def mark_gone(self, when: float | None, now: float, running_at: float | None = None) -> None:
        """Record that it is gone.

        Args:
            when: Its exit time, if known.
            now: When it was seen gone.
            running_at: If ``when`` is unknown, the last moment it was known to run.
        """
        if not self.gone:
            self.gone, self.gone_at, self.seen_gone_at, self.running_at = True, when, now, running_at

    def ask(self, request: str) -> None:
        """Record that the polite request ``request`` was sent to it, now (the
        first one counts: the report says when it was first asked)."""
        if self.request is None:
            self.request, self.requested_at = request, time.monotonic()
        self.outcome = self.outcome or Outcome.STOPPED

    def checked(self) -> bool:
        """Whether it runs, recording on it whether that could be checked
        (`unchecked`: fail closed, it then counts as running)."""
        import psutil

        try:
            running = bool(self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE)
            # A zombie leader with threads left: its process runs on (see the rules above).
            running = running or (self.proc.status() == psutil.STATUS_ZOMBIE and _platform.threads_left(self.pid))
        except psutil.Error:
            running = False
        except OSError:
            self.unchecked = True
            return True
        self.unchecked = False
        return running


class Tree:
    """A refreshable snapshot of the descendants of some root processes.

    Processes once seen stay in the snapshot after they exit, so a stop can
    report on each of them; `refresh` adds the ones started since.  Each is
    watched for its exit (`_platform.ExitWatch`), so the report can say when
    it went.

    A descendant that double-forks, or whose parent died, is re-parented to
    this process (a subreaper) and so leaves the subtree of its root.  With
    ``markers``, `refresh` finds such processes among our own children: they
    carry a marker (the spawn's endpoint, which is not secret) in the
    environment they started with, inherited from a child that never joined
    (``SHUTDOWNBUS_ENDPOINT``), or from a member that started them by other
    means than `spawn` (``SHUTDOWNBUS_BELOW``).

    Args:
        roots: Pids whose descendants to track (the roots themselves are not included).
        markers: The endpoints of the tree's children: what their non-members
            and the plain descendants of their members inherited.
        not_ours: Returns the pids of our children that belong elsewhere (our other `Child` objects).
        table: A `ProcessTable` for the first look.
        prune: Returns True for a process that, with its descendants, is not part of this tree.
        watch: The watch to record exits in (one can serve several trees and
            the children they belong to); a new one if None.
        adopt_from: Returns the pids to look among for marked processes,
            instead of our own children (a guard's: processes that are not).
        watched: False for the tree of a member, which watches and reports
            it itself: its processes are taken in without a watch until
            `alive` is first asked (see the rules above).
        dead_owner: Returns the pid the process that made an endpoint had, if
            it is provably dead (`_transport.dead_owner`).  A process
            re-parented to us that carries an endpoint made by a dead
            process of this tree is of this tree too (see
            `_orphaned_below_the_dead`).
        after_the_request: The first look comes after the stop was asked
            (a member's tree, which that member reports): a process that
            is a zombie by then may have gone because of it, so it is not
            taken for one that exited before the stop (``exited``).
        reaped_roots: Those of ``roots`` that were reaped already: their
            pids may be other processes' by now, so they are not walked;
            the endpoints they made still tell the tree's processes (see
            ``dead_owner``).
    """

    def __init__(
        self,
        roots: Iterable[int],
        markers: Collection[str] = (),
        not_ours: Callable[[], set[int]] | None = None,
        table: ProcessTable | None = None,
        prune: Callable[[psutil.Process], bool] | None = None,
        watch: _platform.ExitWatch | None = None,
        adopt_from: Callable[[], Iterable[int]] | None = None,
        watched: bool = True,
        dead_owner: Callable[[str], int | None] | None = None,
        after_the_request: bool = False,
        reaped_roots: Collection[int] = (),
    ) -> None:
        roots = list(roots)
        self.roots = [pid for pid in roots if pid not in reaped_roots]
        self._first_roots = frozenset(roots)  # a stop moves its roots to what outlived them
        self.watched = watched
        self._unwatched: list[Member] = []  # taken in while not watched
        self.markers = frozenset(markers)
        self.not_ours = not_ours
        self.adopt_from = adopt_from
        self.prune = prune
        self.dead_owner = dead_owner
        self.watch = watch if watch is not None else _platform.ExitWatch()
        self.members: dict[int, Member] = {}
        self.returncodes: dict[int, int] = {}  # of members we reaped (as their subreaper)
        #: Members reaped before they were ours (`take_over`): their pids may
        #: be another process's by now.
        self.settled: set[int] = set()
        self._marked: dict[int, bool] = {}
        self._joined: set[int] = set()  # seen a member (`left_by_the_dead`)
        self._first_args: dict[int, list[str]] = {}  # each member's command line, as first seen or last read again
        self._pruned: set[int] = set()
        self.unchecked: set[int] = set()
        self._first_look = not after_the_request  # a zombie seen now had exited before the stop
        self.refresh(table)
        self._first_look = False

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
        self._rename_the_newborn()
        for attempt in range(3):
            added = self._walk(table)
            #: Pids whose children could not be listed at the last look (fail closed).
            self.unchecked = set(table.unchecked)
            if not table.met_the_dead or (attempt > 0 and not added):
                return
            table = ProcessTable()

    #: A process first seen younger than this, or with its parent's command
    #: line (or none), may not have its own name yet: between its fork and
    #: its exec, or between two execs (``sh -c``, ``env``, a retitle).  For
    #: this long after, its name is read again at each look.  An older one
    #: whose command line was its own is not: a stop's looks would otherwise
    #: read every command line of a tree seen in its first second again.
    NEWBORN = 1.0
    #: psutil's start times on Linux count from the boot time in whole
    #: seconds: a process may look up to this much older than it is.
    START_TIME_SLACK = 1.0

    def _rename_the_newborn(self) -> None:
        now = time.monotonic()
        for m in self.members.values():
            if m.name_unsure and not m.gone and now - m.seen_at < self.NEWBORN and (args := cmdline(m.proc)):
                m.name, m.companion = self._name(m.proc, m.ppid, describe(args, m.name))
                self._first_args[m.pid] = args  # what its children are compared with

    def _name_unsure(self, proc: psutil.Process, args: list[str], parent: int) -> bool:
        """Whether the name of ``proc``, first seen now, may not be its own yet (see `NEWBORN`)."""
        import psutil

        if not args or args == self._args_of(parent):
            return True
        try:  # psutil read the start time as it took the process in (its identity): no read here
            return time.time() - float(proc.create_time()) < self.NEWBORN + self.START_TIME_SLACK
        except psutil.Error:
            return True  # an unknown age counts as young

    def _args_of(self, pid: int) -> list[str]:
        """The command line of ``pid`` as last read (a root's: read now, then kept)."""
        if pid not in self._first_args:
            proc = process(pid)
            args = cmdline(proc) if proc is not None else []
            if not args:
                return args  # unreadable now: asked again for the next child
            self._first_args[pid] = args
        return self._first_args[pid]

    def _name(self, proc: psutil.Process, parent: int, described: tuple[str, bool] | None = None) -> tuple[str, bool]:
        """`describe` for a member; a process that a companion forked is its work, not it."""
        name, companion = described or describe_process(proc)
        above = self.members.get(parent)
        if companion and above is not None and above.companion and above.name == name:
            return f"{name} worker", False
        return name, companion

    def _walk(self, table: ProcessTable) -> int:
        """One walk down the tree; the number of processes it added."""
        added = 0
        roots = list(self.roots)
        if self.markers:
            roots += self._adopt(list(self.adopt_from()) if self.adopt_from else table.children(os.getpid()))
        for root in roots:
            depth_of = {root: 0}
            queue = [root]
            while queue:
                parent = queue.pop()
                for pid in table.children(parent):
                    if pid in depth_of or pid in self._pruned:
                        continue
                    depth_of[pid] = depth_of[parent] + 1
                    if pid not in self.members:
                        if not self._add(pid, parent, depth_of[pid]):
                            continue
                        added += 1
                    queue.append(pid)
        return added

    def _add(self, pid: int, parent: int, depth: int, proc: psutil.Process | None = None) -> bool:
        """Take ``pid`` into the snapshot (False: it is gone, or pruned with its subtree)."""
        import psutil

        try:
            if proc is None:
                proc = psutil.Process(pid)
            if self.prune is not None and self.prune(proc):
                self._pruned.add(pid)
                return False
            args = cmdline(proc)
            # A command line is read from a process that is no zombie: its state is read only without one.
            # A zombie leader with threads left is ending, not gone (see the rules above).
            zombie = not args and proc.status() == psutil.STATUS_ZOMBIE and not _platform.threads_left(pid)
        except psutil.Error:
            return False
        name, companion = self._name(proc, parent, describe_process(proc, args))
        member = Member(proc, parent, depth, name, companion=companion, seen_at=time.monotonic())
        self._first_args[pid] = args
        member.name_unsure = self._name_unsure(proc, args, parent)
        self.members[pid] = member
        if zombie:
            # Seen first at a later look, it came and went meanwhile: not "exited".
            member.exited_early = self._first_look
            member.mark_gone(None, time.monotonic())
        elif self.watched or companion:
            self.watch.add(pid, functools.partial(_gone, member))
        else:
            self._unwatched.append(member)
        return True

    def _watch_the_rest(self) -> None:
        """Watch from now on what was taken in unwatched: what still runs is
        added to the watch; what is gone went at an unknown moment after it
        was seen running."""
        self.watched = True
        taken, self._unwatched = self._unwatched, []
        now = time.monotonic()
        for m in taken:
            if m.gone:
                continue
            if m.checked():
                self.watch.add(m.pid, functools.partial(_gone, m))
            else:
                m.mark_gone(None, now, running_at=m.seen_at)

    def take_over(self, other: Tree) -> None:
        """Make the processes of ``other``, watched until now by someone else
        (`_remains`), this tree's: those gone by now count as gone before
        its first look (``exited``), with the exit statuses ``other`` took;
        those still running are watched here, keeping what was asked of them
        (reported as asked when this stop began).  Which of them carry ``other``'s markers is not
        taken: this tree asks by its own.  ``other`` is not used afterwards.
        """
        if any(not m.gone for m in other.members.values()):
            other.note_exits()
        for pid, m in other.members.items():
            if pid in self.members:
                continue
            self.members[pid] = m
            if pid in other._first_args:
                self._first_args[pid] = other._first_args[pid]
            if m.gone:
                # Gone before this stop: no time in it, nor a request of it.
                m.exited_early, m.gone_at, m.request, m.requested_at = True, None, None, None
                if pid in other.returncodes:
                    self.settled.add(pid)  # reaped already; a zombie left is ours to reap (`_stop._reap`)
            else:
                # Watched even in a member's tree: that member is dead, nothing else watches it.
                self.watch.add(pid, functools.partial(_gone, m))
        self.returncodes.update(other.returncodes)
        other.watch.close()

    def take_in(self, pids: Iterable[int], parent: int) -> None:
        """Add processes found outside the walk, shown below ``parent``
        (Windows: those in a child's Job Object that no walk reaches, a
        process whose parent exited being nobody's child there).

        Args:
            pids: The processes; those already in the snapshot, or gone, are skipped.
            parent: The process they are shown below (the child whose job holds them).
        """
        depth = self.members[parent].depth + 1 if parent in self.members else 1
        for pid in pids:
            if pid not in self.members and pid != parent:
                self._add(pid, parent, depth)

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
            except psutil.Error:
                continue
            if (self.marked(proc) or self._orphaned_below_the_dead(proc)) and self._add(pid, os.getpid(), 1, proc):
                found.append(pid)
        return found

    def marked(self, proc: psutil.Process) -> bool:
        """Whether ``proc`` started with one of this tree's markers in its
        environment (so it is a non-member of this tree, or what a member of
        it started by other means than `spawn`: it cannot hear the bus)."""
        if not self.markers:
            return False
        if proc.pid not in self._marked:
            environ = environment_of(proc)
            if not environ:
                return False  # unreadable now (in the middle of its exec, or gone): ask again next time
            # The endpoint it was spawned on (a non-member's descendants, a member's forks),
            # or the one that a member's plain descendants inherited from it (`ENV_BELOW`).
            self._marked[proc.pid] = not self.markers.isdisjoint((environ.get(ENV_ENDPOINT), environ.get(ENV_BELOW)))
        return self._marked[proc.pid]

    def left_by_the_dead(self, member: Member) -> bool:
        """Whether ``member`` cannot hear the bus and was left by a dead
        process of this tree: a non-member that process spawned (the
        endpoint it started with was made by it), or what such a one
        started, with no live process between it and us but such ones.  A
        member's forks carry the same endpoint and are not: that member
        stops them.  As `_remains` asks what a killed child left, so does a
        stop (the kernel's parent-death signal reached only the process the
        dead one spawned, not what that one started).  Read again at each
        call (each round of `_stop._sweep_leftovers`): what is below a live
        member now may be ours at a later round.  A process once seen a
        member counts as one for good (its bus thread may end before it does).
        """
        seen: Member | None = member
        for _ in range(len(self.members)):  # a bound, should parent links loop (pids reused meanwhile)
            if seen is None or seen.gone:
                return False
            if not self._made_by_the_dead(environment_of(seen.proc).get(ENV_ENDPOINT)):
                return False
            if seen.pid in self._joined:
                return False
            joined = _platform.joined_the_bus(seen.pid)
            if joined is not False:  # a member, or it cannot be told (fail closed)
                if joined:
                    self._joined.add(seen.pid)
                return False
            parent = parent_pid(seen.proc)
            if parent == os.getpid():
                return True
            seen = self.members.get(parent) if parent is not None else None
        return False

    def _orphaned_below_the_dead(self, proc: psutil.Process) -> bool:
        """Whether ``proc``, one of our children that is not ours by spawn
        (so every process between it and us has died), is of this tree
        because a dead process of it made the endpoint that ``proc`` carries
        (see ``dead_owner``):

        * in ``SHUTDOWNBUS_BELOW``: the endpoint of a member that the dead
          process spawned, inherited by what that member started by other
          means.  It counts as marked from then on (it cannot hear the bus).
        * in ``SHUTDOWNBUS_ENDPOINT``: the endpoint the dead process spawned
          it on (or what it descends from: a non-member's children, and a
          member's forks, inherit it).  Found so when that process died
          before the stop's first look (a child killed as its stop began).
          A member among them is stopping on 'parent-lost'; a non-member is
          asked to go (`left_by_the_dead`).
        """
        environ = environment_of(proc)
        if self._made_by_the_dead(environ.get(ENV_BELOW)):
            self._marked[proc.pid] = True
            return True
        return self._made_by_the_dead(environ.get(ENV_ENDPOINT))

    def _made_by_the_dead(self, endpoint: str | None) -> bool:
        """Whether ``endpoint`` was made by a process of this tree that is dead (see ``dead_owner``)."""
        if self.dead_owner is None or not endpoint:
            return False
        owner = self.dead_owner(endpoint)
        return owner is not None and (owner in self.members or owner in self._first_roots)

    def alive(self) -> list[Member]:
        """Members still running (a zombie counts as gone, unless threads of it are left), deepest first.

        A tree taken in unwatched is looked at now, and watched from then on.
        """
        if not self.watched:
            self._watch_the_rest()
        self.note_exits()
        return sorted((m for m in self.members.values() if not m.gone), key=lambda m: -m.depth)

    def note_exits(self) -> None:
        """Mark the members that the watch has seen exit."""
        self.watch.wait(0)
        now = time.monotonic()
        # By our members, not by the watch's exits: one watch serves all the
        # trees of a stop (a fan-out of 200 children: 200 trees, 200 exits).
        exits = self.watch.exits
        for m in self.members.values():
            if not m.gone and m.pid in exits:
                m.mark_gone(exits[m.pid], now, self.watch.running_at.get(m.pid))

    def wait_gone(self, timeout: float, companions: bool = True) -> list[Member]:
        """Wait up to ``timeout`` seconds for every member to go; return the rest.

        Args:
            timeout: Seconds.
            companions: Wait for `COMPANIONS` too.
        """
        end = time.monotonic() + timeout
        while True:
            alive = [m for m in self.alive() if companions or not m.companion]
            remaining = end - time.monotonic()
            if not alive or remaining <= 0:
                return alive
            self.watch.wait(remaining)

    def wait_exited(self, pids: Iterable[int], timeout: float) -> None:
        """Wait up to ``timeout`` seconds until each of ``pids`` that is still
        there (a zombie counts) has exited entirely, all its threads: only
        then are its own children re-parented (`_platform.wait_exited`).

        A pid among the members is taken to be that member while it has its
        start time; any other only while it is our own child, which keeps
        its pid until we reap it.
        """
        mine: dict[int, Callable[[], bool]] = {}
        for pid in pids:
            member = self.members.get(pid)
            if _platform.is_unreaped_child(pid):
                mine[pid] = functools.partial(_child_exited, pid)
            elif member is not None and member.proc.is_running():
                # Without its pidfd (past the cap, or no descriptor left):
                # asked now and then (`_gone`: a zombie leader with threads left runs).
                mine[pid] = functools.partial(_gone, member)
        _platform.wait_exited(mine, timeout)

    def entries(
        self, t0: float, *, lost_after: float | None = None, member_pid: int | None = None, skip: Iterable[int] = ()
    ) -> list[ReportEntry]:
        """One report entry per member, parents before their children.

        Outcomes: ``exited`` for a process that had exited when first seen;
        the OS request it got (``stopped``, ``terminated``, ``killed``);
        ``lost`` for one that went on its own after ``lost_after`` (its
        ancestor had exited; a companion is not lost, it did its job);
        ``stopped`` otherwise.

        Args:
            t0: The stop's start; seconds count from it.
            lost_after: See above; None: nothing is lost.
            member_pid: The pid that joined the bus, if it is among the members.
            skip: Pids not to report (reported by someone else).
        """
        from ._report import ReportEntry  # loaded by `load` on a stop's path

        skip = set(skip)
        out = []
        for m in sorted(self.members.values(), key=lambda m: m.depth):
            if m.pid in skip:
                continue
            outcome: Outcome
            if m.exited_early:
                outcome = Outcome.EXITED
            elif m.unchecked and not m.gone:
                outcome = Outcome.UNCHECKED
            elif m.outcome:
                outcome = m.outcome
            elif lost_after is not None and not m.companion and m.went_after(lost_after):
                outcome = Outcome.LOST
            else:
                outcome = Outcome.STOPPED
            seconds = None if m.gone_at is None else round(max(0.0, m.gone_at - t0), 6)
            requested = None if m.requested_at is None else round(max(0.0, m.requested_at - t0), 6)
            out.append(
                ReportEntry(
                    m.pid,
                    m.name,
                    outcome,
                    self.returncodes.get(m.pid),
                    seconds,
                    m.pid == member_pid,
                    request=m.request,
                    requested=requested,
                )
            )
        return out


def _gone(member: Member) -> bool:
    """Whether ``member`` is gone (for `_platform.ExitWatch`: unreadable
    counts as running; so does a zombie leader with threads left)."""
    return not member.checked()


def _child_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited entirely (``waitid`` tells a zombie
    only once all its threads are gone), or was reaped meanwhile."""
    return not _platform.is_unreaped_child(pid) or _platform.exit_status_unreaped(pid) is not None


def descendant_pids(pid: int, table: ProcessTable | None = None) -> list[int]:
    """The pids of every process below ``pid`` (running or zombie), parents before their children.

    The one walk down a tree outside a stop: ``tree_size``, the test helpers
    and the pytest plugin use it (a stop's ``Tree`` walks with the same table,
    and also remembers what it met).
    """
    table = table or ProcessTable()
    found: list[int] = []
    stack = [pid]
    while stack:
        children = table.children(stack.pop())
        found += children
        stack += children
    return found


def tree_size(pid: int) -> int:
    """How many processes run under ``pid``, ``pid`` included (0 if it is gone)."""
    below = descendant_pids(pid, ProcessTable())
    if not below and _has_exited(pid):
        return 0
    return 1 + len(below)


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie: from /proc where it can tell, else psutil."""
    try:
        return _platform.has_exited(pid)
    except OSError:
        return not runs(pid)


class ProcessTable:
    """Who is whose child, looked up as a walk down a tree needs it.

    Where the kernel lists each process's children (Linux), a lookup reads that
    process's entries only, so walking a tree costs in proportion to the tree.
    Elsewhere one psutil pass over the whole process table, made up front,
    answers every lookup.  Answers are kept: make a new table to see the
    processes started since.

    A process's parent pid is the pid its creator had.  On Windows nothing is
    re-parented and pids are soon reused: a process started by an earlier
    owner of a pid still names that pid as its parent.  So a child counts
    only if it started no earlier than its parent (as psutil's ``children()``
    decides); for a parent that is gone, no earlier than this process, since
    the trees we walk below a dead process are our own descendants'.
    """

    def __init__(self) -> None:
        self._children: dict[int, list[int]] = {}
        self._born: dict[int, float | None] = {}
        #: Whether a process was gone (or a zombie) when its children were read.
        self.met_the_dead = False
        #: Processes whose children could not be read (not "none": unknown).
        self.unchecked: set[int] = set()
        self._complete = not _platform.KERNEL_LISTS_CHILDREN
        if self._complete:
            import psutil

            for proc in psutil.process_iter(["ppid", "create_time"]):  # psutil reads create_time anyway
                parent = proc.info.get("ppid")
                self._born[int(proc.pid)] = proc.info.get("create_time")
                if parent is not None:
                    self._children.setdefault(int(parent), []).append(int(proc.pid))

    def children(self, pid: int) -> list[int]:
        """The pids of ``pid``'s children (running or zombie) when the table was made or first asked."""
        if pid in self.unchecked:
            return []
        if self._complete:
            born = self._born[pid] if pid in self._born else _own_birth()
            if born is None:
                return []  # its start time is hidden from us: so is whether these are its children
            return [c for c in self._children.get(pid, []) if (self._born.get(c) or 0.0) >= born]
        if pid not in self._children:
            try:
                children = _platform.child_pids(pid)
                dead = not children and _platform.has_exited(pid)
            except OSError:  # not "none": unknown (no descriptor left?); the next table asks again
                self.unchecked.add(pid)
                return []
            self._children[pid] = children
            if dead:
                # It died, and its children (if it had any) may have moved to
                # an ancestor already read: the walk must look again.
                self.met_the_dead = True
        return self._children[pid]


def _own_birth() -> float:
    """This process's creation time (psutil's clock)."""
    return _birth(os.getpid())  # by pid: a forked child is born later than its parent


@functools.cache
def _birth(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).create_time())
