"""Software nobody here wrote, stopped as a user would stop it.

multiprocessing pools under each start method, gunicorn and uvicorn with
workers, shells with background jobs, asyncio programs: each stops about as
fast as Ctrl-C or ``kill -TERM`` would stop it, runs its cleanup, leaves
nothing behind, and gets a report that tells the truth.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MEMBER, log_lines

import shutdownbus
from shutdownbus import _platform

PROGRAMS = Path(__file__).parent / "programs"
POOL_MEMBER = str(PROGRAMS / "pool_member.py")
AIO_MEMBER = str(PROGRAMS / "aio_member.py")
EXIT_AUDIT = str(PROGRAMS / "exit_audit.py")
STOP_TIMEOUT = 10.0  # a stop that needs its deadline is the bug these tests catch: they would fail at it

# -- multiprocessing -------------------------------------------------------------


def stop_pool_member(tmp_path: Path, kind: str, method: str, state: str) -> tuple[shutdownbus.StopReport, str]:
    log = tmp_path / "log"
    child = shutdownbus.spawn(
        [sys.executable, POOL_MEMBER, kind, method, state, str(log)],
        stderr=subprocess.PIPE,
        ready_timeout=60,
        stop_timeout=STOP_TIMEOUT,
    )
    report = child.stop()
    assert child.stderr is not None
    stderr = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    assert "finally" in log_lines(log), f"the member's finally: did not run\n{report}\n{stderr}"
    return report, stderr


@pytest.mark.parametrize("state", ["busy", "idle"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("kind", ["pool", "executor"])
def test_a_member_with_a_process_pool_stops_at_once_and_cleanly(
    tmp_path: Path, kind: str, method: str, state: str
) -> None:
    """Before: the member's exit swept the resource tracker (which ignores
    SIGTERM) until the deadline, and a ProcessPoolExecutor's shutdown waited
    for its running tasks, so the member was terminated and its finally:
    never ran."""
    report, stderr = stop_pool_member(tmp_path, kind, method, state)
    assert report.ok, f"{report}\n{stderr}"
    assert report.entries[0].outcome == "stopped", report
    assert report.seconds < STOP_TIMEOUT, report
    helpers = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
    assert len([e for e in report.entries[1:] if e.name not in helpers]) >= 4, report  # the workers
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_the_resource_tracker_is_left_to_finish_its_job(tmp_path: Path, method: str) -> None:
    """Shared memory and a semaphore start multiprocessing's resource tracker
    (with fork too), which ignores SIGINT and SIGTERM and exits once its
    owner is gone: it is recognised as such, not killed at the deadline."""
    report, stderr = stop_pool_member(tmp_path, "shm", method, "busy")
    assert report.ok, report
    tracker = [e for e in report.entries if e.name == "multiprocessing.resource_tracker"]
    assert [(e.outcome, e.member) for e in tracker] == [("stopped", False)], report
    assert report.seconds < STOP_TIMEOUT, report
    assert "leaked" not in stderr and "Traceback" not in stderr, stderr


# -- asyncio ------------------------------------------------------------------------


def spawn_aio_member(*args: str) -> shutdownbus.Child:
    child = shutdownbus.spawn(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stop_timeout=STOP_TIMEOUT
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.run handles Ctrl-C from Python 3.11 on")
@pytest.mark.parametrize("plain", [False, True], ids=["alone", "with-a-plain-child"])
def test_an_asyncio_member_stops_quietly_as_after_ctrl_c(plain: bool) -> None:
    """Before: with a plain child running, the exit path imported the stop
    machinery, which made CPython forget the KeyboardInterrupt: exit status
    1, reported failed.  And every stop printed asyncio's KeyboardInterrupt
    and CancelledError tracebacks."""
    child = spawn_aio_member(AIO_MEMBER, *(["--plain"] if plain else []))
    report = child.stop()
    out, err = child.communicate(timeout=60)
    assert child.returncode == _platform.interrupted_returncode(), (report, err)
    assert report.ok and report.entries[0].outcome == "stopped", report
    assert len(report.entries) == (2 if plain else 1), report
    assert "cleaned up" in out
    assert err == ""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.run handles Ctrl-C from Python 3.11 on")
@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX SIGINT")
def test_ctrl_c_of_an_asyncio_member_keeps_its_native_traceback() -> None:
    child = spawn_aio_member(AIO_MEMBER)
    os.kill(child.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends it
    out, err = child.communicate(timeout=60)
    report = child.stop()
    assert "cleaned up" in out
    assert "KeyboardInterrupt" in err and "Traceback" in err, err
    assert child.returncode == _platform.interrupted_returncode()
    assert report.entries[0].outcome == "exited"


# -- the exit path imports nothing ----------------------------------------------------


@pytest.mark.parametrize(
    "program",
    [
        [AIO_MEMBER, "--plain"],
        [POOL_MEMBER, "executor", "spawn", "busy", "{log}"],
        [MEMBER, "--log", "{log}", "--depth", "1"],
        [MEMBER, "--log", "{log}", "--grandchild", "plain"],
        [MEMBER, "--log", "{log}", "--grandchild", "daemon"],
    ],
    ids=["asyncio-with-a-plain-child", "process-pool", "children", "plain-grandchild", "daemon"],
)
def test_the_exit_after_a_stop_loads_no_module(tmp_path: Path, program: list[str]) -> None:
    """An import at exit could run exec() (dataclasses and namedtuple do),
    which after an uncaught KeyboardInterrupt makes CPython exit with status
    1 instead of dying of SIGINT.  Whatever the member has, the exit path
    loads nothing."""
    record = tmp_path / "record"
    args = [arg.format(log=tmp_path / "log") for arg in program]
    child = shutdownbus.spawn(
        [sys.executable, EXIT_AUDIT, str(record), *args], ready_timeout=60, stop_timeout=STOP_TIMEOUT
    )
    report = child.stop()
    assert report.ok, report
    assert record.read_text() == "", f"loaded on the exit path:\n{record.read_text()}"
