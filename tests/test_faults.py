"""Faults during a stop, with real processes (issue 6).

A member SIGKILLed while the stop travels down a tree, a member that crashes
in its cleanup, a parent that dies while its children report up: in every
case the stop returns by its deadline (plus the escalation margin and a loose
bound for a loaded machine), no process of the tree is left, and every
process is in the report or provably gone before the stop began.  Each test
prints the report it got (``pytest -s`` shows them).

Random choices are seeded (``SHUTDOWNBUS_FAULT_SEED``, printed on failure).
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import (
    KILLED,
    LINUX,
    PROGRAMS,
    READY,
    alive,
    kill,
    log_lines,
    logged,
    member_cmd,
    reaped,
    started_pids,
    wait_for,
)

import shutdownbus
from shutdownbus._deadlines import ESCALATION_MARGIN

LOOSE = 5.0  # bound against hangs on a loaded machine
TIMEOUT = 5.0  # the stop's timeout in these tests
SEED = int(os.environ.get("SHUTDOWNBUS_FAULT_SEED", str(random.SystemRandom().randrange(1 << 32))))


def stop_in_thread(child: shutdownbus.Child, timeout: float) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []

    def run() -> None:
        try:
            box.append(child.stop(reason="fault", timeout=timeout))
        except BaseException as exc:  # reported by the test
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def finish(
    thread: threading.Thread, box: list[object], start: float, timeout: float = TIMEOUT
) -> shutdownbus.StopReport:
    thread.join(timeout + 2 * ESCALATION_MARGIN + LOOSE)
    took = time.monotonic() - start
    assert not thread.is_alive(), "the stop did not return"
    (report,) = box
    assert isinstance(report, shutdownbus.StopReport), report
    assert took < timeout + 2 * ESCALATION_MARGIN + LOOSE, f"the stop took {took:.2f} s"
    print(f"\nseed {SEED}, stop took {took:.3f} s\n{report}")
    return report


@pytest.mark.parametrize(
    ("target", "when"), [("middle", "before"), ("middle", "during"), ("leaf", "during"), ("two", "during")]
)
def test_members_killed_while_a_stop_travels_down_a_tree(tmp_path: Path, target: str, when: str) -> None:
    """Fan-out 3, depth 2 (13 processes).  A random middle member (or leaf, or
    one of each) is SIGKILLed before the stop, or right after the stop was
    called from a thread."""
    rng = random.Random(f"{SEED}-{target}-{when}")
    log = tmp_path / "log"
    with reaped(shutdownbus.spawn(member_cmd(log, "--depth", "2", "--fanout", "3"), ready_timeout=READY)) as child:
        pids = started_pids(log)
        assert len(pids) == 13, pids
        middles = [n for n in pids if n.count(".") == 1]
        leaves = [n for n in pids if n.count(".") == 2]
        victims = {
            "middle": [rng.choice(middles)],
            "leaf": [rng.choice(leaves)],
            "two": [rng.choice(middles), rng.choice(leaves)],
        }[target]
        gone_before: set[int] = set()
        if when == "before":
            for name in victims:
                kill(pids[name])
            # Its own children lose their parent and stop on their own: wait until they are gone.
            orphans = [pid for name, pid in pids.items() if any(name.startswith(v + ".") for v in victims)]
            wait_for(lambda: not alive([pids[v] for v in victims] + orphans), 30, "the orphans did not stop")
            gone_before = {pids[v] for v in victims} | set(orphans)
        start = time.monotonic()
        thread, box = stop_in_thread(child, TIMEOUT)
        if when == "during":
            for name in victims:
                kill(pids[name])
        report = finish(thread, box, start)
    assert alive(list(pids.values())) == [], "processes of the tree are left"
    reported = {e.pid for e in report.entries}
    missing = set(pids.values()) - reported - gone_before
    if not LINUX:
        # The children of a member killed during the stop stop on their own;
        # one that is gone before anyone looked leaves no trace where nothing
        # adopts it as a zombie (no subreaper): it may be missing, gone.
        missing -= {pid for name, pid in pids.items() if any(name.startswith(v + ".") for v in victims)}
    assert not missing, f"not in the report: {sorted(n for n, p in pids.items() if p in missing)}\n{report}"
    assert report.entries[0].pid == child.pid and report.entries[0].outcome == "stopped", report
    for name in victims:
        entry = report.entry(pids[name])
        if entry is not None:  # what the report says about a killed member
            assert entry.outcome != "stopped" or when == "during", report
    assert len(reported) == len(report.entries)  # one entry per process


@pytest.mark.skipif(not LINUX, reason="what a killed child leaves is looked for where it comes to its parent")
def test_what_a_member_killed_before_the_stop_left_is_in_the_report(tmp_path: Path) -> None:
    """A middle member is SIGKILLed just before the stop reaches its parent.
    Its children stop on 'parent-lost', and its parent's look for remains
    waits for them and reaps them, all before the stop's top takes its
    snapshot of the tree (seen in a loaded suite, in the two-during case
    above): they were in no report.  The parent's stop reports them with
    the dead member, as gone before it began."""
    log = tmp_path / "log"
    cmd = member_cmd(log, "--depth", "2", "--fanout", "2", "--leaf-cleanup", "2")
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY)) as child:
        pids = started_pids(log)
        left = [pids["B.1.0"], pids["B.1.1"]]
        kill(pids["B.1"])
        # Their cleanup outlasts the look for remains, which then reaps them: gone, not even zombies.
        wait_for(lambda: not any(psutil.pid_exists(pid) for pid in left), 30, "the look for remains did not reap them")
        assert sorted(name for name, _ in logged(log, "got stop") if name.startswith("B.1.")) == ["B.1.0", "B.1.1"]
        report = child.stop(reason="fault", timeout=TIMEOUT)
    print(report)
    assert alive(list(pids.values())) == [], "processes of the tree are left"
    assert {e.pid for e in report.entries} == set(pids.values()), report
    for pid in left:
        entry = report.entry(pid)
        assert entry is not None and (entry.outcome, entry.returncode, entry.seconds) == ("exited", 0, None), report


@pytest.mark.skipif(not LINUX, reason="what a killed child leaves is looked for where it comes to its parent")
@pytest.mark.parametrize(
    ("cleanup", "timeout", "outcome", "returncode"), [(3.0, 30.0, "stopped", 0), (60.0, 1.0, "terminated", -15)]
)
def test_a_stop_of_a_killed_child_waits_for_what_it_left(
    tmp_path: Path, cleanup: float, timeout: float, outcome: str, returncode: int
) -> None:
    """Our member child is killed, and the look for remains takes its
    members, which stop on 'parent-lost' (their cleanup takes a while).  A
    stop of that child asked meanwhile takes them over: they are reported
    once gone, or escalated at its deadline (not the look's, later)."""
    from shutdownbus import _remains

    log = tmp_path / "log"
    cmd = member_cmd(log, "--depth", "1", "--fanout", "2", "--leaf-cleanup", str(cleanup))
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        pids = started_pids(log)
        left = [pids["B.0"], pids["B.1"]]
        kill(child.pid)
        wait_for(  # taken by the look for remains (its state: nothing outside tells)
            lambda: {pid for tree, _ in _remains._remains.pending for pid in tree.members} >= set(left),
            30,
            "the look for remains did not take them",
        )
        start = time.monotonic()
        report = child.stop(reason="fault", timeout=timeout)
        took = time.monotonic() - start
        print(report)
        assert alive(left) == [], report
    assert took < min(timeout, cleanup) + ESCALATION_MARGIN + LOOSE, f"the stop took {took:.2f} s"
    for pid in left:
        entry = report.entry(pid)
        assert entry is not None and (entry.outcome, entry.returncode) == (outcome, returncode), report
        assert entry.seconds is not None, report


@pytest.mark.skipif(not LINUX, reason="what a killed child leaves comes to its parent only on Linux")
def test_what_a_child_killed_as_its_stop_began_left_is_its_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our member child is killed as its stop begins: the stop was asked
    before the child's death was seen, so the look for remains leaves what
    it left to the stop (emulated here by turning that look off), and it
    died before the stop's first look at its tree.  Its members, re-parented
    to us, carry endpoints that it made, no marker of ours: they are of its
    tree all the same.  The stop waits for them (they stop on 'parent-lost',
    their cleanup slow here), escalates them at its deadline, and reports
    them; before, it returned at once and left them running."""
    from shutdownbus import _remains

    monkeypatch.setattr(_remains, "look_for_remains", lambda *args: None)
    log = tmp_path / "log"
    cmd = member_cmd(log, "--depth", "1", "--fanout", "2", "--leaf-cleanup", "60")
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        pids = started_pids(log)
        kill(child.pid)
        wait_for(
            lambda: {psutil.Process(pids[n]).ppid() for n in ("B.0", "B.1")} == {os.getpid()}, 30, "not re-parented"
        )
        start = time.monotonic()
        report = child.stop(reason="fault", timeout=1.0)
        took = time.monotonic() - start
        print(report)
        assert alive(list(pids.values())) == [], report
    assert took < 1.0 + ESCALATION_MARGIN + LOOSE, f"the stop took {took:.2f} s"
    assert sorted(name for name, _ in logged(log, "got stop")) == ["B.0", "B.1"]  # 'parent-lost', each
    for name in ("B.0", "B.1"):
        entry = report.entry(pids[name])
        assert entry is not None and entry.outcome == "terminated", report


def walks_and_requests(monkeypatch: pytest.MonkeyPatch, on_walk: Callable[[], object] = lambda: None) -> list[str]:
    """The order in which this process's stops send their requests and take
    their trees (`_stop`'s ``Tree``), watched on the real objects; ``on_walk``
    runs as a tree is taken, before its walk."""
    from shutdownbus import _bus, _stop

    order: list[str] = []
    request, tree = _bus.Bus.request_stop, _stop.Tree

    def requested(*args: Any, **kwargs: Any) -> Any:
        order.append("request")
        return request(*args, **kwargs)

    def taken(*args: Any, **kwargs: Any) -> Any:
        order.append("walk")
        on_walk()
        return tree(*args, **kwargs)

    monkeypatch.setattr(_bus.Bus, "request_stop", requested)
    monkeypatch.setattr(_stop, "Tree", taken)
    return order


def test_a_members_stop_leaves_before_its_tree_is_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk of a member's tree costs some 0.25 ms a process: taken
    before the stop was handed to the bus thread, it held the stop back
    (173 ms at the top of a 521-process tree).  Where what a member leaves
    comes to us (Linux), the stop goes first; elsewhere the walk still
    comes first.  The report is whole either way."""
    from shutdownbus import _platform

    log = tmp_path / "log"
    with reaped(shutdownbus.spawn(member_cmd(log, "--depth", "2", "--fanout", "2"), ready_timeout=READY)) as child:
        pids = started_pids(log)
        order = walks_and_requests(monkeypatch)
        report = child.stop(timeout=TIMEOUT)
    assert order == (["request", "walk"] if _platform.orphans_stay_in_the_tree() else ["walk", "request"])
    assert report.ok and {e.pid for e in report.entries} == set(pids.values()), report
    assert {e.outcome for e in report.entries} == {"stopped"}, report


@pytest.mark.skipif(not LINUX, reason="what a killed child leaves comes to its parent only on Linux")
def test_a_member_killed_after_its_stop_left_and_before_the_walk_leaves_nothing_unseen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The member child is killed after its stop left (the bus thread sent
    it) and before our first walk of its tree: the walk finds only what
    came to us.  Its members
    (they stop on the stop, or on 'parent-lost') and their leaves carry the
    endpoints that it made: the stop waits for them, and reports each
    (``lost``: the stop that reached them was their parent's loss, unless
    the child passed ours on before it died)."""
    from shutdownbus import _remains

    monkeypatch.setattr(_remains, "look_for_remains", lambda *args: None)  # the stop's own, not the look's
    log = tmp_path / "log"
    cmd = member_cmd(log, "--depth", "2", "--fanout", "2", "--leaf-cleanup", "1")
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        pids = started_pids(log)

        def kill_the_child() -> None:
            link = child._link  # the bus thread sends the stop: it must have left
            wait_for(lambda: link.stop_sent_at is not None, 30, "the stop never left")
            kill(child.pid)
            wait_for(
                lambda: not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == "zombie",
                30,
                "the child did not die",
            )

        order = walks_and_requests(monkeypatch, kill_the_child)
        report = child.stop(reason="fault", timeout=TIMEOUT)
        print(report)
        assert order == ["request", "walk"]
        assert alive(list(pids.values())) == [], report
    assert {e.pid for e in report.entries} == set(pids.values()), report
    for name, pid in pids.items():
        entry = report.entry(pid)
        assert entry is not None, (name, report)
        assert entry.outcome in (("failed",) if pid == child.pid else ("stopped", "lost")), (name, report)


@pytest.mark.skipif(not LINUX, reason="what a killed child leaves comes to its parent only on Linux")
def test_the_fork_of_a_member_a_dead_child_left_is_that_members_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, with a worker that the member forked and that never
    exec'd: it shows the member's first environment, the endpoint the dead
    child made included, and has no bus thread, so it looks like what a
    dead process left that cannot hear the bus.  But it runs below a live
    member that is stopping it: the stop does not ask it while that member
    runs (here the member asks it as it exits)."""
    from shutdownbus import _remains

    monkeypatch.setattr(_remains, "look_for_remains", lambda *args: None)
    log = tmp_path / "log"
    cmd = member_cmd(log, "--depth", "1", "--fanout", "1", "--leaf-cleanup", "1", "--leaf-fork")
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        pids = started_pids(log)
        fork = int(dict(logged(log, "fork"))["B.0"])
        kill(child.pid)
        wait_for(lambda: psutil.Process(pids["B.0"]).ppid() == os.getpid(), 30, "not re-parented")
        report = child.stop(reason="fault", timeout=30)
        print(report)
        assert alive([pids["B.0"], fork]) == [], report
    left_at = float(dict(logged(log, "leaving"))["B.0"])
    asked_at = float(dict(logged(log, "forkterm"))["B.0"])
    assert asked_at >= left_at, f"the fork was asked to go {left_at - asked_at:.3f} s before its member was done"


CRASHER = str(PROGRAMS / "crasher.py")


def snapshot_taken(child: shutdownbus.Child) -> bool:
    """Whether the stopping thread has taken its snapshot of the child's tree."""
    from shutdownbus import _stop

    st = _stop._stops.get(child)
    return st is not None and st.tree is not None


@pytest.mark.parametrize(("how", "returncode"), [("os-exit", 3), ("exception", 1)])
def test_a_member_that_crashes_in_its_cleanup(tmp_path: Path, how: str, returncode: int) -> None:
    """The member crashes in its cleanup, after it forwarded the stop to its
    two children: they stop, report to nobody, and the stop still accounts for
    them.  The crash waits until the stopping thread has its snapshot of the
    tree; the test after this one shows what happens when it does not."""
    log = tmp_path / "log"
    cmd = [sys.executable, CRASHER, how, str(log), "on-cue"]
    with reaped(shutdownbus.spawn(cmd, stdin=subprocess.PIPE, ready_timeout=READY)) as child:
        kids = started_pids(log)
        assert len(kids) == 2
        start = time.monotonic()
        thread, box = stop_in_thread(child, TIMEOUT)
        wait_for(lambda: snapshot_taken(child), 30, "the stop did not start")
        assert child.stdin is not None
        child.stdin.write(b"crash now\n")
        child.stdin.close()
        report = finish(thread, box, start)
    assert alive([child.pid, *kids.values()]) == []
    own = report.entries[0]
    assert (own.pid, own.outcome, own.returncode) == (child.pid, "failed", returncode), report
    assert not report.ok
    for name, pid in kids.items():
        entry = report.entry(pid)
        assert entry is not None, report
        assert entry.outcome in ("stopped", "lost"), report
        assert f"{name} cleanup" in log_lines(log)  # the stop was forwarded before the crash


def late_pid(log: Path) -> int:
    """The pid of the process that tests/programs/cleanup_starts_a_process.py's cleanup started, once it has."""
    wait_for(lambda: logged(log, "late") != [], TIMEOUT, "the cleanup started nothing")
    ((_, value),) = logged(log, "late")
    return int(value)


@pytest.mark.skipif(not LINUX, reason="re-parented to a subreaper (elsewhere: to init; Windows: the job ends it)")
def test_what_a_member_starts_while_it_stops_is_ended_and_reported_when_it_is_killed(tmp_path: Path) -> None:
    """A member's cleanup starts a process that cannot hear the bus, and the
    member is SIGKILLed at once, before anyone looked at its tree again.
    Re-parented to us, the process is told by the member's endpoint that it
    inherited (``SHUTDOWNBUS_BELOW``): the stop ends it, and reports it.
    Before, the stop returned at once and left it running, for good."""
    log = tmp_path / "log"
    cmd = [sys.executable, str(PROGRAMS / "cleanup_starts_a_process.py"), str(log), "hang"]
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        start = time.monotonic()
        thread, box = stop_in_thread(child, TIMEOUT)
        late = late_pid(log)
        kill(child.pid)
        report = finish(thread, box, start)
        left = alive([child.pid, late])
    assert left == [], report
    entry = report.entry(late)
    assert entry is not None and entry.name == "sleep.py" and not entry.member, report
    # Asked at once: it cannot hear the bus (not terminated at the deadline).
    assert entry.outcome == "stopped" and entry.seconds is not None and entry.seconds < TIMEOUT, report


@pytest.mark.skipif(not LINUX, reason="re-parented to a subreaper (elsewhere: to init; Windows: the job ends it)")
def test_what_a_member_below_a_killed_one_started_is_ended_and_reported(tmp_path: Path) -> None:
    """As above, one level down: our member M spawned member Q, whose
    cleanup starts the process; M and Q are then both SIGKILLed.  The process
    comes to us carrying Q's endpoint, not M's, but M made Q's endpoint, and
    M is a dead process of the stopped tree: so the process is of that tree
    too (its runtime directory's owner file says who made it).  Or a look
    finds it below Q, whose main thread went first (a zombie leader), while
    Q's last threads end: then it is of the tree by that look."""
    log = tmp_path / "log"
    below = [sys.executable, str(PROGRAMS / "cleanup_starts_a_process.py"), str(log), "hang"]
    cmd = [sys.executable, "-m", "shutdownbus.conformance.member", "--child", *below]
    env = dict(os.environ, SHUTDOWNBUS_CONFORMANCE_CHILD="1")  # that it spawns its --child
    with reaped(shutdownbus.spawn(cmd, env=env, ready_timeout=READY), descendants=True) as child:
        start = time.monotonic()
        thread, box = stop_in_thread(child, TIMEOUT)
        late = late_pid(log)
        member_below = psutil.Process(late).ppid()  # Q, held in its cleanup
        kill(child.pid)
        kill(member_below)
        report = finish(thread, box, start)
        left = alive([child.pid, member_below, late])
    assert left == [], report
    entry = report.entry(late)
    assert entry is not None and entry.name == "sleep.py" and not entry.member, report
    # Asked to go as it comes to us; or, when a look found it below Q while
    # Q's last threads were ending, terminated at the deadline.
    assert entry.outcome in ("stopped", "terminated"), report


@pytest.mark.skipif(not LINUX, reason="re-parented to a subreaper (elsewhere: to init; Windows: the job ends it)")
def test_what_a_killed_member_started_by_other_means_is_ended_by_its_stop(tmp_path: Path) -> None:
    """A member of ours is SIGKILLed outside any stop: the plain subprocess
    it started gets nothing from the kernel, and is re-parented to us.  It
    carries the member's endpoint (``SHUTDOWNBUS_BELOW``), so the member's
    stop, asked afterwards (or our exit), ends it, as it ends what a child
    that never joined left (a shell's background job).  Before, it ran on
    for good."""
    log = tmp_path / "log"
    with reaped(shutdownbus.spawn(member_cmd(log, "--grandchild", "plain"), ready_timeout=READY)) as child:
        ((_, value),) = logged(log, "plain")
        plain = int(value)
        proc = psutil.Process(plain)
        try:
            kill(child.pid)
            assert child.wait(LOOSE) == KILLED
            wait_for(lambda: proc.ppid() == os.getpid(), LOOSE, "not re-parented to us")
            report = child.stop(timeout=TIMEOUT)
            left = alive([plain])
        finally:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    assert left == [], report
    entry = report.entry(plain)
    assert entry is not None and not entry.member and entry.outcome == "stopped", report


def seen_by_the_stop(child: shutdownbus.Child, pid: int) -> bool:
    """Whether the stopping thread's snapshot of the child's tree has ``pid``."""
    from shutdownbus import _stop

    st = _stop._stops.get(child)
    return st is not None and st.tree is not None and pid in st.tree.members


def test_the_tree_of_a_member_is_looked_at_during_its_stop(tmp_path: Path) -> None:
    """As above, but the process starts without the member's variables (a
    program that cleans its children's environment): only a look at the
    member's tree knows it.  The tree of a member that runs is its own to
    watch, so the stopping thread looks only now and then
    (`_stop.MEMBER_TREE_REFRESH_EVERY`), but before the deadline: once a
    look saw the process, the member is killed, and the process is ended
    and reported."""
    log = tmp_path / "log"
    cmd = [sys.executable, str(PROGRAMS / "cleanup_starts_a_process.py"), str(log), "hang-bare"]
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        start = time.monotonic()
        thread, box = stop_in_thread(child, TIMEOUT)
        late = late_pid(log)
        wait_for(lambda: seen_by_the_stop(child, late), TIMEOUT + LOOSE, "the stop never saw the late process")
        # Not at the deadline's look: that one comes after this instant.
        assert time.monotonic() < start + TIMEOUT, "the member's tree was looked at only at the deadline"
        kill(child.pid)
        report = finish(thread, box, start)
        left = alive([child.pid, late])
    assert left == [], report
    entry = report.entry(late)
    assert entry is not None and entry.name == "sleep.py" and not entry.member, report
    assert entry.outcome in ("stopped", "terminated"), report


class WatchedLock:
    """Stands in for a module's lock, and tells which threads wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._waiting: set[int | None] = set()

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._changed:
            self._waiting.add(me)
            self._changed.notify_all()
        self._lock.acquire()
        with self._changed:
            self._waiting.discard(me)

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait_for(self, thread: threading.Thread, timeout: float) -> None:
        """Return once ``thread`` waits for the lock."""
        with self._changed:
            if not self._changed.wait_for(lambda: thread.ident in self._waiting, timeout):
                raise TimeoutError(f"{thread.name} did not ask for the lock within {timeout} s")


def test_a_member_that_dies_before_the_stopping_thread_looks_at_its_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic form of a race seen on a loaded machine: the member
    crashes the moment the stop arrives (in an on_stop callback, so before any
    child can report through it).  The stop used to send its message before it
    took its snapshot of the tree; held back there, it found the member gone
    and its subtree with it.  Here the stopping thread is held at the lock it
    takes first: no stop may have left by then.  Once it goes on, the member
    crashes; its two children must still be waited for and be in the report."""
    from shutdownbus import _member, _stop

    lock = WatchedLock()
    monkeypatch.setattr(_stop, "_lock", lock)
    log = tmp_path / "log"
    cmd = [sys.executable, CRASHER, "os-exit", str(log), "at-once"]
    with reaped(shutdownbus.spawn(cmd, ready_timeout=READY), descendants=True) as child:
        kids = started_pids(log)
        assert len(kids) == 2
        with lock:
            thread, box = stop_in_thread(child, TIMEOUT)
            start = time.monotonic()
            lock.wait_for(thread, 30)
            # What the stopping thread asked of the bus thread before it blocked is done after this.
            _member.get_bus().call_and_wait(lambda: None, 30)
            link = child._link
            assert link.stop_requested_at is None and link.stop_sent_at is None, "the stop left before the snapshot"
        report = finish(thread, box, start)
        left = alive(list(kids.values()))
        missing = [n for n, p in kids.items() if report.entry(p) is None]
    assert report.entries[0].outcome == "failed", report
    assert not left, "the stop returned while the crashed member's children were still running"
    assert not missing, f"not in the report: {missing}\n{report}"


def test_a_parent_that_dies_while_its_children_report_up(tmp_path: Path) -> None:
    """B forwards the stop to its three children and is SIGKILLed as soon as
    the first of them has finished its cleanup, so while they send their
    reports up (and wait for B's acks)."""
    log = tmp_path / "log"
    with reaped(shutdownbus.spawn(member_cmd(log, "--depth", "1", "--fanout", "3"), ready_timeout=READY)) as child:
        pids = started_pids(log)
        kids = {n: p for n, p in pids.items() if n != "B"}
        start = time.monotonic()
        thread, box = stop_in_thread(child, TIMEOUT)
        wait_for(lambda: any(f"{n} cleanup" in log_lines(log) for n in kids), 30, "no child cleaned up")
        wait_for(lambda: snapshot_taken(child), 30, "the stop did not start")
        kill(child.pid)
        report = finish(thread, box, start)
    assert alive(list(pids.values())) == []
    assert report.entries[0].returncode == KILLED, report
    for name, pid in kids.items():
        entry = report.entry(pid)
        assert entry is not None, report
        assert entry.outcome in ("stopped", "lost"), report
        assert f"{name} cleanup" in log_lines(log)
