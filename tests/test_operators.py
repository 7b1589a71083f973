"""What operators of supervisors and containers expect (issue 24): messages
that say what to do, exit statuses that orchestrators read right, a log of
what a stop did, and a long stop they can watch."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import LINUX, PROGRAMS, SCRIPT, WINDOWS, reaped
from test_ctrl_c import read_until

import shutdownbus
from shutdownbus import _cli, _deadlines

if not WINDOWS:
    import fcntl
    import pty
    import struct
    import termios


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command line, run to its end (these never start a tree)."""
    return subprocess.run([*SCRIPT, *args], capture_output=True, text=True, timeout=timeout, check=False)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The error of a command line that failed: exactly one line, ``shutdownbus: ...``."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("shutdownbus: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# -- 4. messages that say what to do ------------------------------------------------


@pytest.mark.parametrize(
    "args", [("send-stop", "web", "--timeout"), ("run", "--stop-timeout"), ("run", "--ready-timeout")]
)
def test_a_timeout_too_long_says_the_limit(args: tuple[str, ...]) -> None:
    """Before: "'1e12' is not a positive number of seconds"; it is positive, and too long."""
    done = cli(*args, "1e12", *(["--", "true"] if args[0] == "run" else []))
    assert done.returncode == 2
    line = one_line(done)
    assert "'1e12' seconds is too long: the limit is 604800 seconds (a week)" in line, line
    assert f"see 'shutdownbus {args[0]} --help'" in line, line


def test_the_limit_is_the_librarys() -> None:
    assert _cli.MAX_SECONDS == _deadlines.MAX_BUDGET
    assert cli("send-stop", "nobody", "--timeout", "604800").stderr.startswith("shutdownbus: no running tree")


@pytest.mark.parametrize(
    ("value", "says"),
    [("abc", "is not a number"), ("nan", "is not a number"), ("0", "is not a positive number")],
)
def test_a_bad_timeout_says_what_a_good_one_looks_like(value: str, says: str) -> None:
    line = one_line(done := cli("send-stop", "web", "--timeout", value))
    assert done.returncode == 2
    assert f"{value!r} {says} of seconds (examples: 5, 0.5, 90)" in line, line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("send-stop",), "send-stop needs a NAME or --pid N; see 'shutdownbus send-stop --help'"),
        (("send-stop", "web", "--pid", "1"), "send-stop needs a NAME or --pid N, not both; see"),
        (("frob",), "invalid choice: 'frob'"),
        (("run",), "run needs a command: shutdownbus run [options] -- CMD [ARG...]; see 'shutdownbus run --help'"),
        (("run", "--"), "run needs a command"),
    ],
)
def test_usage_errors_are_one_line_that_says_where_to_look(args: tuple[str, ...], says: str) -> None:
    """Before: argparse's usage (several lines), then ``shutdownbus send-stop: error: ...``."""
    done = cli(*args)
    assert done.returncode == 2
    line = one_line(done)
    assert says in line and "--help'" in line, line


def test_run_refuses_an_empty_name() -> None:
    """Before: ``--name ''`` was taken for the default name, silently."""
    done = cli("run", "--name", "", "--", sys.executable, "-c", "print('ran')")
    assert done.returncode == 2 and done.stdout == ""
    assert "invalid name ''" in one_line(done)


def test_run_of_a_program_that_is_not_there(tmp_path: Path) -> None:
    """127, as a shell says "not found", and what to check."""
    done = cli("run", "--", "no-such-program-shutdownbus")
    assert done.returncode == 127
    assert "no such program: give its path, or check that it is on PATH" in one_line(done)
    done = cli("run", "--", str(tmp_path / "missing"))
    assert done.returncode == 127
    assert "no such file" in one_line(done)


@pytest.mark.skipif(WINDOWS, reason="POSIX permission bits")
def test_run_of_a_file_that_cannot_run(tmp_path: Path) -> None:
    """126, as a shell (and Docker) says "found, but cannot be run", and what to check."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chmod(script, stat.S_IRUSR | stat.S_IWUSR)
    done = cli("run", "--", str(script))
    assert done.returncode == 126
    assert "permission denied: is it executable (chmod +x)" in one_line(done)


# -- 2. exit statuses that orchestrators read right ---------------------------------

#: A program that does not join the bus and, asked to go with SIGTERM, exits
#: 143 (as a JVM does: 128 + SIGTERM, by its own exit, not by dying of it).
EXITS_143_ON_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)
#: A program that ignores SIGTERM: only escalation's SIGKILL ends it.
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)


def start_run(*run_args: str, code: str) -> subprocess.Popen[str]:
    """``shutdownbus run RUN_ARGS -- python -c CODE``, once CODE printed ``up``."""
    cmd = [*SCRIPT, "run", *run_args, "--", sys.executable, "-c", code]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None
    line = run.stdout.readline()  # the pipe closes if run fails, so this cannot hang
    assert line == "up\n", line + (run.stderr.read() if run.stderr else "")
    return run


NO_SIGTERM_HANDLER = pytest.mark.skipif(
    WINDOWS, reason="Windows' polite request is TerminateProcess: no program can handle it and exit 143"
)


@NO_SIGTERM_HANDLER
@pytest.mark.parametrize(("flags", "status"), [((), 143), (("--clean-exit", "143"), 0), (("--clean-exit", "TERM"), 0)])
def test_clean_exit_maps_the_commands_status_after_send_stop(flags: tuple[str, ...], status: int) -> None:
    """run exits 0, and the report says ``stopped`` (send-stop exits 0), where without
    the flag the command's 143 is a failure for both."""
    with reaped(start_run("--name", "jvm", *flags, code=EXITS_143_ON_SIGTERM)) as run:
        stopped = cli("send-stop", "jvm", "--json")
        _, err = run.communicate(timeout=60)
    assert run.returncode == status, err
    command = json.loads(stopped.stdout)["entries"][1]
    assert (command["outcome"], command["returncode"]) == ("stopped" if status == 0 else "failed", 143), command
    assert stopped.returncode == (0 if status == 0 else 1), stopped.stdout + stopped.stderr


@pytest.mark.skipif(WINDOWS, reason="Windows delivers no SIGTERM to run")
def test_clean_exit_after_sigterm_to_run_and_a_command_that_dies_of_it() -> None:
    """A plain program dies of the polite SIGTERM: run says 143, and 0 with ``--clean-exit TERM``."""
    for flags, status in (((), 143), (("--clean-exit", "SIGTERM"), 0)):
        code = "import time; print('up', flush=True); time.sleep(600)"
        with reaped(start_run("--name", "plain", *flags, code=code)) as run:
            run.send_signal(signal.SIGTERM)
            _, err = run.communicate(timeout=60)
        assert run.returncode == status, err


@pytest.mark.skipif(not LINUX, reason="reads run's signal dispositions in /proc")
def test_run_catches_sigterm_before_its_command_starts() -> None:
    """A SIGTERM the moment the command is up stops the tree; it never kills
    run.  Before, run installed its handler only after the command started
    (and its reaper thread too): under load a SIGTERM sent once the command
    printed ``up`` found the default disposition, and run died of it (-15),
    as its command sees here: SIGTERM not among run's caught signals."""
    command = ["sh", "-c", "grep SigCgt /proc/$PPID/status"]  # at once: a shell starts in a millisecond
    done = subprocess.run([*SCRIPT, "run", "--", *command], capture_output=True, text=True, timeout=60)
    caught = int(done.stdout.split()[1], 16)
    assert caught & (1 << (signal.SIGTERM - 1)), done.stdout + done.stderr


def test_clean_exit_does_not_hide_a_crash_with_no_stop() -> None:
    """The command exits 143 by itself, with no stop asked: that is its failure, passed on."""
    code = "import sys; sys.exit(143)"
    done = subprocess.run([*SCRIPT, "run", "--clean-exit", "143", "--", sys.executable, "-c", code], timeout=60)
    assert done.returncode == 143


@pytest.mark.skipif(WINDOWS, reason="a POSIX program that ignores SIGTERM (Windows' polite request cannot be ignored)")
def test_clean_exit_does_not_hide_escalation() -> None:
    flags = ("--name", "deaf", "--stop-timeout", "1", "--clean-exit", "KILL", "--clean-exit", "143")
    with reaped(start_run(*flags, code=IGNORES_SIGTERM)) as run:
        stopped = cli("send-stop", "deaf")
        _, err = run.communicate(timeout=60)
    assert stopped.returncode == 1 and "killed" in stopped.stdout, stopped.stdout + stopped.stderr
    assert run.returncode == 128 + signal.SIGKILL, err


@pytest.mark.parametrize(
    ("value", "says"),
    [("256", "'256' is not an exit status: statuses are 0 to 255"), ("NOPE", "'NOPE' is neither an exit status")],
)
def test_a_bad_clean_exit_says_what_a_good_one_looks_like(value: str, says: str) -> None:
    done = cli("run", "--clean-exit", value, "--", "true")
    assert done.returncode == 2
    assert says in one_line(done)


@NO_SIGTERM_HANDLER
def test_spawn_clean_exits_in_the_python_api() -> None:
    """The same from Python: ``spawn(..., clean_exits=(143,))``."""
    for clean, outcome in (((), "failed"), ((143,), "stopped")):
        cmd = [sys.executable, "-c", EXITS_143_ON_SIGTERM]
        with reaped(shutdownbus.spawn(cmd, clean_exits=clean, stdout=subprocess.PIPE, text=True)) as child:
            assert child.stdout is not None and child.stdout.readline() == "up\n"
            report = child.stop(timeout=30)
        assert [(e.outcome, e.returncode) for e in report.entries] == [(outcome, 143)], report


# -- 5. a log of what happened ----------------------------------------------------------


def stop_log(stderr: str, pid: int) -> list[str]:
    """The stop log's messages that process ``pid`` wrote (the program's format:
    ``PID LOGGER LEVEL MESSAGE``), in order."""
    lines = []
    for line in stderr.splitlines():
        fields = line.split(" ", 3)
        if len(fields) == 4 and fields[0] == str(pid):
            assert fields[1:3] == ["shutdownbus.stop", "INFO"], line
            lines.append(fields[3])
    return lines


def running(pid: int) -> str | None:
    """``PID NAME STATUS`` of the process ``pid`` if it still runs (a zombie does not)."""
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        if (status := proc.status()) != psutil.STATUS_ZOMBIE:
            return f"{pid} {proc.name()} {status}"
    return None


def test_the_stop_log_tells_which_process_held_the_stop_up(tmp_path: Path) -> None:
    """boss (logging at INFO) stops worker, which goes at once, and slowpoke,
    whose cleanup takes 1.5 s: boss's log says so, in order."""
    cmd = [*SCRIPT, "run", "--name", "logs", "--stop-timeout", "30", "--"]
    cmd += [sys.executable, str(PROGRAMS / "logging_member.py"), "tree", str(tmp_path / "log")]
    with reaped(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as run:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert line.startswith("ready "), line + (run.stderr.read() if run.stderr else "")
        worker, slow = (int(pid) for pid in line.split()[1:])
        boss = psutil.Process(worker).ppid()
        stopped = cli("send-stop", "logs")
        try:
            _, err = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Seen once under wine, never reproduced (25 runs beside a full
            # suite): say what send-stop said and what still ran.
            still = [seen for pid in (run.pid, boss, worker, slow) if (seen := running(pid))]
            pytest.fail(f"run still runs 60 s after send-stop: {stopped}; running: {still}")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    children = rf"pid ({worker}|{slow}) \((worker|slowpoke)\)"
    expected = [
        r"boss received stop 'stop': 30 s before its parent escalates",
        rf"stop 'stop' sent to 2 child\(ren\): {children}, {children}; escalation in [\d.]+ s",
        rf"child pid {worker} \(worker\) exited with status 0 after 0\.\d+ s",
        rf"child pid {slow} \(slowpoke\) exited with status 0 after (1\.[5-9]|[2-9]\.)\d* s",  # it held the stop up
        *[rf"stop of {children} done in [\d.]+ s: stopped, 0 process\(es\) below it, ok"] * 2,
        r"boss done with stop 'stop' after [\d.]+ s; exiting",
    ]
    lines = stop_log(err, boss)
    assert len(lines) == len(expected), err
    for pattern, line in zip(expected, lines, strict=True):
        assert re.fullmatch(pattern, line), (pattern, err)
    # Off by default: the children (and run) load no logging, and print nothing of it.
    assert [line for line in err.splitlines() if not line.startswith(f"{boss} ")] == [], err


@pytest.mark.skipif(WINDOWS, reason="a program that ignores the polite request (Windows' cannot be ignored)")
def test_the_stop_log_names_each_escalation() -> None:
    """boss stops deaf, which ignores SIGTERM, with a 1 s timeout: which
    request went to whom, and deaf's end."""
    cmd = [*SCRIPT, "run", "--", sys.executable, str(PROGRAMS / "logging_member.py"), "escalate"]
    with reaped(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as run:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert line.startswith("ready "), line + (run.stderr.read() if run.stderr else "")
        deaf = int(line.split()[1])
        boss = psutil.Process(deaf).ppid()
        _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    expected = [
        rf"stop 'stop' sent to 1 child\(ren\): pid {deaf} \(deaf\); escalation in (1|0\.9\d*) s",
        rf"deadline passed, escalating: pid {deaf} \(deaf\)",
        rf"escalation: terminate \(SIGTERM\) sent to pid {deaf} \(deaf\)",
        rf"escalation: kill \(SIGKILL\) sent to pid {deaf} \(deaf\)",
        rf"child pid {deaf} \(deaf\) exited with status 137 \(SIGKILL\) after [\d.]+ s",
        rf"stop of pid {deaf} \(deaf\) done in [\d.]+ s: killed, 0 process\(es\) below it, NOT ok",
    ]
    lines = stop_log(err, boss)
    assert len(lines) == len(expected), err
    for pattern, line in zip(expected, lines, strict=True):
        assert re.fullmatch(pattern, line), (pattern, err)


def test_the_stop_log_is_off_unless_logging_shows_info() -> None:
    """A member that loaded logging but did not configure it (WARNING, the
    default) prints nothing of its stop."""
    code = (
        "import logging, sys, time, shutdownbus\n"
        "shutdownbus.join()\n"
        "child = shutdownbus.spawn([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('up', flush=True)\n"
        "time.sleep(600)\n"
    )
    with reaped(start_run("--name", "quiet", code=code)) as run:
        stopped = cli("send-stop", "quiet")
        _, err = run.communicate(timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert (run.returncode, err) == (0, "")


# -- 3. a long stop you can watch --------------------------------------------------------

SLOW_CLEANUP = str(PROGRAMS / "slow_cleanup.py")
#: A progress line, redrawn in place: a carriage return, the line, erase to the end.
PROGRESS = (
    rb"\rstopping (?P<name>[\w.-]+) \((?P<times>[^)]*)\): (?P<left>\d+) of (?P<total>\d+) left"
    rb"(?P<named>[^\r\x1b]*)\x1b\[K"
)


@contextlib.contextmanager
def terminal(argv: list[str], columns: int = 200) -> Iterator[tuple[int, int]]:
    """Run ``argv`` on a new terminal (pty) of ``columns``; yields (pid, the
    terminal's master fd); kills and reaps it on the way out."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        yield pid, fd
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        os.close(fd)


def read_progress(fd: int, timeout: float = 60) -> tuple[bytes, re.Match[bytes]]:
    """Read the terminal until a whole progress line came; what was read, and the line."""
    out = b""
    while (found := re.search(PROGRESS, out)) is None:
        out += read_until(fd, b"\x1b[K", timeout)
    return out, found


def exit_status(pid: int, fd: int) -> tuple[bytes, int]:
    """The rest of the terminal's output, and the exit status of ``pid``."""
    rest = read_until(fd, None, 60)
    _, status = os.waitpid(pid, 0)
    return rest, os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(WINDOWS, reason="a POSIX terminal (pty)")
def test_send_stop_on_a_terminal_shows_what_the_stop_waits_for(tmp_path: Path) -> None:
    """The line names the member that sleeps in its cleanup, is redrawn in
    place while it does, and is erased before the report."""
    go = tmp_path / "go"
    cmd = [*SCRIPT, "run", "--name", "slow", "--stop-timeout", "60", "--"]
    cmd += [sys.executable, SLOW_CLEANUP, "--until", str(go)]
    with reaped(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)) as run:
        assert run.stdout is not None
        member = int(run.stdout.readline().split()[1])
        with terminal([*SCRIPT, "send-stop", "slow"]) as (pid, fd):
            out, first = read_progress(fd)
            assert run.stdout.readline() == "cleaning up\n"
            more, second = read_progress(fd)  # redrawn: a second line, in place
            go.touch()  # the cleanup ends
            rest, status = exit_status(pid, fd)
        assert run.wait(60) == 0
    for line in (first, second):
        assert line["name"] == b"slow" and (line["left"], line["total"]) == (b"2", b"2"), out + more
        # The slowest first: the member (deeper), then run, the root.
        assert line["named"] == f": slow_cleanup.py[{member}], slow[{run.pid}]".encode(), out + more
        assert re.fullmatch(rb"\d+s, escalation in (\d+min )?\d+s", line["times"]), line["times"]
    assert b"\n" not in out + more  # nothing but the line, redrawn
    assert status == 0
    assert rest.startswith(b"\r\x1b[KPID"), rest  # erased, then the report
    assert b"stopping" not in rest


@pytest.mark.skipif(WINDOWS, reason="a POSIX terminal (pty)")
@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_runs_own_stop_on_a_terminal_shows_what_it_waits_for(tmp_path: Path, how: str) -> None:
    """run's stop after SIGTERM (with a deadline) and its wait after Ctrl-C
    (the command's own business: no deadline) show the same line."""
    go = tmp_path / "go"
    argv = [*SCRIPT, "run", "--name", "slow", "--stop-timeout", "60", "--"]
    argv += [sys.executable, SLOW_CLEANUP, "--until", str(go)]
    with terminal(argv) as (pid, fd):
        member = int(read_until(fd, b"\n", 60).split()[-1])
        if how == "SIGTERM":
            os.kill(pid, signal.SIGTERM)
        else:
            os.write(fd, b"\x03")  # what the terminal turns into SIGINT for its foreground group
        out, line = read_progress(fd)
        assert b"cleaning up" in out
        go.touch()
        rest, status = exit_status(pid, fd)
    assert status == 0
    assert line["name"] == b"slow" and (line["left"], line["total"]) == (b"1", b"1"), out
    assert line["named"] == f": slowpoke[{member}]".encode(), out
    times = rb"\d+s, escalation in (\d+min )?\d+s" if how == "SIGTERM" else rb"\d+s"
    assert re.fullmatch(times, line["times"]), line["times"]
    assert b"\r\x1b[K" in rest and b"stopping" not in rest.rpartition(b"\r\x1b[K")[2], rest


def test_a_long_stop_prints_no_progress_to_a_pipe(tmp_path: Path) -> None:
    """Not a terminal: nothing extra on stderr, however long the stop."""
    cmd = [*SCRIPT, "run", "--name", "slow", "--stop-timeout", "60", "--"]
    cmd += [sys.executable, SLOW_CLEANUP, "--seconds", "2"]
    with reaped(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as run:
        assert run.stdout is not None
        run.stdout.readline()
        stopped = cli("send-stop", "slow")
        _, err = run.communicate(timeout=60)
    assert (stopped.returncode, stopped.stderr) == (0, "")
    member = stopped.stdout.splitlines()[2].split()
    assert float(member[4]) >= 2.0, stopped.stdout  # long enough that a terminal would have shown the line
    assert (run.returncode, err) == (0, "")


def test_child_stop_hands_its_progress_to_a_callback(tmp_path: Path) -> None:
    """The same from Python, for a harness: ``Child.stop(progress=...)``."""
    go = tmp_path / "go"
    seen: list[shutdownbus.StopProgress] = []

    def progress(p: shutdownbus.StopProgress) -> None:
        seen.append(p)
        if len(seen) == 3:
            go.touch()  # the cleanup ends once we have seen the stop wait for it

    cmd = [sys.executable, SLOW_CLEANUP, "--until", str(go)]
    with reaped(shutdownbus.spawn(cmd, stdout=subprocess.PIPE, text=True)) as child:
        assert child.stdout is not None and child.stdout.readline().startswith("ready ")
        report = child.stop(timeout=60, progress=progress)
    assert report.ok, report
    assert len(seen) >= 3
    for p in seen[:3]:
        assert p.remaining == ((child.pid, "slowpoke"),) and p.total == 1, p
        assert p.escalation_in is not None and 0 < p.escalation_in <= 60
    assert [p.elapsed for p in seen] == sorted(p.elapsed for p in seen)
    assert seen[0].escalation_in >= seen[2].escalation_in  # type: ignore[operator]


def test_the_stop_log_loads_no_module_on_the_exit_path(tmp_path: Path) -> None:
    """With logging at INFO, the exit path logs (its "done" line) and still
    loads nothing (tests/test_real_programs.py has why)."""
    record = tmp_path / "record"
    cmd = [sys.executable, str(PROGRAMS / "exit_audit.py"), str(record)]
    cmd += [str(PROGRAMS / "logging_member.py"), "tree", str(tmp_path / "log")]
    with reaped(shutdownbus.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as child:
        assert child.stdout is not None and child.stdout.readline().startswith("ready ")
        assert child.stop(timeout=30).ok
        err = child.stderr.read() if child.stderr is not None else ""
    assert record.read_text() == "", f"loaded on the exit path:\n{record.read_text()}"
    assert re.search(r" boss done with stop 'stop' after [\d.]+ s; exiting$", err, re.M), err


@pytest.mark.skipif(WINDOWS, reason="a POSIX terminal (pty)")
@pytest.mark.parametrize(("flags", "status"), [((), 130), (("--clean-exit", "INT"), 0)])
def test_clean_exit_after_ctrl_c(flags: tuple[str, ...], status: int) -> None:
    """Ctrl-C is a stop the user asked for: a command that dies of its
    KeyboardInterrupt (130) maps with ``--clean-exit INT``."""
    code = "import time\ntry:\n    print('up', flush=True)\n    time.sleep(600)\n"
    code += "finally:\n    print('bye', flush=True)\n"
    with terminal([*SCRIPT, "run", *flags, "--", sys.executable, "-c", code]) as (pid, fd):
        read_until(fd, b"up", 60)
        os.write(fd, b"\x03")
        try:
            rest = read_until(fd, b"bye", 60)
        except TimeoutError as exc:
            # Seen twice under heavy load (1 in 50), never since in 2,800
            # runs: say at once whether the command blocked, ignored or never
            # caught SIGINT, and in which process group each one was.
            raise AssertionError(f"{exc}\n{signal_states(pid)}") from None
        more, exit_code = exit_status(pid, fd)
        rest += more
    assert b"bye" in rest and b"KeyboardInterrupt" in rest, rest
    assert exit_code == status, rest


def signal_states(pid: int) -> str:
    """For ``pid`` and its descendants: the signal masks of /proc/PID/status, and the process groups."""
    lines = []
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        with contextlib.suppress(OSError, psutil.Error):
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            wanted = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
            masks = " ".join(line for line in status if line.startswith(wanted))
            lines.append(f"{proc.pid} pgid {os.getpgid(proc.pid)} {proc.cmdline()[:2]}: {masks}")
    return "\n".join(lines)
