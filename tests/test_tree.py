"""Stopping real process trees through the bus, and what a stop interrupts in a member's main thread (the waker)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import (
    LINUX,
    PROGRAMS,
    READY,
    WINDOWS,
    alive,
    kill,
    log_lines,
    logged,
    member_cmd,
    sleep_cmd,
    started_pids,
    use_transport,
    wait_for,
)

import shutdownbus
from shutdownbus import _platform
from shutdownbus._escalation import signal_members
from shutdownbus._outcome import Outcome
from shutdownbus._tree import ProcessTable, Tree


@pytest.fixture(params=["ipc", "tcp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_transport(monkeypatch, request.param)
    return str(request.param)


def test_stop_reaches_every_process_of_a_three_level_tree(tmp_path: Path, transport: str) -> None:
    log = tmp_path / "log"
    with shutdownbus.spawn(member_cmd(log, "--depth", "2", "--fanout", "2"), ready_timeout=READY) as child:
        pids = started_pids(log)
        assert len(pids) == 7  # B, two children, four grandchildren
        if transport == "tcp":
            assert child._link.endpoint.startswith("tcp://127.0.0.1:")
        else:
            assert child._link.endpoint.startswith("ipc://")
        report = child.stop(reason="test")
    assert report.ok, report
    assert {e.pid: e.name for e in report.entries} == {pid: name for name, pid in pids.items()}
    assert all(e.outcome == "stopped" and e.member and e.returncode == 0 for e in report.entries), report
    assert report.entries[0].pid == child.pid
    lines = log_lines(log)
    for name in pids:
        assert f"{name} got stop test" in lines
        assert f"{name} cleanup" in lines
    assert alive(list(pids.values())) == []


@pytest.mark.parametrize(
    "block",
    [
        "sleep",
        "event",
        "queue",
        "mp-wait",
        pytest.param(
            "popen",
            marks=pytest.mark.skipif(
                WINDOWS,
                reason="the known limit on Windows: Popen.wait() of a child not on the bus waits for it"
                " (as with Ctrl-C, which ends that child too); docs/lifecycle.md",
            ),
        ),
    ],
)
def test_stop_wakes_a_blocked_main_thread(tmp_path: Path, block: str) -> None:
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--block", block), ready_timeout=READY)
    report = child.stop()
    assert report.ok, report
    assert "B got stop stop" in log_lines(log)
    # The member sleeps for 600 s: a stop that had to wait for it would hang.
    assert report.seconds < 10


def test_uncaught_stop_exits_with_status_zero_and_no_traceback(tmp_path: Path) -> None:
    child = shutdownbus.spawn(member_cmd(tmp_path / "log", "--on-stop", "uncaught"), ready_timeout=READY, stderr=-1)
    report = child.stop()
    assert child.returncode == 0
    assert report.entries[0].outcome == "stopped"
    assert child.stderr is not None
    assert b"Traceback" not in child.stderr.read()
    child.stderr.close()


def test_nonzero_exit_during_cleanup_is_reported_as_failed(tmp_path: Path) -> None:
    child = shutdownbus.spawn(member_cmd(tmp_path / "log", "--on-stop", "exit1"), ready_timeout=READY)
    report = child.stop()
    assert not report.ok
    assert (report.entries[0].outcome, report.entries[0].returncode) == ("failed", 1)


def test_stop_is_idempotent_across_threads(tmp_path: Path) -> None:
    child = shutdownbus.spawn(member_cmd(tmp_path / "log"), ready_timeout=READY)
    reports: list[shutdownbus.StopReport] = []
    threads = [threading.Thread(target=lambda: reports.append(child.stop())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 3 and all(r is reports[0] for r in reports)
    assert child.stop() is reports[0]


def test_stop_of_a_child_that_already_exited(tmp_path: Path) -> None:
    child = shutdownbus.spawn([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    report = child.stop()
    assert [(e.outcome, e.returncode) for e in report.entries] == [("exited", 0)]
    assert report.ok


def test_child_that_never_joins_gets_the_os_request(tmp_path: Path) -> None:
    child = shutdownbus.spawn(sleep_cmd(100))
    report = child.stop(timeout=5)
    (entry,) = report.entries
    assert not child.joined
    expected = ("sleep.py", False, "stopped", _platform.polite_returncode())
    assert (entry.name, entry.member, entry.outcome, entry.returncode) == expected


def test_stop_issued_before_the_child_joined_is_delivered(tmp_path: Path) -> None:
    """Declared a member, so that a loaded machine's slow start cannot make it
    a non-member past the join grace (3 s under wine: it got TERMINATE, rc 1,
    once in a suite run beside others): its stop waits for its join."""
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log), joins=True)
    report = child.stop(timeout=30)  # right away: the child is still importing
    assert child.returncode == 0
    assert report.entries[0].outcome == "stopped"


def test_a_declared_member_slower_to_join_than_the_grace_gets_the_bus_stop_not_the_request(tmp_path: Path) -> None:
    """_policy: ``joins=True`` means "only the bus's stop and, past its
    deadline, escalation".  A member whose start outlasts the join grace (a
    loaded machine; here it sleeps before its import) was sent the polite
    request at the grace's end (wine: TERMINATE, rc 1, in a loaded suite)."""
    from shutdownbus._deadlines import JOIN_GRACE

    code = (
        f"import time\ntime.sleep({JOIN_GRACE * 2})\n"
        "import shutdownbus\nshutdownbus.join()\nshutdownbus.ready()\ntime.sleep(600)\n"
    )
    child = shutdownbus.spawn([sys.executable, "-c", code], joins=True)
    report = child.stop(timeout=30)
    assert child.returncode == 0 and child.joined, report
    assert (report.entries[0].outcome, report.entries[0].member) == ("stopped", True), report


def test_child_that_ignores_the_stop_is_escalated_at_the_deadline(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--on-stop", "ignore"), ready_timeout=READY)
    start = time.monotonic()
    report = child.stop(timeout=1.0)
    took = time.monotonic() - start
    assert report.entries[0].outcome in ("terminated", "killed")
    assert not report.ok
    assert "B got stop stop" in log_lines(log)
    assert took < 1.0 + 5  # the deadline plus a loose bound against hangs


@pytest.mark.skipif(not LINUX, reason="pidfds: the watch of every other OS holds no descriptor")
def test_a_members_tree_is_its_own_to_watch_and_report(tmp_path: Path) -> None:
    """While a member stops its own children, its parent watches the member,
    not the member's children (no pidfd on them: the descriptors a stop
    holds grow with the processes, not with processes x depth); the report
    still has every grandchild, stopped, with the time the member saw it go."""
    log = tmp_path / "log"
    cmd = [sys.executable, str(PROGRAMS / "slow_tree.py"), str(log), "--members", "3", "--cleanup", "2.0"]
    with shutdownbus.spawn(cmd, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        grandchildren = [int(pid) for pid in child.stdout.readline().split()[2:]]
        assert len(grandchildren) == 3
        reports: list[shutdownbus.StopReport] = []
        stopping = threading.Thread(target=lambda: reports.append(child.stop()))
        stopping.start()
        try:
            wait_for(lambda: len(logged(log, "cleanup-started")) == 3, 30, "the grandchildren did not get the stop")
            watched = _pids_of_our_pidfds()
            assert alive(grandchildren) == grandchildren  # still cleaning up: the look came in time
        finally:
            stopping.join(30)
    assert child.pid in watched
    assert not set(grandchildren) & watched, f"the parent held pidfds on {set(grandchildren) & watched}"
    (report,) = reports
    assert report.ok, report
    entries = {e.pid: e for e in report.entries}
    for pid in grandchildren:
        assert entries[pid].outcome == "stopped" and entries[pid].seconds is not None, report
    assert alive([child.pid, *grandchildren]) == []


def _pids_of_our_pidfds() -> set[int]:
    """The processes this process holds a pidfd on (their ``Pid:`` in /proc/self/fdinfo)."""
    pids = set()
    for info in Path("/proc/self/fdinfo").iterdir():
        try:
            lines = info.read_text().splitlines()
        except OSError:  # closed meanwhile
            continue
        pids |= {int(line.split()[1]) for line in lines if line.startswith("Pid:")}
    return pids


def test_on_stop_callbacks_without_interrupting_main(tmp_path: Path) -> None:
    code = (
        "import shutdownbus, sys\n"
        "shutdownbus.join(interrupt_main=False)\n"
        "seen = []\n"
        "shutdownbus.on_stop(seen.append)\n"
        "shutdownbus.ready()\n"
        "assert shutdownbus.wait_for_stop(60)\n"
        "assert shutdownbus.stop_requested() and shutdownbus.stop_reason() == 'bye'\n"
        "sys.exit(0 if seen == ['bye'] else 3)\n"
    )
    child = shutdownbus.spawn([sys.executable, "-c", code], ready_timeout=READY)
    report = child.stop(reason="bye")
    assert report.ok, report


TOOK_THE_WAKE_SIGNAL = str(PROGRAMS / "took_the_wake_signal.py")


@pytest.mark.parametrize(("taken", "block"), [("first", "sleep"), ("first", "busy"), ("every", "sleep")])
def test_stop_wakes_main_when_the_program_took_the_wake_signal(taken: str, block: str) -> None:
    """A program that handles the signal the waker prefers (before it joins):
    the waker takes another one (POSIX), or, when the program handles every
    one it may take (always on Windows, where there is only SIGTERM), chains
    to the program's handler.  Either way the stop interrupts a blocking
    call, and the program's handler runs for its own signals only."""
    child = shutdownbus.spawn(
        [sys.executable, TOOK_THE_WAKE_SIGNAL, taken, block], ready_timeout=READY, stdout=-1, text=True
    )
    report = child.stop(reason="taken", timeout=10)
    assert child.stdout is not None
    out = json.loads(child.stdout.read())
    child.stdout.close()
    assert report.ok and report.seconds < 10, report  # not escalated: the sleep was interrupted
    assert out["reason"] == "taken"
    choices = _platform.wake_signal_choices()
    assert out["calls"] == [choices[0]]  # its own raise_signal; never the stop
    if taken == "every" or len(choices) == 1:
        assert out["used"] == choices[0]  # chained
    else:
        assert out["used"] in choices[1:]


REPLACED_THE_WAKER = str(PROGRAMS / "replaced_the_waker.py")


def _main_thread_in_kernel(pid: int, function: str) -> bool:
    """Whether the main thread of ``pid`` waits in a kernel function whose name holds ``function``."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return function in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("block", ["sleep", "event"])
def test_a_handler_that_replaced_the_waker_is_never_run_for_a_stop(block: str) -> None:
    """The rare case of docs/lifecycle.md: a program that replaced the wake
    signal's handler after it joined.  Its handler is not run for the stop;
    the stop is raised from afar instead (an asynchronous exception): a wait
    in Condition.wait (Event.wait) is ended, a blocking system call
    (time.sleep) is waited out, and the stop raised as it returns."""
    child = shutdownbus.spawn([sys.executable, REPLACED_THE_WAKER, block], ready_timeout=READY, stdout=-1, text=True)
    assert child.stdout is not None and child.stdout.readline() == "blocking\n"
    if block == "sleep" and LINUX:
        # A stop raised from afar lands at the next bytecode: it must find the
        # main thread inside the sleep, not a few instructions before it.
        wait_for(lambda: _main_thread_in_kernel(child.pid, "nanosleep"), 30, "the member never slept")
    report = child.stop(reason="replaced", timeout=30)
    out = json.loads(child.stdout.read())
    child.stdout.close()
    assert report.ok, report
    assert (out["reason"], out["calls"]) == ("replaced", [])
    if block == "sleep":
        if out["arrived"] >= 3:
            pytest.skip(f"the stop arrived {out['arrived']:.1f} s after ready(), after the sleep: too loaded to tell")
        if not LINUX and out["raised"] < 3:
            pytest.skip("the stop came before the sleep began: only Linux lets the test wait for the sleep (wchan)")
        assert out["raised"] >= 3  # the sleep was not interrupted
    else:
        assert report.seconds < 10, report


@contextlib.contextmanager
def process_tree(cmd: list[str]) -> Iterator[subprocess.Popen[str]]:
    """``cmd``, once it printed "up"; its inner processes must end by waiting for their children.

    At the end the leaves are killed, so that each parent reaps its own and
    exits: killing the parents too would leave the leaves to this process, a
    subreaper, as zombies.
    """
    root = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert root.stdout is not None and root.stdout.readline() == "up\n"
        yield root
    finally:
        descendants = psutil.Process(root.pid).children(recursive=True)
        parents = set()
        for proc in descendants:
            with contextlib.suppress(psutil.Error):
                parents.add(proc.ppid())
        for proc in descendants:
            if proc.pid not in parents:
                kill(proc.pid)
        try:
            root.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for proc in [*descendants, psutil.Process(root.pid)]:
                kill(proc.pid)
            root.wait()
        assert root.stdout is not None
        root.stdout.close()


@pytest.mark.parametrize("kernel_lists_children", [True, False], ids=["proc-children", "psutil-table"])
def test_process_table_finds_every_descendant(monkeypatch: pytest.MonkeyPatch, kernel_lists_children: bool) -> None:
    if kernel_lists_children and not _platform.KERNEL_LISTS_CHILDREN:
        pytest.skip("this kernel does not list children in /proc")
    monkeypatch.setattr(_platform, "KERNEL_LISTS_CHILDREN", kernel_lists_children)
    # Three levels; "up" is printed once every process of the tree runs.
    tree_cmd = [sys.executable, str(PROGRAMS / "sleepers.py"), json.dumps([None, [None, None]])]
    with process_tree(tree_cmd) as root:
        expected = {p.pid for p in psutil.Process(root.pid).children(recursive=True)}
        tree = Tree([root.pid], table=ProcessTable())
        assert set(tree.members) == expected and len(expected) == 4
        assert {m.depth for m in tree.members.values()} == {1, 2}


def test_the_kernels_children_list_is_read_whole() -> None:
    if not _platform.KERNEL_LISTS_CHILDREN:
        pytest.skip("this kernel does not list children in /proc")
    # 1000 pids are more than /proc hands out in one read (a page).
    script = "i=0; while [ $i -lt 1000 ]; do sleep 300 & i=$((i+1)); done; echo up; wait"
    with process_tree(["sh", "-c", script]) as root:
        expected = sorted(p.pid for p in psutil.Process(root.pid).children())
        assert len(expected) == 1000
        assert _platform.child_pids(root.pid) == expected


@pytest.mark.skipif(WINDOWS, reason="a fork that has not exec'd yet is POSIX's")
def test_a_name_seen_before_the_exec_is_read_again_and_no_other_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # A forked child has its parent's command line until it execs: the walk
    # names it after its parent, and reads its name again at later looks.
    # A child whose command line is its own is not read again.
    with process_tree([sys.executable, str(PROGRAMS / "forks_then_execs.py")]) as root:
        own = psutil.Process(root.pid).cmdline()
        kids = psutil.Process(root.pid).children()
        forked = next(p.pid for p in kids if p.cmdline() == own)
        started = next(p.pid for p in kids if p.pid != forked)
        monkeypatch.setattr(Tree, "NEWBORN", 600.0)  # the exec below may come late on a loaded machine
        monkeypatch.setattr(Tree, "START_TIME_SLACK", -600.0)  # the children are young: only command lines count here
        tree = Tree([root.pid])
        try:
            assert tree.members[forked].name == "forks_then_execs.py" and tree.members[forked].name_unsure
            assert tree.members[started].name == "sleep.py" and not tree.members[started].name_unsure

            os.kill(forked, signal.SIGUSR1)
            wait_for(lambda: psutil.Process(forked).cmdline()[-1:] == ["300"], 30, "the forked child's exec")
            tree.refresh()
            assert tree.members[forked].name == "sleep.py"
        finally:
            tree.watch.close()


@pytest.mark.skipif(WINDOWS, reason="sh")
def test_a_name_seen_in_a_process_first_moment_is_read_again() -> None:
    # A shell that runs one command execs it: first seen as the shell (its
    # own command line, not its parent's), it is named again once it exec'd.
    script = "read line; exec " + " ".join(sleep_cmd(300))
    with subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, text=True) as shell:
        try:
            tree = Tree([os.getpid()], watched=False)
            try:
                assert tree.members[shell.pid].name == "sh" and tree.members[shell.pid].name_unsure
                assert shell.stdin is not None
                shell.stdin.write("go\n")
                shell.stdin.flush()
                wait_for(lambda: psutil.Process(shell.pid).cmdline()[-1:] == ["300"], 30, "the shell's exec")
                tree.refresh()
                assert tree.members[shell.pid].name == "sleep.py"
            finally:
                tree.watch.close()
        finally:
            kill(shell.pid)


#: Its main thread ends (pthread_exit) once told, while another sleeps: a
#: zombie leader whose process runs on, and whose children would come to a
#: subreaper only when its last thread ends.
ZOMBIE_LEADER = (
    "import ctypes, sys, threading, time\n"
    "threading.Thread(target=time.sleep, args=(600,)).start()\n"
    "print('up', flush=True)\n"
    "sys.stdin.readline()\n"
    "ctypes.CDLL(None).pthread_exit(None)\n"
)


@pytest.mark.skipif(not LINUX, reason="a zombie leader, in /proc")
def test_a_zombie_leader_with_threads_left_is_watched_until_its_last_thread_ends() -> None:
    """A member's tree, taken in unwatched, is looked at once the member is
    gone: a process there whose main thread has ended but not the others is
    ending, not gone, whether it was so at the first look or became so
    later.  A stop took it for gone, and ended before what it started came
    to it (tests/test_faults.py's killed member below a killed member, about
    1 run in 20)."""
    argv = ["sh", "-c", '"$@"; exit 0', "sh", sys.executable, "-c", ZOMBIE_LEADER]
    shell = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert shell.stdout is not None and shell.stdin is not None and shell.stdout.readline() == "up\n"
        before = Tree([shell.pid], watched=False)  # it runs, all its threads
        (leader,) = before.members.values()
        shell.stdin.write("end your main thread\n")
        shell.stdin.flush()
        wait_for(lambda: leader.proc.status() == psutil.STATUS_ZOMBIE, 30, "its main thread did not end")
        assert _platform.threads_left(leader.pid)
        after = Tree([shell.pid], watched=False)  # a zombie at the first look
        for tree in (before, after):
            assert [m.pid for m in tree.alive()] == [leader.pid]  # watched, not taken for gone
        signal_members(after.alive(), Outcome.STOPPED)  # not skipped as gone: it gets its SIGTERM
        for tree in (before, after):
            assert tree.wait_gone(30) == []
            assert tree.members[leader.pid].gone_at is not None  # its exit was seen as it happened
            tree.watch.close()
        assert after.members[leader.pid].outcome == "stopped"
    finally:
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(shell.pid).children():
                proc.kill()
        shell.kill()
        shell.wait(30)
