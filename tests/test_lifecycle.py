"""Stop guarantees: deadlines, escalation, descendants that are not members, orphans."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import (
    KILLED,
    LINUX,
    PROGRAMS,
    READY,
    WINDOWS,
    alive,
    kill,
    log_lines,
    logged,
    member_cmd,
    reaped,
    sleep_cmd,
    started_pids,
    wait_gone,
)

import shutdownbus
from shutdownbus._deadlines import ESCALATION_MARGIN

LOOSE = 5.0  # bound against hangs on a loaded machine; timing goals belong to benchmarks
INTERRUPTED_STOP = str(PROGRAMS / "interrupted_stop.py")
HOLDS_STDERR = str(PROGRAMS / "holds_stderr.py")
FAST_EXIT = str(PROGRAMS / "fast_exit.py")


# A stubborn child ignores SIGTERM and must be killed; on Windows the polite
# request is already TerminateProcess, which nothing ignores.
STUBBORN_OUTCOMES = {"terminated"} if WINDOWS else {"killed"}


@pytest.mark.parametrize(
    ("behaviour", "outcomes"), [("hang", {"killed", "terminated"}), ("stubborn", STUBBORN_OUTCOMES)]
)
def test_child_that_does_not_stop_is_escalated_by_its_deadline(
    tmp_path: Path, behaviour: str, outcomes: set[str]
) -> None:
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--on-stop", behaviour), ready_timeout=READY)
    start = time.monotonic()
    report = child.stop(timeout=1.0)
    took = time.monotonic() - start
    assert report.entries[0].outcome in outcomes, report
    assert not report.ok
    assert took >= 1.0
    assert took < 1.0 + ESCALATION_MARGIN + LOOSE
    assert alive([child.pid]) == []


def test_stubborn_grandchild_is_killed_and_its_parent_still_cleans_up(tmp_path: Path) -> None:
    """The deadline travels: B's child gets a smaller budget, so B escalates it
    itself and still has time for its own cleanup before B's own deadline."""
    log = tmp_path / "log"
    child = shutdownbus.spawn(
        member_cmd(log, "--depth", "1", "--on-stop", "clean", "--stop-timeout", "2"), ready_timeout=READY
    )
    grandchild = started_pids(log)["B.0"]
    assert alive([grandchild]) == [grandchild]
    report = child.stop(timeout=4.0)
    assert report.entries[0].outcome == "stopped", report
    assert "B cleanup" in log_lines(log)
    assert alive([child.pid, grandchild]) == []


@pytest.mark.parametrize(
    "grandchild",
    [
        "plain",
        pytest.param(
            "daemon",
            marks=pytest.mark.skipif(
                not LINUX, reason="a double-forked daemon stays in the tree only below a subreaper (Linux)"
            ),
        ),
    ],
)
def test_plain_grandchild_and_double_forked_daemon_are_gone_after_the_stop(tmp_path: Path, grandchild: str) -> None:
    log = tmp_path / "log"
    member = shutdownbus.spawn(member_cmd(log, "--grandchild", grandchild, name="M"), ready_timeout=READY)
    pid = int(dict(logged(log, grandchild))["M"])
    if grandchild == "daemon":
        # The daemon's parent left; the member (a subreaper once joined) adopted it.
        assert psutil.Process(pid).ppid() == member.pid
    report = member.stop(timeout=5)
    entry = report.entry(pid)
    assert entry is not None, report
    assert not entry.member and entry.outcome in ("stopped", "terminated"), report
    assert alive([member.pid, pid]) == []


def test_sleep_spawned_directly_is_stopped_as_a_non_member(tmp_path: Path) -> None:
    child = shutdownbus.spawn(sleep_cmd(100), stop_timeout=5)
    report = child.stop()
    assert not child.joined
    assert [(e.name, e.member, e.outcome) for e in report.entries] == [("sleep.py", False, "stopped")]


def test_what_the_cleanup_starts_is_ended_when_every_child_was_on_the_bus(tmp_path: Path) -> None:
    """The stop finds only children on the bus, so nothing else is watched
    while the program cleans up; what its cleanup starts, and leaves
    running, is still asked to go at its exit, and reported."""
    log = tmp_path / "log"
    parent = shutdownbus.spawn(
        [sys.executable, str(PROGRAMS / "cleanup_starts_a_process.py"), str(log)], ready_timeout=READY
    )
    with parent:
        report = parent.stop(timeout=10)
    (_, late), = logged(log, "late")
    assert alive([parent.pid, int(late)]) == [], report
    entry = report.entry(int(late))
    assert entry is not None and (entry.name, entry.outcome) == ("sleep.py", "stopped"), report
    assert report.ok, report


def test_orphaned_member_stops_its_tree_when_its_parent_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--depth", "1"), ready_timeout=READY)
    c_pid = started_pids(log)["B.0"]
    c = psutil.Process(c_pid)
    killed_at = time.monotonic()
    kill(child.pid)
    # C stops on its own (on Linux it is re-parented to us, a subreaper).  Not
    # psutil's wait: begun before C is ours, it waits for C's zombie to go.
    assert wait_gone([c], 30) == []
    lines = log_lines(log)
    assert "B.0 got stop parent-lost" in lines
    assert "B.0 cleanup" in lines
    stop_at = float(dict(logged(log, "stop-at"))["B.0"])
    assert stop_at - killed_at < 2.0
    report = child.stop()
    assert (report.entries[0].pid, report.entries[0].outcome, report.entries[0].returncode) == (
        child.pid,
        "exited",
        KILLED,
    ), report
    # C is reported with it when the look for remains saw it (it runs a
    # moment on 'parent-lost'); one that is a zombie by the first look cannot
    # be told from our own children any more, and is not.
    assert [(e.pid, e.outcome, e.returncode) for e in report.entries[1:]] in ([], [(c_pid, "exited", 0)]), report


def test_second_stop_during_a_stop_starts_no_second_cleanup(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--depth", "1"), ready_timeout=READY)
    first = child.stop(reason="one")
    assert child.stop(reason="two") is first
    assert log_lines(log).count("B got stop one") == 1
    assert not any("two" in line for line in log_lines(log))


def test_report_covers_every_process_with_outcomes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--depth", "1", "--fanout", "3"), ready_timeout=READY)
    report = child.stop()
    assert len(report.entries) == 4
    assert sorted(e.name for e in report.entries) == ["B", "B.0", "B.1", "B.2"]
    assert all(e.seconds is not None and 0 <= e.seconds <= report.seconds + 0.01 for e in report.entries), report
    assert report.ok


def test_stop_request_reaches_a_child_started_with_a_shell(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # A shell with two commands does not exec: python is the shell's child and joins.
    if WINDOWS:
        command = subprocess.list2cmdline(member_cmd(log)) + " & rem"  # cmd.exe
    else:
        command = " ".join(member_cmd(log)) + "; true"  # sh
    child = shutdownbus.spawn(command, shell=True, ready_timeout=READY)
    assert child.member_pid is not None and child.member_pid != child.pid
    report = child.stop()
    assert report.entries[0].pid == child.pid and report.entries[0].outcome == "stopped", report
    member = report.entry(child.member_pid)
    assert member is not None and member.member and member.outcome == "stopped", report
    lines = log_lines(log)
    assert "B got stop stop" in lines and "B cleanup" in lines, lines  # through the bus, not a signal


def test_stop_arriving_while_a_member_spawns_reaches_the_new_children(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # B says it is ready, then starts five more children: the stop lands
    # somewhere in that sequence, and every child started must stop too.
    child = shutdownbus.spawn(member_cmd(log, "--late-children", "5"), ready_timeout=READY)
    report = child.stop(timeout=20)
    spawned = [int(pid) for name, pid in logged(log, "spawned") if name == "B"]
    assert alive([child.pid, *spawned]) == []
    assert report.entries[0].outcome == "stopped", report
    for pid in spawned:
        entry = report.entry(pid)
        assert entry is not None and entry.outcome == "stopped", report


@pytest.mark.skipif(not LINUX, reason="an escaped descendant stays in reach only below a subreaper (Linux)")
def test_descendants_that_escape_a_non_member_are_still_stopped() -> None:
    # The subshell double-forks: 'sleep 301' is re-parented to us, out of sh's
    # subtree.  "up" comes once sh has reaped the subshell.
    escaped = shutdownbus.spawn(
        ["sh", "-c", "(sleep 301 &); echo up; exec sleep 302"], stop_timeout=5, stdout=subprocess.PIPE
    )
    finished = shutdownbus.spawn(["sh", "-c", "sleep 303 & exit 0"])
    assert escaped.stdout is not None and escaped.stdout.readline() == b"up\n"
    finished.wait(timeout=60)
    for child in (escaped, finished):
        report = child.stop()
        names = sorted(e.name for e in report.entries)
        assert names == ["sh", "sleep"], report
        assert all(e.outcome in ("stopped", "exited") for e in report.entries), report
    escaped.stdout.close()
    # The autouse fixture fails the test if any sleep is left.


def test_a_stop_interrupted_in_the_parent_still_completes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    cmd = [sys.executable, INTERRUPTED_STOP, *member_cmd(log, "--on-stop", "ignore")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    lines = done.stdout.splitlines()
    assert lines[0] == "interrupted True", done.stdout + done.stderr
    report, gone = lines[1].rsplit(" ", 1)
    assert gone == "True"
    assert json.loads(report)["entries"][0]["outcome"] in ("terminated", "killed")


def test_wait_ready_returns_by_its_timeout_when_a_grandchild_holds_stderr(tmp_path: Path) -> None:
    start = time.monotonic()
    pid_file = tmp_path / "grandchild"
    try:
        with pytest.raises(shutdownbus.ChildExited) as info:
            cmd = [sys.executable, HOLDS_STDERR, str(pid_file)]
            shutdownbus.spawn(cmd, stderr=subprocess.PIPE, ready_timeout=5)
        assert time.monotonic() - start < 5 + LOOSE
        assert info.value.stderr_tail == "boom"
    finally:
        # On Linux the stop of the child that failed to get ready ended the
        # grandchild (a subreaper adopts it); elsewhere it is out of the tree.
        if pid_file.exists():
            with contextlib.suppress(psutil.Error):
                grandchild = psutil.Process(int(pid_file.read_text()))
                if "time.sleep(30)" in " ".join(grandchild.cmdline()):  # not a process that got its pid since
                    grandchild.kill()


@pytest.mark.parametrize(
    ("fast_exit", "stopped", "frozen"), [(True, True, True), (False, True, False), (True, False, False)]
)
def test_fast_exit_freezes_the_collector_only_after_a_stop(
    tmp_path: Path, fast_exit: bool, stopped: bool, frozen: bool
) -> None:
    log = tmp_path / "cleanup"
    cmd = [sys.executable, FAST_EXIT, str(log), str(fast_exit), "300" if stopped else "0"]
    child = shutdownbus.spawn(cmd, stdout=subprocess.PIPE, ready_timeout=READY)
    if stopped:
        assert child.stop().ok
        assert log.read_text() == "cleaned up"
    else:
        child.wait(timeout=60)
    assert child.stdout is not None
    assert child.stdout.read().decode().split() == ["frozen", str(frozen)]
    child.stdout.close()


# -- farewells (Linux): a level goes on at its child's farewell; the top waits for every exit ---------------

FAREWELL_CHAIN = str(PROGRAMS / "farewell_chain.py")


def farewell_chain(ending: str, timeout: float, mid: str = "sleep") -> dict[str, Any]:
    """Run tests/programs/farewell_chain.py (top -> mid -> last -> tail) and return what its top printed."""
    cmd = [sys.executable, FAREWELL_CHAIN, "top", ending, repr(timeout), mid]
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(popen, descendants=True) as top:
        out, err = top.communicate(timeout=timeout + 60)
    assert top.returncode == 0, out + err
    # A parent that took a farewell may exit before its child: no news to the child, already stopping.
    assert "parent is gone" not in err, err
    result: dict[str, Any] = json.loads(out)
    result["by_name"] = {e["name"]: e for e in result["report"]["entries"]}
    return result


FAREWELLS = pytest.mark.skipif(not LINUX, reason="farewells are said where orphans stay in the tree (Linux)")


@FAREWELLS
@pytest.mark.parametrize("mid", ["sleep", "with", "wait", "unsaid"])
def test_a_level_goes_on_at_its_childs_farewell_and_the_top_waits_for_the_exit(mid: str) -> None:
    """last spends a second more in its own exit after its farewell: mid goes
    on and exits at once (it waited for last's exit before), also inside
    ``with spawn()`` or in ``Child.wait()`` (which takes CPython's short
    wait), while top waits for last, reaps it (its status is in the report)
    and leaves no zombie.  A mid whose spawner did not say it takes
    farewells (``unsaid``) waits for last's exit itself."""
    result = farewell_chain("slow", 10.0, mid)
    mid_, last, tail = (result["by_name"][name] for name in ("mid", "last", "tail"))
    assert result["report"]["ok"], result
    assert (mid_["outcome"], last["outcome"], tail["outcome"]) == ("stopped", "stopped", "stopped")
    assert (mid_["returncode"], last["returncode"], tail["returncode"]) == (0, 0, 0)
    assert last["seconds"] >= 1.0, result  # when it was gone: top saw it go
    if mid == "unsaid":
        assert mid_["seconds"] >= last["seconds"], result  # mid waited for it
    else:
        assert mid_["seconds"] < last["seconds"] - 0.5, result  # mid did not wait for it
    assert result["report"]["seconds"] >= last["seconds"]
    assert result["running"] == [] and result["zombies"] == [], result


@FAREWELLS
@pytest.mark.parametrize("mid", ["sleep", "with"])
def test_a_process_stuck_after_its_farewell_is_ended_by_the_tops_deadline(mid: str) -> None:
    """last never ends after its farewell: top, which waits for every exit,
    escalates it at its own deadline; mid is not held up by it (not by its
    ``with spawn()`` block either)."""
    timeout = 2.0
    result = farewell_chain("hang", timeout, mid)
    mid_, last = result["by_name"]["mid"], result["by_name"]["last"]
    assert not result["report"]["ok"]
    assert mid_["outcome"] == "stopped" and mid_["seconds"] < timeout, result
    assert last["outcome"] in ("terminated", "killed"), result
    assert timeout <= result["report"]["seconds"] < timeout + ESCALATION_MARGIN + LOOSE, result
    assert result["running"] == [] and result["zombies"] == [], result


@FAREWELLS
@pytest.mark.parametrize("mid", ["sleep", "with", "wait"])
def test_a_process_that_fails_after_its_farewell_is_reported_failed(mid: str) -> None:
    """last exits with status 3 after its farewell: whoever collects that
    status (mid, if it saw the exit first; else top) reports it failed; mid
    never reaps it after taking the farewell (in ``Child.wait()``, CPython's
    own short wait would)."""
    result = farewell_chain("exit3", 10.0, mid)
    last = result["by_name"]["last"]
    assert (last["outcome"], last["returncode"]) == ("failed", 3), result
    assert result["by_name"]["mid"]["outcome"] == "stopped"
    assert result["running"] == [] and result["zombies"] == [], result
