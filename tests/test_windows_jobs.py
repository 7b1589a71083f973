"""Windows: every spawned child in a Job Object of its own, and the console's CTRL_BREAK.

Real processes under the real OS; under wine (``make test-windows``) Job
Objects work as on Windows and these tests run in full, but for the
CTRL_BREAK ones, which wine fails at the call (docs/security.md, "what wine
verifies"): they check the call's failure there, and the cleanup on Windows.
On Linux every test here is skipped: its own tests cover the parent-death
signal and the subreaper.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import PROGRAMS, UNDER_WINE, WINDOWS, logged, reaped, started_pids, wait_for, wait_gone

import shutdownbus
from shutdownbus import _platform

pytestmark = pytest.mark.skipif(not WINDOWS, reason="Job Objects and console control events are Windows'")

SLEEPERS = str(PROGRAMS / "sleepers.py")


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def handle_of(proc: subprocess.Popen[str]) -> int:
    return int(vars(proc)["_handle"])


def test_closing_a_childs_job_ends_the_child_and_its_grandchild() -> None:
    """KILL_ON_JOB_CLOSE: the grandchild was started by the child, after the
    child was assigned (it was created suspended), so it is in the job too."""
    proc = subprocess.Popen(
        [sys.executable, SLEEPERS, "[null]"],
        creationflags=_platform.suspended_creation_flag(),
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(proc, descendants=True):
        job = _platform.contain(handle_of(proc), proc.pid)
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        (grandchild,) = descendants(proc.pid)
        assert sorted(job.pids() or []) == sorted([proc.pid, grandchild.pid])
        assert job.active_processes() == 2
        job.close()
        proc.wait(30)
        assert wait_gone([grandchild], 30) == []


def test_a_child_created_suspended_can_be_resumed_by_walking_its_threads() -> None:
    """The fallback of `resume_process` when ntdll's NtResumeProcess is missing."""
    from shutdownbus._platform import _jobs

    proc = subprocess.Popen(
        [sys.executable, SLEEPERS, "null"],
        creationflags=_platform.suspended_creation_flag(),
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(proc):
        job = _platform.contain(handle_of(proc), proc.pid, resume=False)
        assert _jobs._resume_threads(proc.pid)
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        assert job.terminate()
        assert proc.wait(30) == _jobs.TERMINATED_EXIT_CODE


def test_spawn_puts_each_child_into_a_job_of_its_own(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with shutdownbus.spawn([sys.executable, str(PROGRAMS / "member.py"), "--name", "B", "--log", str(log)]) as child:
        child.wait_ready(60)
        assert child.job is not None and child.job.pids() == [child.pid]
        report = child.stop()
    assert [e.outcome for e in report.entries] == ["stopped"]


BREAKAWAY = """
import subprocess, sys
try:
    subprocess.Popen([sys.executable, "-c", "pass"], creationflags=0x01000000).wait()  # CREATE_BREAKAWAY_FROM_JOB
    print("broke away", flush=True)
except OSError as e:
    print("refused", e.winerror, flush=True)
"""


def test_a_child_cannot_break_away_from_its_job() -> None:
    """The jobs allow no breakaway (docs/lifecycle.md, "Limits"): a program
    that asks for CREATE_BREAKAWAY_FROM_JOB gets ERROR_ACCESS_DENIED."""
    with shutdownbus.spawn([sys.executable, "-c", BREAKAWAY], joins=False, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        out = child.stdout.read()
        assert child.wait(60) == 0
    assert out == "refused 5\n"


def test_a_hard_killed_spawner_leaves_nothing_and_its_members_stop_first(tmp_path: Path) -> None:
    """The spawner is ended by TerminateProcess with, below it, a member M
    (with a member child M.0 and a plain subprocess) and a non-member with a
    grandchild.  The kernel closes the spawner's job handles: the
    non-member's job ends its subtree at once; M holds its own job handle
    (it joined), stops on ``parent-lost`` with its cleanup, stops M.0, and
    when it exits its job ends what is left."""
    log = tmp_path / "log"
    spawner = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "hard_killed_spawner.py"), str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None and spawner.stdout.readline() == "ready\n"
        members = started_pids(log)
        assert set(members) == {"M", "M.0"}
        (plain,) = (int(pid) for _, pid in logged(log, "plain"))
        below = descendants(spawner.pid)
        non_members = [p for p in below if p.pid not in (*members.values(), plain)]
        assert len(below) == 5 and len(non_members) == 2  # sleepers.py, its child
        t0 = time.monotonic()
        spawner.kill()
        spawner.wait(30)
        assert wait_gone(non_members, 30) == []
        non_members_gone = time.monotonic() - t0
        assert wait_gone(below, 60) == []
        all_gone = time.monotonic() - t0
    print(f"non-members gone {non_members_gone * 1000:.0f} ms after TerminateProcess, all {all_gone * 1000:.0f} ms")
    assert dict(logged(log, "got stop")) == {"M": "parent-lost", "M.0": "parent-lost"}
    assert {name for name, _ in logged(log, "cleanup")} == {"M", "M.0"}


def test_escalation_ends_the_subtree_with_the_job_also_what_no_walk_finds(tmp_path: Path) -> None:
    """A member that ignores its stop, with an orphan that is nobody's child
    and carries no marker: at the deadline TerminateJobObject ends both."""
    log = tmp_path / "log"
    maker = [sys.executable, str(PROGRAMS / "orphan_maker.py"), str(log), "--join", "--ignore-stop"]
    with shutdownbus.spawn(maker) as child:
        wait_for(lambda: bool(logged(log, "up")), 60, "orphan_maker.py up")
        (orphan,) = (psutil.Process(int(pid)) for _, pid in logged(log, "orphan"))
        assert orphan.pid not in {p.pid for p in descendants(child.pid)}
        assert orphan.pid in (child.job.pids() if child.job else [])
        report = child.stop(timeout=1)
    assert logged(log, "ignored"), "the stop reached the member"
    assert report.entries[0].outcome == "terminated"
    # Listed, though no walk found it: the job held it (before, the report did not name it).
    assert (orphan_entry := report.entry(orphan.pid)) is not None and orphan_entry.outcome == "terminated", report
    assert wait_gone([orphan], 30) == []


def test_an_undeclared_non_member_and_its_unseen_orphan_end_with_its_job(tmp_path: Path) -> None:
    """What an undeclared non-member gets on Windows: its job ended after the
    join grace (`_platform.join_grace`), its whole subtree at once."""
    log = tmp_path / "log"
    with shutdownbus.spawn([sys.executable, str(PROGRAMS / "orphan_maker.py"), str(log)]) as child:
        wait_for(lambda: bool(logged(log, "up")), 60, "orphan_maker.py up")
        (orphan,) = (psutil.Process(int(pid)) for _, pid in logged(log, "orphan"))
        report = child.stop(timeout=30)
    assert report.entries[0].outcome == "stopped" and report.entries[0].returncode == 1
    assert (orphan_entry := report.entry(orphan.pid)) is not None and orphan_entry.outcome == "stopped", report
    assert report.seconds < 30
    assert wait_gone([orphan], 30) == []


SIGBREAK_CLEANUP = str(PROGRAMS / "sigbreak_cleanup.py")


@pytest.mark.parametrize("send", ["send_ctrl_break", "break_process_groups", "stop"])
def test_ctrl_break_reaches_a_non_member_in_its_own_group(tmp_path: Path, send: str) -> None:
    """A Python non-member spawned with ``stop_signal="CTRL_BREAK"`` (so in a
    process group of its own), with a SIGBREAK handler that writes a cleanup
    marker, sent CTRL_BREAK_EVENT directly or by its stop.  Windows, with a
    console: it cleans up and exits 0.  Without a console, and under wine,
    which fails GenerateConsoleCtrlEvent for a process group (WinError 12
    with pipes as the streams, 6 in a console), the call's failure is what is
    checked; the child, untouched, is ended by its job (by the stop at once,
    not at its deadline)."""
    marker = tmp_path / "cleaned"
    cmd = [sys.executable, SIGBREAK_CLEANUP, str(marker)]
    child = shutdownbus.spawn(cmd, stop_signal="CTRL_BREAK", stdout=subprocess.PIPE, text=True)
    no_event = UNDER_WINE or not _platform.has_console()
    with reaped(child):
        assert child.stdout is not None and child.stdout.readline() == "up\n"
        if send == "stop":
            report = child.stop(timeout=30)
            (entry,) = report.entries
            assert report.seconds < 30, report  # not escalated at the deadline
            if no_event:
                assert (entry.outcome, entry.returncode, entry.request) == ("terminated", 1, None), report
                assert not marker.exists()
            else:
                assert (entry.outcome, entry.returncode, entry.request) == ("stopped", 0, "CTRL_BREAK"), report
                assert marker.read_text() == "cleaned up"
            return
        failed: dict[int, OSError] = {}
        if send == "send_ctrl_break":
            try:
                _platform.send_ctrl_break(child.pid)
            except OSError as e:
                failed[child.pid] = e
        else:
            failed = _platform.break_process_groups([child.pid])
        if no_event:
            # No console to send it on (a service, pythonw, some CI runners),
            # or wine: the call fails and nothing reached the child.
            assert list(failed) == [child.pid]
            if UNDER_WINE:
                assert getattr(failed[child.pid], "winerror", None) in (6, 12)
            assert child.poll() is None
            assert child.job is not None and child.job.terminate()
            assert child.wait(30) == 1
            assert not marker.exists()
        else:
            assert failed == {}
            assert child.wait(30) == 0
            assert marker.read_text() == "cleaned up"


def test_a_ctrl_c_is_passed_on_as_ctrl_break_to_a_childs_process_group(tmp_path: Path) -> None:
    """A console of its own (hidden), a user's Ctrl-C in it: the parent's
    forwarder sends CTRL_BREAK_EVENT to its child's process group, which the
    console's Ctrl-C does not reach, and the parent still gets its
    KeyboardInterrupt.  Windows: the child's SIGBREAK handler cleans up.
    Wine fails the CTRL_BREAK call: the forwarder reports it, and the child,
    untouched, is ended by its job when the parent stops it."""
    marker = tmp_path / "cleaned"
    hidden = subprocess.STARTUPINFO(dwFlags=subprocess.STARTF_USESHOWWINDOW, wShowWindow=0)  # type: ignore[attr-defined]
    driver = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "ctrl_c_forwarding.py"), str(marker)],
        creationflags=subprocess.CREATE_NEW_CONSOLE,  # type: ignore[attr-defined]
        startupinfo=hidden,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with reaped(driver, descendants=True):
        out, _ = driver.communicate(timeout=120)
    assert "parent got KeyboardInterrupt" in out, out
    assert "Traceback" not in out, out
    if UNDER_WINE:
        assert "could not pass Ctrl-C on to pid " in out, out
        assert "child exit status 1" in out, out
        assert not marker.exists()
    else:
        assert "could not pass Ctrl-C on" not in out, out
        assert "child exit status 0" in out, out
        assert marker.read_text() == "cleaned up"
