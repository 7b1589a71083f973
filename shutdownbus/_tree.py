"""Process trees: snapshots, names, and the OS's requests to go, on psutil.

Rules of this module:

* psutil is imported here only, and only when a stop needs it, so that a
  member that merely joins the bus never pays for it.
* Processes are held as ``psutil.Process`` objects, which check the process
  creation time before sending a signal: a pid reused by an unrelated process
  is never signalled.
* This module never waits on (reaps) a direct child: its exit status belongs
  to its ``Popen`` object.  Only processes re-parented to us (as a subreaper)
  are reaped, by `reap_adopted`, and only when the caller knows them to be
  such orphans.
* An exit time is recorded when the exit was seen as it happened (see
  `_platform.ExitWatch`); otherwise it is unknown, never guessed.
* Failing to read a process's state is never taken for its exit (fail
  closed): a process we could not check stays in the tree, counts as
  running, is signalled by pid if need be, and is reported ``unchecked``.
"""

from __future__ import annotations

import functools
import os
import re
import time

from . import _platform
from ._deadlines import KILL_WAIT, TERM_GRACE
from ._environment import ENV_ENDPOINT
from ._outcome import Outcome

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Collection, Iterable, Sequence
    from typing import Any, Protocol

    import psutil

    from ._report import ReportEntry

    class Head(Protocol):
        """A process above a tree's members that its owner signals its own way
        (our own child, through its ``Popen``; a registered root)."""

        def signal(self, outcome: Outcome) -> None:
            """Send the request of ``outcome`` (``terminated`` or ``killed``) if still running."""

        def gone(self) -> bool:
            """Whether it is gone."""


def load() -> None:
    """Load what a stop of a tree needs now, rather than on the stop's path:
    psutil (some 15 ms) and the report (`Tree.entries`), which ``list`` does
    without."""
    import psutil  # noqa: F401

    from . import _report  # noqa: F401


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
        "outcome",
        "seen_at",
        "unchecked",
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
        self.outcome: Outcome | None = None
        self.seen_at = seen_at  # when first seen (`time.monotonic`)
        self.unchecked = False  # its state could not be read at the last look

    def __repr__(self) -> str:
        state = f"gone, {self.outcome or 'on its own'}" if self.gone else "running"
        return f"<Member pid={self.pid} {self.name!r} depth={self.depth} {state}>"

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def went_after(self, moment: float) -> bool:
        """Whether it was gone only after ``moment`` (by its exit time when
        known, else by when it was seen gone)."""
        when = self.gone_at if self.gone_at is not None else self.seen_gone_at
        return when is not None and when > moment + 0.001

    def mark_gone(self, when: float | None, now: float) -> None:
        """Record that it is gone (``when``: its exit time, if known)."""
        if not self.gone:
            self.gone, self.gone_at, self.seen_gone_at = True, when, now


# -- names ----------------------------------------------------------------------

#: The ``-c`` programs of processes that end on their own once their owner
#: exits, and are meant to outlive it for a moment to clean up after it:
#: multiprocessing's resource tracker (which ignores SIGINT and SIGTERM and
#: unlinks what its owner leaked when the owner's end of its pipe closes), and
#: its forkserver (which exits when its owner's end of its pipe closes).
COMPANIONS = {
    "from multiprocessing.resource_tracker import main": "multiprocessing.resource_tracker",
    "from multiprocessing.semaphore_tracker import main": "multiprocessing.semaphore_tracker",
    "from multiprocessing.forkserver import main": "multiprocessing.forkserver",
    "from multiprocessing.spawn import spawn_main": "multiprocessing.spawn",
}


@functools.cache
def _python() -> re.Pattern[str]:
    # Compiled at first use: a millisecond that `list`, which names no process, does without.
    return re.compile(r"^(python|pypy)[0-9.]*[a-z]?(\.exe)?$", re.IGNORECASE)


_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")
_MAX_NAME = 64


def describe(cmdline: list[str], fallback: str) -> tuple[str, bool]:
    """A process's name as ``ps`` users recognise it, and whether it is a companion.

    * A process title (one argument with spaces, as setproctitle writes
      them: ``gunicorn: worker [app]``): the title.
    * A Python interpreter: the script's basename (``gunicorn``,
      ``server.py``), the module of ``-m``, the multiprocessing role of a
      ``-c`` program it recognises, else ``python -c``.
    * Anything else: ``argv[0]``'s basename.

    Args:
        cmdline: The process's arguments (empty for a zombie or when unreadable).
        fallback: The OS's name for it (``comm`` on Linux), used when ``cmdline`` is empty.

    Returns:
        The name (at most 64 characters) and whether the process is one of `COMPANIONS`.
    """
    if not cmdline or not cmdline[0]:
        return fallback[:_MAX_NAME], False
    arg0 = cmdline[0]
    if len(cmdline) == 1 and " " in arg0:
        return arg0[:_MAX_NAME], False
    exe = os.path.basename(arg0)
    if not _python().match(exe):
        return exe[:_MAX_NAME], False
    args = iter(cmdline[1:])
    for arg in args:
        if arg == "-c":
            code = next(args, "")
            for start, role in COMPANIONS.items():
                if code.startswith(start):
                    return role, role != "multiprocessing.spawn"
            return f"{exe} -c", False
        if arg == "-m":
            return next(args, exe)[:_MAX_NAME], False
        if arg in _OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg.startswith("-") and arg != "-":
            continue
        else:
            return os.path.basename(arg)[:_MAX_NAME], False
    return exe[:_MAX_NAME], False


def display_name(proc: psutil.Process) -> str:
    """`describe`'s name of a running process (``?`` if it is gone)."""
    return _describe(proc)[0]


def _describe(proc: psutil.Process) -> tuple[str, bool]:
    import psutil

    cmdline = _cmdline(proc)  # a zombie has no command line left, but still its name
    try:
        fallback = str(proc.name())
    except (psutil.Error, OSError):
        fallback = "?"
    return describe(cmdline, fallback)


def _cmdline(proc: psutil.Process) -> list[str]:
    import psutil

    try:
        return list(proc.cmdline())
    except (psutil.Error, OSError):
        return []


# -- trees ------------------------------------------------------------------------


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
    environment they started with, inherited from a child that never joined.

    Args:
        roots: Pids whose descendants to track (the roots themselves are not included).
        markers: The values of ``SHUTDOWNBUS_ENDPOINT`` that the tree's non-members inherited.
        not_ours: Returns the pids of our children that belong elsewhere (our other `Child` objects).
        table: A `ProcessTable` for the first look.
        prune: Returns True for a process that, with its descendants, is not part of this tree.
        watch: The watch to record exits in (one can serve several trees and
            the children they belong to); a new one if None.
    """

    def __init__(
        self,
        roots: Iterable[int],
        markers: Collection[str] = (),
        not_ours: Callable[[], set[int]] | None = None,
        table: ProcessTable | None = None,
        prune: Callable[[psutil.Process], bool] | None = None,
        watch: _platform.ExitWatch | None = None,
    ) -> None:
        self.roots = list(roots)
        self.markers = frozenset(markers)
        self.not_ours = not_ours
        self.prune = prune
        self.watch = watch if watch is not None else _platform.ExitWatch()
        self.members: dict[int, Member] = {}
        self.returncodes: dict[int, int] = {}  # of members we reaped (as their subreaper)
        self._marked: dict[int, bool] = {}
        self._pruned: set[int] = set()
        self.unchecked: set[int] = set()
        self._first_look = True  # a zombie seen now had exited before the snapshot
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

    #: A process first seen this young may have been between its fork and its
    #: exec (its parent's command line, or none): its name is read again.
    NEWBORN = 1.0

    def _rename_the_newborn(self) -> None:
        now = time.monotonic()
        for m in self.members.values():
            if not m.gone and now - m.seen_at < self.NEWBORN and (cmdline := _cmdline(m.proc)):
                m.name, m.companion = self._name(m.proc, m.ppid, describe(cmdline, m.name))

    def _name(self, proc: psutil.Process, parent: int, described: tuple[str, bool] | None = None) -> tuple[str, bool]:
        """`describe` for a member; a process that a companion forked is its work, not it."""
        name, companion = described or _describe(proc)
        above = self.members.get(parent)
        if companion and above is not None and above.companion and above.name == name:
            return f"{name} worker", False
        return name, companion

    def _walk(self, table: ProcessTable) -> int:
        """One walk down the tree; the number of processes it added."""
        added = 0
        roots = list(self.roots)
        if self.markers:
            roots += self._adopt(table.children(os.getpid()))
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
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False
        name, companion = self._name(proc, parent)
        member = Member(proc, parent, depth, name, companion=companion, seen_at=time.monotonic())
        self.members[pid] = member
        if zombie:
            # Seen first at a later look, it came and went meanwhile: not "exited".
            member.exited_early = self._first_look
            member.mark_gone(None, time.monotonic())
        else:
            self.watch.add(pid, lambda: not _checked(member))
        return True

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
            if self.marked(proc) and self._add(pid, os.getpid(), 1, proc):
                found.append(pid)
        return found

    def marked(self, proc: psutil.Process) -> bool:
        """Whether ``proc`` started with one of this tree's markers in its
        environment (so it is a non-member of this tree: it cannot hear the bus)."""
        if not self.markers:
            return False
        if proc.pid not in self._marked:
            environ = environment_of(proc)
            if not environ:
                return False  # unreadable now (in the middle of its exec, or gone): ask again next time
            self._marked[proc.pid] = environ.get(ENV_ENDPOINT) in self.markers
        return self._marked[proc.pid]

    def alive(self) -> list[Member]:
        """Members still running (a zombie counts as gone), deepest first."""
        self.note_exits()
        return sorted((m for m in self.members.values() if not m.gone), key=lambda m: -m.depth)

    def note_exits(self) -> None:
        """Mark the members that the watch has seen exit."""
        self.watch.wait(0)
        now = time.monotonic()
        for pid, when in self.watch.exits.items():
            m = self.members.get(pid)
            if m is not None:
                m.mark_gone(when, now)

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
            out.append(ReportEntry(m.pid, m.name, outcome, self.returncodes.get(m.pid), seconds, m.pid == member_pid))
        return out


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


def live_view(pid: int, width: int = 70) -> list[tuple[int, int, str, str, str, str]] | None:
    """The processes under ``pid`` as ``shutdownbus tree`` shows them, ``pid`` first.

    Each row: pid, depth, name (`describe`), member (``root`` for ``pid``;
    ``yes``/``no`` as `_platform.joined_the_bus` tells, ``?`` where it
    cannot; ``-`` for a zombie), state, command line (``<defunct>`` for a
    zombie, as ``ps`` writes it).  Children come in pid order, depth first.

    Returns:
        The rows, or None if ``pid`` is gone.
    """
    import psutil

    table = ProcessTable()
    rows = []
    stack = [(pid, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            proc = psutil.Process(current)
            state = str(proc.status())
        except psutil.Error:
            if current == pid:
                return None
            continue
        zombie = state == psutil.STATUS_ZOMBIE
        name, _ = _describe(proc)
        try:
            command = " ".join(proc.cmdline()) or ("<defunct>" if zombie else "?")
        except (psutil.Error, OSError):
            command = "<defunct>" if zombie else "?"
        if len(command) > width:
            command = command[: width - 3] + "..."
        joined = _platform.joined_the_bus(current)
        member = "root" if depth == 0 else "-" if zombie else "?" if joined is None else "yes" if joined else "no"
        rows.append((current, depth, name, member, state, command))
        stack += [(child, depth + 1) for child in sorted(table.children(current), reverse=True)]
    return rows


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


def marker_of(proc: psutil.Process) -> str | None:
    """The ``SHUTDOWNBUS_ENDPOINT`` that ``proc`` started with (None: none, or unreadable)."""
    return environment_of(proc).get(ENV_ENDPOINT)


def environment_of(proc: psutil.Process) -> dict[str, str]:
    """The environment ``proc`` started with; empty if it cannot be read now
    (another user's process, a zombie, a process in the middle of its exec)."""
    import psutil

    try:
        return {str(k): str(v) for k, v in proc.environ().items()}
    except (psutil.Error, OSError):
        return {}


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


def holds_endpoint(pid: int, endpoint: str) -> bool | None:
    """Whether process ``pid`` listens on ``endpoint`` (``ipc://PATH`` or
    ``tcp://HOST:PORT``): its socket is among that process's open files.

    What ties a registry entry's pid to the channel an admin talked to: a
    forged entry can pair a channel of its own with a pid of the victim's.

    Returns:
        True or False; None if it cannot be told (the process's files are
        not ours to read, or the endpoint is of another kind).
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if endpoint.startswith("ipc://"):
            path = os.path.realpath(endpoint[len("ipc://") :])
            return any(c.laddr and os.path.realpath(c.laddr) == path for c in proc.net_connections(kind="unix"))
        if endpoint.startswith("tcp://"):
            port = int(endpoint.rsplit(":", 1)[1])
            if _listening_ports(proc, psutil).count(port):
                return True
            return False if _connection_table_names_listeners() else None
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except (psutil.Error, OSError, ValueError):
        return None
    return None


def _listening_ports(proc: psutil.Process, psutil: Any) -> list[int]:
    return [c.laddr.port for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr]


@functools.cache
def _connection_table_names_listeners() -> bool:
    """Whether this system's connection table tells which process listens on
    a tcp port: asked once, of a socket of our own.  Some do not (wine lists
    every connection with no owner), and there "not among its sockets" only
    means "cannot be told"."""
    import socket

    import psutil

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        probe.listen(1)
        try:
            return probe.getsockname()[1] in _listening_ports(psutil.Process(), psutil)
        except (psutil.Error, OSError):
            return False


def process(pid: int) -> psutil.Process | None:
    """The process ``pid``, held so that a later signal cannot reach a process
    that reused its pid; None if there is none."""
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def started(pid: int | None = None) -> float:
    """When process ``pid`` (default: this one) started, on psutil's clock.

    Raises:
        ProcessLookupError: it is gone.
    """
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        raise ProcessLookupError(pid) from None


def still(pid: int, since: float) -> bool:
    """Whether ``pid`` still runs as the process that started at ``since`` (a zombie counts as gone).

    On Linux it reads /proc without psutil, whose import (some 10 ms) would
    be most of ``shutdownbus list``'s own start-up.
    """
    if _platform.LINUX:
        try:
            born = _platform.started_at(pid)
        except OSError:
            pass  # psutil tells, or fails closed
        else:
            return born is not None and abs(born - since) < 1.0
    proc = process(pid)
    return proc is not None and abs(proc.create_time() - since) < 1.0 and is_running(proc)


def send(proc: psutil.Process, outcome: Outcome) -> bool:
    """Send ``proc`` the kill (outcome ``killed``) or the polite request; False if it is gone."""
    import psutil

    try:
        proc.kill() if outcome == Outcome.KILLED else proc.terminate()
    except psutil.Error:
        return False
    return True


def runs(pid: int) -> bool:
    """Whether a process with pid ``pid`` runs now (a zombie counts as gone)."""
    import psutil

    try:
        return is_running(psutil.Process(pid))
    except psutil.Error:
        return False


def is_running(proc: psutil.Process) -> bool:
    """Whether ``proc`` runs (a zombie counts as gone).

    Fails closed: if its state cannot be read (no descriptor left, say), it
    counts as running.
    """
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
    except OSError:
        return True


def _checked(m: Member) -> bool:
    """Whether ``m`` runs, recording on it whether that could be checked."""
    import psutil

    try:
        running = bool(m.proc.is_running() and m.proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        running = False
    except OSError:
        m.unchecked = True
        return True
    m.unchecked = False
    return running


def signal_members(members: Iterable[Member], outcome: Outcome) -> None:
    """Send the kill (outcome ``killed``), else the polite request, deepest first.

    Members that are already gone are skipped; ``outcome`` is recorded on
    those that were signalled.
    """
    import psutil

    for m in sorted(members, key=lambda m: -m.depth):
        try:
            if not _checked(m):
                continue
            if outcome == Outcome.KILLED:
                m.proc.kill()
            else:
                m.proc.terminate()
            m.outcome = outcome
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
                m.outcome = outcome
            except OSError:
                pass


# -- escalation ------------------------------------------------------------------

#: Past a deadline: the polite request, `TERM_GRACE` seconds, the kill, then
#: up to `KILL_WAIT` seconds to see the processes gone.
ESCALATION = ((Outcome.TERMINATED, TERM_GRACE), (Outcome.KILLED, KILL_WAIT))


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
            graces are cut so that the last step's wait ends then, and a step
            with no time left is skipped, but the last step's signal is always
            sent.  Several escalations of one stop (the children at their
            deadline, then descendants that outlived them) share one bound.
    """
    for i, (outcome, grace) in enumerate(steps):
        last = i == len(steps) - 1
        if until is not None:
            later = sum(g for _, g in steps[i + 1 :])
            grace = min(grace, max(0.0, until - time.monotonic() - later))
            if grace <= 0 and not last:
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
