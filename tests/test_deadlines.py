"""One documented bound: a stop returns, with every process of the tree gone,
by its timeout plus `ESCALATION_MARGIN`, whatever the tree does."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from conftest import PROGRAMS, UNDER_WINE, WINDOWS, alive, logged, member_cmd, reaped, started_pids, wait_for

import shutdownbus
from shutdownbus._deadlines import ESCALATION_MARGIN

#: What the OS may add to the bound on a loaded machine (two test workers on
#: two cores).  The bound kept before this test existed was T + 1.6 s: three
#: escalation rounds of the descendants, each with its own margin.
SCHEDULING = 0.6

@pytest.mark.skipif(WINDOWS, reason="SIGTERM that a process can ignore (POSIX)")
def test_descendants_that_outlive_their_parent_and_ignore_sigterm_are_gone_by_the_bound(tmp_path: Path) -> None:
    log = tmp_path / "log"
    timeout = 1.0
    child = shutdownbus.spawn([sys.executable, str(PROGRAMS / "outliving.py"), str(log)])
    with reaped(child, descendants=True):  # the workers outlive the child
        wait_for(lambda: [name for name, _ in logged(log, "up")].count("worker") == 2, 30, "workers up")
        wait_for(lambda: child.poll() is not None, 30, "the top process exits, leaving its workers")
        start = time.monotonic()
        report = child.stop(timeout=timeout)
        took = time.monotonic() - start
        print(report)
        up = logged(log, "up")
        assert alive([int(pid) for _, pid in up]) == []
        successors = [pid for name, pid in up if name == "successor"]
        assert successors, "the workers were asked to go before they were killed"
        assert took < timeout + ESCALATION_MARGIN + SCHEDULING, f"the stop took {took:.3f} s\n{report}"
        workers = {int(pid) for name, pid in up if name == "worker"}
        assert {e.pid for e in report.entries} >= workers, report
        assert all(e.outcome == "killed" for e in report.entries if e.pid in workers), report


DEPTH = 50


@pytest.mark.skipif(
    UNDER_WINE,
    reason="51 Windows CPythons take minutes to start one after the other under wine; the deadline rule is the"
    " same code on every OS",
)
def test_a_chain_of_fifty_members_stops_cleanly_with_the_default_timeout(tmp_path: Path) -> None:
    """Each level keeps a small share of the time left for itself, never a
    fixed amount: with the old rule (0.8 x (B - 0.4 s) per level) the budget
    ran out after about ten levels and the deepest members were terminated."""
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--depth", str(DEPTH), name="c"), ready_timeout=120)
    with reaped(child, descendants=True):
        wait_for(lambda: len(started_pids(log)) == DEPTH + 1, 120, "the whole chain started")
        report = child.stop()  # the default timeout, 10 s
        print(report)
        assert len(report.entries) == DEPTH + 1, report
        assert [e.outcome for e in report.entries] == ["stopped"] * (DEPTH + 1), report
        assert report.ok, report
        assert len(logged(log, "cleanup")) == DEPTH + 1
