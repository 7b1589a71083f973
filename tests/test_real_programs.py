"""Software nobody here wrote, stopped as a user would stop it.

multiprocessing pools under each start method, gunicorn and uvicorn with
workers, shells with background jobs, asyncio programs: each stops about as
fast as Ctrl-C or ``kill -TERM`` would stop it, runs its cleanup, leaves
nothing behind, and gets a report that tells the truth.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import (
    LINUX,
    MEMBER,
    READY,
    SCRIPT,
    START_METHODS,
    WINDOWS,
    WINE_EXECUTOR_HANG,
    commands_of,
    log_lines,
    wait_for,
)

import shutdownbus
from shutdownbus import _platform
from shutdownbus._deadlines import JOIN_GRACE
from shutdownbus._processes import is_running

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
        ready_timeout=READY,
        stop_timeout=STOP_TIMEOUT,
    )
    report = child.stop()
    assert child.stderr is not None
    stderr = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    assert "finally" in log_lines(log), f"the member's finally: did not run\n{report}\n{stderr}"
    return report, stderr


@pytest.mark.parametrize("state", ["busy", "idle"])
@pytest.mark.parametrize("method", START_METHODS)
@pytest.mark.parametrize("kind", ["pool", pytest.param("executor", marks=WINE_EXECUTOR_HANG)])
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


@pytest.mark.skipif(WINDOWS, reason="multiprocessing has no resource tracker on Windows")
@pytest.mark.parametrize("method", START_METHODS)
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
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        signals = ""
        for tid in os.listdir(f"/proc/{child.pid}/task"):
            status = Path(f"/proc/{child.pid}/task/{tid}/status").read_text().splitlines()
            signals += f"{tid}: " + " ".join(x for x in status if x.startswith(("Name", "Sig", "ShdPnd"))) + "\n"
        os.kill(child.pid, signal.SIGUSR1)  # its faulthandler prints every thread's stack
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.communicate(timeout=5)
        child.kill()
        out, err = child.communicate(timeout=60)
        pytest.fail(f"it did not exit after Ctrl-C; its output:\n{out}\nits threads:\n{signals}\n{err}")
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
        pytest.param([POOL_MEMBER, "executor", "spawn", "busy", "{log}"], marks=WINE_EXECUTOR_HANG),
        [MEMBER, "--log", "{log}", "--depth", "1"],
        [MEMBER, "--log", "{log}", "--grandchild", "plain"],
        pytest.param(
            [MEMBER, "--log", "{log}", "--grandchild", "daemon"],
            marks=pytest.mark.skipif(not LINUX, reason="a double-forked daemon stays ours below a subreaper"),
        ),
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
        [sys.executable, EXIT_AUDIT, str(record), *args], ready_timeout=READY, stop_timeout=STOP_TIMEOUT
    )
    report = child.stop()
    assert report.ok, report
    assert record.read_text() == "", f"loaded on the exit path:\n{record.read_text()}"


# -- children that never join ----------------------------------------------------------

BIN = Path(sys.executable).parent
NON_MEMBER = str(PROGRAMS / "non_member.py")


def stop_and_see_it_go(child: shutdownbus.Child) -> tuple[shutdownbus.StopReport, float]:
    """``child.stop()`` (on a thread), and the `time.monotonic` when the child
    was seen gone (Linux: the moment, through a pidfd; elsewhere within 5 ms)."""
    proc = psutil.Process(child.pid)
    watch = _platform.ExitWatch()
    watch.add(child.pid, lambda: not is_running(proc))
    reports: list[shutdownbus.StopReport] = []
    thread = threading.Thread(target=lambda: reports.append(child.stop(timeout=STOP_TIMEOUT)))
    thread.start()
    try:
        end = time.monotonic() + 60
        while child.pid not in watch.exits and time.monotonic() < end:
            watch.wait(end - time.monotonic())
    finally:
        thread.join(60)
        watch.close()
    gone_at = watch.exits[child.pid]
    assert gone_at is not None
    return reports[0], gone_at


def test_a_non_member_that_ran_longer_than_the_join_grace_gets_the_polite_request_at_once() -> None:
    """Before: every non-member got min(1 s, T/2) to join after the stop
    began, so a server that had run for minutes, and never would join,
    stopped a second later than a signal would stop it."""
    child = shutdownbus.spawn([sys.executable, NON_MEMBER], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "up\n"
    child.stdout.close()
    # It must be older than the grace: wait until it is (this is the condition, not a guess).
    threading.Event().wait(max(0.0, child._link.opened_at + JOIN_GRACE - time.monotonic()))
    started = time.monotonic()
    report, gone_at = stop_and_see_it_go(child)
    assert report.ok and report.entries[0].outcome == "stopped", report
    assert gone_at - started < JOIN_GRACE / 2  # at once; before, no earlier than JOIN_GRACE


def test_a_non_member_spawned_a_moment_ago_keeps_its_join_grace() -> None:
    child = shutdownbus.spawn([sys.executable, NON_MEMBER], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "up\n"
    child.stdout.close()
    report, gone_at = stop_and_see_it_go(child)
    assert report.ok, report
    assert gone_at >= child._link.opened_at + JOIN_GRACE  # it could still have joined until then


class Run:
    """``shutdownbus run --name NAME -- CMD`` in tests/programs, once ``processes`` run under it."""

    def __init__(self, tmp_path: Path, name: str, cmd: list[str], processes: int, *run_args: str) -> None:
        self.name = name
        self.output = tmp_path / f"{name}.out"
        with open(self.output, "w") as out:
            self.proc = subprocess.Popen(
                [*SCRIPT, "run", "--name", name, *run_args, "--", *cmd], cwd=PROGRAMS, stdout=out, stderr=out
            )
        self.root = psutil.Process(self.proc.pid)
        wait_for(
            lambda: self.proc.poll() is not None or len(self.root.children(recursive=True)) >= processes,
            60,
            f"{cmd[0]} did not start {processes} processes",
        )
        assert self.proc.poll() is None, self.output.read_text()
        self.tree = self.root.children(recursive=True)

    def send_stop(self, *args: str) -> tuple[int, shutdownbus.StopReport]:
        command = [*SCRIPT, "send-stop", self.name, "--json", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.stdout, done.stderr
        return done.returncode, shutdownbus.StopReport.from_dict(json.loads(done.stdout))

    def close(self) -> None:
        leftover = [p for p in [self.root, *self.tree] if is_running(p)]
        for p in leftover:
            p.kill()
        self.proc.wait(60)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.close()


GUNICORN = [str(BIN / "gunicorn"), "-w", "4", "-b", "127.0.0.1:0", "wsgi_app:app"]
UVICORN_WORKERS = 2
UVICORN = [sys.executable, "-m", "uvicorn", "--workers", str(UVICORN_WORKERS), "--port", "0", "asgi_app:app"]
UVICORN_CHILDREN = UVICORN_WORKERS + (0 if WINDOWS else 1)  # on POSIX also multiprocessing's resource tracker


@pytest.mark.skipif(not (BIN / "gunicorn").exists(), reason="gunicorn is not installed (POSIX only)")
@pytest.mark.parametrize("timeout", [[], ["--timeout", "1"]], ids=["default", "timeout-1"])
def test_gunicorn_under_run_stops_cleanly_and_the_report_tells_the_truth(
    tmp_path: Path, runs: list[Run], timeout: list[str]
) -> None:
    runs.append(run := Run(tmp_path, "gunicorn", GUNICORN, 5))
    if timeout:
        # A server that has run longer than the join grace gets SIGTERM at once,
        # and so the whole second to stop its workers (a younger one gets it only
        # at half the budget, which a loaded machine can make too short for gunicorn).
        # From its youngest process (a worker, started after the master was
        # spawned), not from run, which may have taken long to spawn it.
        born = max(p.create_time() for p in run.tree)
        threading.Event().wait(max(0.0, born + JOIN_GRACE - time.time()))
    status, report = run.send_stop(*timeout)
    assert status == 0 and report.ok, f"{report}\n{run.output.read_text()}"
    assert run.proc.wait(60) == 0
    root, master, *workers = report.entries
    # The root's row carries run's own exit status; nothing there joined the bus.
    assert (root.pid, root.outcome, root.returncode, root.member) == (run.proc.pid, "stopped", 0, True), report
    assert (master.name, master.outcome, master.returncode, master.member) == ("gunicorn", "stopped", 0, False)
    assert len(workers) == 4, report
    for worker in workers:
        assert (worker.name, worker.outcome, worker.member) == ("gunicorn", "stopped", False), report
        # Each worker's own exit time: before its master's, which waits for them.
        assert worker.seconds is not None and master.seconds is not None, report
        assert worker.seconds <= master.seconds, report


def wait_until_every_uvicorn_worker_serves(output: Path) -> None:
    """Wait until each worker has answered a request: its start-up is over.

    A worker that is still starting when the stop comes is a different test:
    on Windows, for one, it may still run a child of its own (without _wmi,
    tools/windows/setup.sh, the platform module runs ``cmd /c ver`` just
    before the worker listens).  The port comes from uvicorn's own log line.
    """
    port: list[int] = []

    def port_logged() -> bool:
        found = re.search(r"Uvicorn running on http://[^:]+:(\d+)", output.read_text(errors="replace"))
        port.extend([int(found.group(1))] if found else [])
        return bool(found)

    wait_for(port_logged, 60, "uvicorn logged no port")
    answered: set[str] = set()

    def both_answered() -> bool:
        # A new connection each time: the workers take turns at the shared socket.
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}/", timeout=5) as response:
                answered.add(response.read().decode())
        return len(answered) == UVICORN_WORKERS

    wait_for(both_answered, 60, f"not all {UVICORN_WORKERS} uvicorn workers answered a request")


@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="uvicorn is not installed")
@pytest.mark.parametrize("with_run", [True, False], ids=["run", "spawn"])
def test_uvicorn_with_workers_stops_cleanly(tmp_path: Path, runs: list[Run], with_run: bool) -> None:
    if with_run:
        runs.append(run := Run(tmp_path, "uvicorn", UVICORN, 1 + UVICORN_CHILDREN))
        wait_until_every_uvicorn_worker_serves(run.output)
        status, report = run.send_stop()
        # run exits with uvicorn's status: 0 after its SIGTERM (POSIX).  On
        # Windows the polite request is TerminateProcess (exit code 1), unless
        # uvicorn saw its workers go first and ended on its own (0).
        statuses = {0, _platform.polite_returncode()} if WINDOWS else {0}
        assert status == 0 and run.proc.wait(60) in statuses
        entries = report.entries[1:]
    else:
        output = tmp_path / "uvicorn.out"
        with open(output, "w") as out:
            child = shutdownbus.spawn(UVICORN, cwd=PROGRAMS, stderr=out, stop_timeout=STOP_TIMEOUT)
        with child:  # stopped if the wait below fails
            wait_until_every_uvicorn_worker_serves(output)
            report = child.stop()
        entries = list(report.entries)
    assert report.ok, report
    names = sorted(e.name for e in entries)
    tracker = [] if WINDOWS else ["multiprocessing.resource_tracker"]  # POSIX only
    assert names == [*tracker, "multiprocessing.spawn", "multiprocessing.spawn", "uvicorn"]
    assert all(e.outcome == "stopped" and not e.member for e in entries), report


# -- shells, daemons and Ctrl-C under run -------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_ctrl_c_on_run_exits_with_its_commands_status_every_time(tmp_path: Path) -> None:
    """Before: 7 times in 15, the status was lost (exit 0): the KeyboardInterrupt
    landed in Popen.wait between the command's exit and storing its status."""
    for i in range(10):
        proc = subprocess.Popen([*SCRIPT, "run", "--name", f"x{i}", "--", "sleep", "100"], start_new_session=True)
        wait_for(lambda proc=proc: commands_of(proc.pid) != [], 60, "run did not start sleep")  # type: ignore[misc]
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends its foreground group
        assert proc.wait(60) == 128 + signal.SIGINT


@pytest.mark.skipif(not LINUX, reason="the daemon that left the shell's session is run's only as a subreaper (Linux)")
def test_ctrl_c_on_run_of_a_shell_with_jobs_leaves_nothing(tmp_path: Path) -> None:
    """A non-interactive shell's background jobs ignore SIGINT and the daemon
    is in a session of its own: Ctrl-C ends the shell only.  When run ends,
    nothing of its tree may be left running."""
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.Popen(
        [*SCRIPT, "run", "--name", "jobs", "--", str(PROGRAMS / "jobs.sh")],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    daemon = psutil.Process(int(proc.stdout.readline()))
    assert proc.stdout.readline() == "up\n"
    tree = [*psutil.Process(proc.pid).children(recursive=True), daemon]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 128 + signal.SIGINT
    proc.stdout.close()
    left = [p for p in tree if is_running(p)]
    assert not left, f"left running: {left}"


@pytest.mark.skipif(not LINUX, reason="a double-forked daemon stays in the tree below a subreaper (Linux)")
def test_a_daemons_intermediate_process_is_reported_exited_and_reaped() -> None:
    """The intermediate of a double fork exited long before the stop, and its
    parent never waited for it: before, it was missing from the report and
    left a zombie of ours; under run it was reported 'stopped'."""
    child = shutdownbus.spawn(
        [sys.executable, str(PROGRAMS / "daemon.py"), "300", "--linger"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    daemon = int(child.stdout.readline())
    child.stdout.close()
    [intermediate] = [p for p in psutil.Process(child.pid).children() if p.pid != daemon]
    wait_for(lambda: intermediate.status() == psutil.STATUS_ZOMBIE, 60, "the intermediate did not exit")
    report = child.stop(timeout=STOP_TIMEOUT)
    assert report.ok, report
    entry = report.entry(intermediate.pid)
    assert entry is not None and (entry.outcome, entry.returncode) == ("exited", 0), report
    assert report.entry(daemon) is not None, report
    for pid in (intermediate.pid, daemon):  # reaped: not even a zombie is left of them
        assert not psutil.pid_exists(pid), f"pid {pid} is left: {psutil.Process(pid)}"


@pytest.mark.skipif(not LINUX, reason="tree tells members by their bus thread's name in /proc (Linux)")
def test_tree_and_the_report_agree_on_who_joined(tmp_path: Path, runs: list[Run]) -> None:
    """Before, tree said MEMBER yes for every process that inherited the
    endpoint (gunicorn, its workers, sleep), where the report said no."""
    cmd = [sys.executable, MEMBER, "--log", str(tmp_path / "log"), "--depth", "1", "--grandchild", "plain"]
    runs.append(run := Run(tmp_path, "mixed", cmd, 3))
    shown = subprocess.run([*SCRIPT, "tree", "mixed"], capture_output=True, text=True, timeout=60, check=True)
    header, *rows = shown.stdout.splitlines()
    column = header.index("MEMBER")  # names may hold spaces: read the column where the header puts it
    members = {int(row.split()[0]): row[column:].split()[0] for row in rows}
    status, report = run.send_stop()
    assert status == 0, report
    for entry in report.entries[1:]:
        assert members.get(entry.pid) in ("yes" if entry.member else "no", None), (shown.stdout, report)
    assert sorted(members.values()) == ["no", "root", "yes", "yes"], shown.stdout
