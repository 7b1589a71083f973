"""Ordered stops: a parent's children stopped a group at a time, in the order it declared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROGRAMS, SCRIPT, log_lines, reaped, wait_for

import shutdownbus
from shutdownbus._deadlines import level_deadline

ORDERED_PARENT = str(PROGRAMS / "ordered_parent.py")


def _first(lines: list[str], line: str) -> int:
    return lines.index(line)


def test_a_forwarded_stop_reaches_the_server_then_the_workers_then_the_proxy(tmp_path: Path) -> None:
    """send-stop -> run -> the parent, which forwards the stop: the server
    stops first; the workers get the stop only once it is gone, together;
    the proxy last.  Before, every child got the stop at once."""
    log = tmp_path / "log"
    run = subprocess.Popen([*SCRIPT, "run", "--name", "ordered", "--", sys.executable, ORDERED_PARENT, str(log)])
    with reaped(run, descendants=True):
        wait_for(lambda: sum(" started " in line for line in log_lines(log)) == 4, 60, "the four children started")
        done = subprocess.run([*SCRIPT, "send-stop", "ordered", "--json"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert run.wait(60) == 0
    lines = [line for line in log_lines(log) if " stop-at " not in line]
    server_done = _first(lines, "server cleanup")
    for worker in ("worker1", "worker2"):
        assert server_done < _first(lines, f"{worker} got stop stop") < _first(lines, "proxy got stop stop"), lines
        assert _first(lines, f"{worker} cleanup") < _first(lines, "proxy got stop stop"), lines
    report = shutdownbus.StopReport.from_dict(json.loads(done.stdout))
    assert report.ok, report
    asked = {e.name: e.requested for e in report.entries if e.name in ("server", "worker1", "worker2", "proxy")}
    assert all(when is not None for when in asked.values()), report
    # When each group began: the report's ASKED column.
    assert asked["server"] < asked["worker1"] < asked["proxy"] and asked["worker2"] < asked["proxy"], report  # type: ignore[operator]


def test_each_group_gets_an_equal_share_and_the_last_ends_with_the_stop() -> None:
    assert [level_deadline(10.0, 16.0, k, 3) for k in range(3)] == [12.0, 14.0, 16.0]
    assert level_deadline(10.0, 16.0, 0, 1) == 16.0


def test_a_stop_order_that_is_not_an_integer_is_refused() -> None:
    with pytest.raises(ValueError, match="stop_order must be an integer"):
        shutdownbus.spawn([sys.executable, "-c", "pass"], stop_order="first")  # type: ignore[arg-type]
