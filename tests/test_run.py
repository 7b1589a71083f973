"""``shutdownbus run``: its stop timeout, a killed run, concurrent send-stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import MEMBER, SCRIPT, commands_of, reaped, wait_for, wait_gone

import shutdownbus
from shutdownbus import _registry


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's (PR_SET_PDEATHSIG)")
def test_a_killed_run_takes_its_non_member_command_with_it(tmp_path: Path) -> None:
    """If run is SIGKILLed, its command gets the polite request (parent-death
    signal) rather than serve on with nobody able to stop it."""
    with reaped(subprocess.Popen([*SCRIPT, "run", "--name", "killed", "--", "sleep", "1000"])) as run:
        wait_for(lambda: commands_of(run.pid) != [], 60, "run did not start sleep")
        [sleep] = commands_of(run.pid)
        run.kill()
        assert run.wait(60) == -signal.SIGKILL
        assert wait_gone([sleep], 30) == []


@pytest.mark.skipif(sys.platform != "linux", reason="the guard of a spawner at the top of its tree is Linux's")
def test_a_killed_run_leaves_not_even_its_commands_background_job() -> None:
    """run SIGKILLed: its command (a shell) gets its polite request from the
    kernel, and the shell's background job, which gets nothing, is ended by
    run's guard.  Before, the job ran on under init."""
    command = ["sh", "-c", "sleep 1000 & echo $!; wait"]
    with reaped(subprocess.Popen([*SCRIPT, "run", "--name", "jobs", "--", *command], stdout=subprocess.PIPE)) as run:
        assert run.stdout is not None
        job = psutil.Process(int(run.stdout.readline()))
        run.kill()
        assert run.wait(60) == -signal.SIGKILL
        assert wait_gone([job], 30) == []


def test_send_stop_takes_the_roots_stop_timeout_and_a_second_one_joins(tmp_path: Path) -> None:
    """Before: send-stop applied its own 10 s, and a second send-stop during
    the stop waited 5 s and failed ('the tree's root did not answer')."""
    cmd = [sys.executable, MEMBER, "--log", str(tmp_path / "log"), "--on-stop", "ignore", "--announce"]
    run = subprocess.Popen(
        [*SCRIPT, "run", "--name", "slow", "--stop-timeout", "6", "--", *cmd], stdout=subprocess.PIPE
    )
    with reaped(run):
        assert run.stdout is not None and run.stdout.readline().startswith(b"ready ")
        first = subprocess.Popen([*SCRIPT, "send-stop", "slow", "--json"], stdout=subprocess.PIPE, text=True)
        registry = Path(_registry.directory())
        wait_for(lambda: (registry / "slow.stop").exists(), 60, "the first send-stop did not start")
        second = subprocess.run([*SCRIPT, "send-stop", "slow", "--json"], capture_output=True, text=True, timeout=60)
        out, _ = first.communicate(timeout=60)
    assert first.returncode == second.returncode == 1  # the member ignored the stop: escalated
    assert json.loads(out) == json.loads(second.stdout), second.stderr
    report = shutdownbus.StopReport.from_dict(json.loads(out))
    assert [e.outcome for e in report.entries[1:]] == ["terminated"], report
    # The root's 6 s (long enough for the second send-stop, started later, to
    # join the stop under wine's slow start-ups); with send-stop's own 10 s
    # the member went at 10 s.
    (member,) = report.entries[1:]
    assert member.seconds is not None and 6.0 <= member.seconds < 10.0, report
