"""The admin command line, end to end through the real console script."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import KILLED, LINUX, MEMBER, SCRIPT, WINDOWS, alive, log_lines, sleep_cmd

from shutdownbus import _platform, _registry, _zmq


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the command line; on a timeout, fail with the stacks of its threads."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen([*SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if hasattr(signal, "SIGABRT") and not WINDOWS:
            proc.send_signal(signal.SIGABRT)  # the fault handler prints every thread's stack
        else:
            proc.kill()  # Windows sends a process no signal it could handle
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"shutdownbus {' '.join(args)} hung for {timeout} s; its threads:\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def readline(stream: object, timeout: float) -> str:
    """The next line of a pipe, read by a thread of its own (Windows cannot
    select() on pipes); the thread ends when the pipe closes."""
    line: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: line.put(stream.readline()), daemon=True).start()  # type: ignore[attr-defined]
    try:
        return line.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no line within {timeout} s") from None


class Run:
    """``shutdownbus run`` of tests/programs/member.py, started and reaped."""

    def __init__(self, log: Path, *run_args: str, member_args: tuple[str, ...] = ()) -> None:
        cmd = [*SCRIPT, "run", *run_args, "--", sys.executable, MEMBER, "--log", str(log), "--announce", *member_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = readline(self.proc.stdout, 60)
        assert line.startswith("ready "), line + self.proc.stderr.read()  # type: ignore[union-attr]
        self.member_pid = int(line.split()[1])

    def finish(self, timeout: float = 60) -> int:
        _, err = self.proc.communicate(timeout=timeout)
        self.stderr = err
        return self.proc.returncode


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        for stream in (run.proc.stdout, run.proc.stderr):
            if stream is not None:
                stream.close()


def test_run_and_send_stop_by_name(tmp_path: Path, runs: list[Run]) -> None:
    log = tmp_path / "log"
    runs.append(run := Run(log, "--name", "web", member_args=("--depth", "1", "--fanout", "2")))
    done = cli("send-stop", "web")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["PID", "NAME", "OUTCOME", "RC", "SECONDS", "MEMBER", "ASKED"]
    assert len(lines) == 1 + 4 + 1  # header, run + member + 2 children, summary
    assert all(line.split()[2] == "stopped" for line in lines[1:-1])
    assert "ok" in lines[-1]
    assert run.finish() == 0
    assert "m cleanup" in log_lines(log)
    assert cli("list").stdout.splitlines()[1:] == []


def test_send_stop_by_pid_with_json(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "api"))
    done = cli("send-stop", "--pid", str(run.proc.pid), "--json", "--reason", "deploy")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["reason"] == "deploy"
    assert [e["pid"] for e in report["entries"]] == [run.proc.pid, run.member_pid]
    assert report["entries"][1]["returncode"] == 0
    assert "m got stop deploy" in log_lines(tmp_path / "log")
    assert run.finish() == 0


def test_list_and_tree(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "svc", member_args=("--depth", "1")))
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PID", "UPTIME", "PROCS", "STOP", "COMMAND"]
    # It may join; if not, its polite request (SIGTERM; Windows: TerminateProcess) after the join grace.
    policy = f"member/{_platform.default_request()}"
    assert row.split()[:2] == ["svc", str(run.proc.pid)] and row.split()[3:5] == ["3", policy]
    (entry,) = json.loads(cli("list", "--json").stdout)
    assert entry["name"] == "svc" and entry["processes"] == 3 and "run --name svc" in entry["command"]
    assert entry["stop_policy"] == policy
    tree = cli("tree", "svc")
    assert tree.returncode == 0, tree.stderr
    rows = [line.split() for line in tree.stdout.splitlines()]
    assert rows[0] == ["PID", "NAME", "MEMBER", "STATE", "COMMAND"]
    assert [r[0] for r in rows[1:]] == [str(run.proc.pid), str(run.member_pid), rows[3][0]]
    joined = "yes" if LINUX else "?"  # the bus thread's name tells (Linux); elsewhere it cannot be told
    assert [r[2] for r in rows[1:]] == ["root", joined, joined]
    assert cli("send-stop", "svc").returncode == 0
    assert run.finish() == 0


#: Modules that would cost a command line start-up time it has no use for
#: (docs/performance.md, "Start-up"): the library's own start-up rules.
SLOW_AND_UNUSED = ("dataclasses", "shutdownbus._member", "shutdownbus._stop", "shutdownbus._bus")
#: ``list`` and ``--help`` also do without the bus's pyzmq and msgpack (and
#: typing and inspect, which come with pyzmq on some systems) and the report;
#: and without psutil (with socket) where the kernel tells a process's
#: identity (Linux).
SLOW_AND_UNUSED_BY_LIST = (
    *SLOW_AND_UNUSED,
    *("typing", "inspect", "zmq", "shutdownbus._zmq", "msgpack", "shutdownbus._report"),
    *(("psutil", "socket") if LINUX else ()),
)


def loaded(args: tuple[str, ...], candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` the command line loaded, checked as it exits."""
    code = (
        "import atexit, sys\n"
        f"found = lambda: [m for m in {candidates!r} if m in sys.modules]\n"
        "atexit.register(lambda: print('loaded:', *found(), file=sys.stderr))\n"
        "from shutdownbus._cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("loaded:")]
    return line.split()[1:]


def test_command_lines_load_only_what_they_use(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "svc"))
    assert loaded(("--help",), SLOW_AND_UNUSED_BY_LIST) == []
    assert loaded(("list",), SLOW_AND_UNUSED_BY_LIST) == []
    # pyzmq: our binding reaches the libzmq it bundles without its 20 ms of imports.
    pyzmq = ("zmq",) if _zmq.BINDING != "pyzmq" else ()
    assert loaded(("send-stop", "svc"), (*SLOW_AND_UNUSED, *pyzmq)) == []
    assert run.finish() == 0


@pytest.mark.skipif(WINDOWS, reason="XDG_RUNTIME_DIR is a POSIX place")
def test_the_registrys_last_resort_is_not_worked_out_when_a_better_place_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last resort is the temp directory, and tempfile's import is some
    # milliseconds of every command line's start-up (send-stop's, list's).
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.delenv("SHUTDOWNBUS_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the next place, should that one be refused
    assert loaded(("list",), ("tempfile",)) == []
    assert (runtime / "shutdownbus").is_dir()


@pytest.mark.skipif(WINDOWS, reason="a write to a pipe nobody reads fails with EPIPE on POSIX (EINVAL on Windows)")
def test_a_reader_that_went_away_gets_no_traceback() -> None:
    """``shutdownbus list | head -0``: the status a shell shows for SIGPIPE, and nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*SCRIPT, "list"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_escalation_exits_1_and_run_passes_the_status_on(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "stubborn", member_args=("--on-stop", "stubborn")))
    done = cli("send-stop", "stubborn", "--timeout", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    # Windows: the polite request is already TerminateProcess, which nothing ignores.
    assert ("terminated" if WINDOWS else "killed") in done.stdout, done.stdout
    status = run.finish()  # Windows: TerminateProcess by run's Popen (1) or by the admin, through psutil
    assert status in ((1, KILLED) if WINDOWS else (128 + signal.SIGKILL, 128 + signal.SIGTERM)), status
    assert alive([run.member_pid]) == []


def test_no_wait_returns_once_the_stop_is_sent(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "quick"))
    done = cli("send-stop", "quick", "--no-wait")
    assert done.returncode == 0 and "stop sent" in done.stdout, done.stderr
    assert run.finish() == 0


def test_run_exits_with_the_commands_status() -> None:
    cases = [("raise SystemExit(3)", 3)]
    if not WINDOWS:  # a process dies of a signal: 128 + N, as a shell says it
        cases.append(("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 143))
    for code, status in cases:
        done = subprocess.run([*SCRIPT, "run", "--", sys.executable, "-c", code], timeout=60, check=False)
        assert done.returncode == status


@pytest.mark.skipif(WINDOWS, reason="Windows delivers no SIGTERM: a service manager there ends a process outright")
def test_run_stops_its_tree_on_sigterm(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "term"))
    run.proc.send_signal(signal.SIGTERM)  # as a service manager would
    assert run.finish() == 0
    assert "m got stop SIGTERM" in log_lines(tmp_path / "log")


def test_ready_timeout_failure_is_one_clear_line() -> None:
    done = subprocess.run(
        [*SCRIPT, "run", "--ready-timeout", "0.5", "--", *sleep_cmd(100)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("shutdownbus: child 'sleep.py'") and "ready" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_target_stale_and_corrupt_entries(runtime_dir: str) -> None:
    done = cli("send-stop", "web")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "shutdownbus: no running tree named 'web'; see 'shutdownbus list'",
    )
    registry = Path(_registry.directory())
    registry.mkdir(mode=0o700, exist_ok=True)
    stale = {"format": 1, "name": "old", "pid": 2**22 - 1, "started": 1.0, "endpoint": "ipc:///nowhere",
             "secret": "00" * 32, "argv": ["x"]}  # fmt: skip
    (registry / "old.json").write_text(json.dumps(stale))
    (registry / "bad.json").write_text('{"format": 1, "name": "bad", "pid"')
    listed = cli("list")
    assert listed.returncode == 0
    assert "the registry entry of 'bad' is broken (not JSON)" in listed.stderr and "Traceback" not in listed.stderr
    assert not (registry / "old.json").exists()  # the stale entry was pruned
    done = cli("send-stop", "old")
    assert done.returncode == 2 and "no running tree named" in done.stderr
    done = cli("send-stop", "bad")
    assert done.returncode == 2 and f"is broken (not JSON): remove {registry / 'bad.json'}" in done.stderr


@pytest.mark.skipif(WINDOWS, reason="mode bits: on Windows the registry's privacy is its NTFS ACL (docs/security.md)")
def test_unsafe_registry_directory_is_refused(runtime_dir: str) -> None:
    registry = Path(_registry.directory())
    os.chmod(registry, 0o755)
    for args in (("list",), ("send-stop", "web")):
        done = cli(*args)
        assert done.returncode == 2
        assert "open to other users" in done.stderr and "chmod 700" in done.stderr


def test_wrong_admin_credential_is_refused(tmp_path: Path, runtime_dir: str, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "guarded"))
    path = Path(_registry.directory()) / "guarded.json"
    real = path.read_text()
    entry = json.loads(real)
    entry["secret"] = os.urandom(32).hex()
    path.write_text(json.dumps(entry))
    done = cli("send-stop", "guarded")
    assert done.returncode == 2
    assert "authentication refused" in done.stderr
    assert run.proc.poll() is None and alive([run.member_pid]) == [run.member_pid]
    path.write_text(real)  # its real stop still works
    assert cli("send-stop", "guarded").returncode == 0
    assert run.finish() == 0


def test_usage_errors_and_help() -> None:
    assert cli("send-stop").returncode == 2
    assert cli("run").returncode == 2
    assert cli("send-stop", "x", "--timeout", "-1").returncode == 2
    for command in ("run", "send-stop", "list", "tree"):
        helped = cli(command, "--help")
        assert helped.returncode == 0 and "examples:" in helped.stdout
    module = subprocess.run([sys.executable, "-m", "shutdownbus", "list"], capture_output=True, text=True, check=False)
    assert module.returncode == 0


def test_a_second_live_registration_of_a_name_is_refused(tmp_path: Path, runs: list[Run]) -> None:
    runs.append(run := Run(tmp_path / "log", "--name", "dup"))
    code = "import shutdownbus\ntry:\n    shutdownbus.register('dup')\n"
    code += "except shutdownbus.RegistryError as e:\n    print(e)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "already running" in done.stdout, done.stdout + done.stderr
    clash = cli("run", "--name", "dup", "--", sys.executable, "-c", "pass")
    assert clash.returncode == 2 and "already running" in clash.stderr
    assert cli("send-stop", "dup").returncode == 0
    assert run.finish() == 0
    # Once it is gone, the name is free again.
    again = subprocess.run([*SCRIPT, "run", "--name", "dup", "--", sys.executable, "-c", "pass"], timeout=60)
    assert again.returncode == 0
