"""The admin path under faults (issue 22): ``send-stop`` when the root dies
during the stop, when the registry cannot be written, and for targets that
are numbers.

Real ``shutdownbus run`` trees, the real console script, real registry files.
Each test prints the report it got (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LINUX, MEMBER, PROGRAMS, SCRIPT, WINDOWS, alive, logged, reaped, wait_for
from test_cli import Run, cli, readline

from shutdownbus._deadlines import ESCALATION_MARGIN

SLOW = str(PROGRAMS / "slow_tree.py")
LOOSE = 10.0  # bound against hangs on a loaded machine


def start_slow_tree(
    log: Path, name: str, *args: str, stop_timeout: float = 6.0, own_session: bool = False
) -> tuple[subprocess.Popen[str], int, list[int]]:
    """``shutdownbus run --name NAME -- python slow_tree.py LOG ARGS``, once its tree is up.

    ``own_session``: ``run`` leads a session of its own.  A test that stops
    it with SIGSTOP needs this: in a process group that is orphaned (the
    suite started in the background by a shell without job control, nohup),
    the kernel sends every stopped process SIGHUP then SIGCONT when another
    process's exit leaves the group orphaned, and a ``run`` that ignores
    SIGHUP (nohup again) then simply goes on.  In a session of its own, no
    process's parent is in another group of that session: nothing can set
    that off.

    Returns:
        The ``run`` process, the top member's pid and its three members' pids.
    """
    cmd = [*SCRIPT, "run", "--name", name, "--stop-timeout", str(stop_timeout), "--", sys.executable, SLOW, str(log)]
    proc = subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=own_session
    )
    try:
        line = readline(proc.stdout, 60)
    except TimeoutError:
        proc.kill()
        raise
    assert line.startswith("ready "), line
    top, *members = (int(word) for word in line.split()[1:])
    return proc, top, members


def outcomes(report: dict[str, object]) -> dict[int, str]:
    return {e["pid"]: e["outcome"] for e in report["entries"]}  # type: ignore[attr-defined,index]


@pytest.mark.skipif(WINDOWS, reason="SIGKILL and SIGSTOP of the root mid-stop: POSIX signals")
@pytest.mark.parametrize(("fault", "top"), [("killed", "clean"), ("killed", "ignore"), ("hung", "clean")])
def test_a_root_killed_or_hung_during_send_stop_leaves_a_true_report(tmp_path: Path, fault: str, top: str) -> None:
    """Before, once the root was gone send-stop printed every row ``stopped``,
    ``ok`` and exit 0 within 0.5 s, with the members still cleaning up (and a
    member that ignored the stop running for good).  Now it goes on watching
    the tree it found, escalates what still runs at the deadline, and marks
    each process as it ended.  A root that hangs (SIGSTOP) mid-stop is
    escalated at the deadline."""
    log = tmp_path / "log"
    run, top_pid, members = start_slow_tree(log, "slow", "--top", top, own_session=fault == "hung")
    with reaped(run, descendants=True):
        admin = subprocess.Popen([*SCRIPT, "send-stop", "slow", "--json"], stdout=subprocess.PIPE, text=True)
        with reaped(admin):
            start = time.monotonic()
            wait_for(lambda: len(logged(log, "cleanup-started")) == 3, 30, "the members did not start cleaning up")
            run.send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)  # the OOM killer; a hang
            out, _ = admin.communicate(timeout=6.0 + 2 * ESCALATION_MARGIN + LOOSE)
            took = time.monotonic() - start
        print(f"\nsend-stop took {took:.3f} s\n{out}")
        left = alive([run.pid, top_pid, *members])
    assert left == [], f"send-stop returned with {left} still running"
    assert admin.returncode == 1, out
    report = json.loads(out)
    got = outcomes(report)
    assert report["ok"] is False
    assert len(logged(log, "cleanup-done")) == 3  # send-stop waited for their cleanup
    assert all(e["seconds"] is None or e["seconds"] <= report["seconds"] for e in report["entries"])
    if fault == "hung":
        assert got[run.pid] == "killed"
        assert {got[pid] for pid in [top_pid, *members]} == {"stopped"}
        return
    assert got[run.pid] == "failed"  # it died before its tree was stopped: not 'stopped'
    assert {got[pid] for pid in members} == {"lost"}  # they ended on their own after the root, seen ending
    assert got[top_pid] == ("lost" if top == "clean" else "killed")


# -- names: one tree per name -------------------------------------------------------


def test_twenty_runs_of_one_name_at_once_start_one_tree(tmp_path: Path, runtime_dir: str) -> None:
    """Before, 2 to 12 of them ran, one registered (check, then rename, no
    lock): the others could not be reached.  A stale entry of a dead root is
    there too, and is replaced.  The losers exit 2, naming the winner's pid,
    before their command starts."""
    from shutdownbus import _registry

    registry = Path(_registry.directory())
    stale = {"format": 2, "name": "X", "pid": 2**22 - 1, "started": 1.0, "endpoint": "ipc:///nowhere",
             "secret": "00" * 32, "argv": ["x"], "pid_namespace": "", "stop_timeout": 5.0}  # fmt: skip
    (registry / "X.json").write_text(json.dumps(stale))
    log = tmp_path / "log"
    cmd = [*SCRIPT, "run", "--name", "X", "--", sys.executable, MEMBER, "--log", str(log)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(20)]
    try:
        # Settled: each run still running has started its command (a member logs its start).
        running = lambda: [p for p in procs if p.poll() is None]  # noqa: E731
        wait_for(lambda: len(running()) == len(logged(log, "started")), 60, "the runs did not settle")
        assert len(running()) == 1, f"{len(running())} trees run under one name"
        (winner,) = running()
        for proc in procs:
            if proc is not winner:
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 2, err
                assert err.strip() == (
                    f"shutdownbus: a tree named 'X' is already running (pid {winner.pid}); stop it first"
                    " ('shutdownbus send-stop X') or choose another name"
                )
        assert cli("send-stop", "X").returncode == 0
        assert winner.wait(60) == 0
        assert len(logged(log, "started")) == 1  # no loser's command ever started
        assert cli("send-stop", "X").returncode == 2  # nothing left under that name
    finally:
        for proc in procs:
            with reaped(proc):
                pass


# -- a full disk ------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path, runtime_dir: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real tmpfs of 256 KiB and 64 inodes, as the runtime directory; mounted by the test."""
    if not LINUX or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux (the test fills a real file system)")
    mount = Path(runtime_dir) / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=64,mode=0700", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    monkeypatch.setenv("SHUTDOWNBUS_RUNTIME_DIR", str(mount))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, what: str) -> None:
    """Use up the file system's blocks (``space``) or its inodes (``inodes``)."""
    if what == "space":
        with open(mount / "filler", "wb", buffering=0) as f, pytest.raises(OSError, match="No space left"):
            while True:
                f.write(b"\0" * 4096)
        return
    with pytest.raises(OSError, match="No space left"):
        for i in range(100_000):
            (mount / f"f{i}").touch()


@pytest.mark.parametrize("what", ["space", "inodes"])
def test_send_stop_on_a_full_file_system_still_stops(tmp_path: Path, small_tmpfs: Path, what: str) -> None:
    """Before, with no space left send-stop died of ENOSPC in begin_stop (a
    traceback, an empty NAME.stop left, the tree running on); with no inode
    left it exited 2 and sent nothing."""
    log = tmp_path / "log"
    run = Run(log, "--name", "full", member_args=("--depth", "1"))
    try:
        fill(small_tmpfs, what)
        done = cli("send-stop", "full")
        print(f"\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "the record of this stop of 'full' could not be kept (No space left on device)" in done.stderr
        assert "Traceback" not in done.stderr
        assert "stop 'stop': 3 process(es), ok" in done.stdout
        assert run.finish() == 0
        assert len(logged(log, "cleanup")) == 2
        assert not list(small_tmpfs.glob("shutdownbus-*/full.stop"))
    finally:
        with reaped(run.proc):
            pass


# -- a name that is a number ------------------------------------------------------------


def test_a_bare_number_is_a_name_and_pids_take_pid(tmp_path: Path) -> None:
    """Before, ``send-stop 31808`` stopped whichever entry came first in file
    name order: the tree named 31808 or the tree whose root pid was 31808."""
    by_pid = Run(tmp_path / "a", "--name", "api")
    try:
        pid = str(by_pid.proc.pid)
        named = Run(tmp_path / "b", "--name", pid)  # a tree named as the other's root pid
        try:
            # The name wins: the tree named PID, not the tree whose root has that pid.
            done = cli("send-stop", pid, "--json")
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["entries"][0]["pid"] == named.proc.pid
            assert named.finish() == 0 and by_pid.proc.poll() is None
        finally:
            with reaped(named.proc):
                pass
        # No tree has that name now: the number is refused, with what to type instead.
        for command in ("send-stop", "tree"):
            refused = cli(command, pid)
            assert refused.returncode == 2
            assert refused.stderr.strip() == (
                f"shutdownbus: no tree is named '{pid}', but pid {pid} is the root of the tree 'api':"
                f" give its name, or the pid as '--pid {pid}'"
            )
        assert by_pid.proc.poll() is None
        assert cli("tree", "--pid", pid).returncode == 0
        for usage in (("send-stop",), ("send-stop", "api", "--pid", pid), ("send-stop", "--pid", "x")):
            wrong = cli(*usage)
            assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr
        done = cli("send-stop", "--pid", pid)
        assert done.returncode == 0, done.stderr
        assert by_pid.finish() == 0
    finally:
        with reaped(by_pid.proc):
            pass


# -- what would pile up ---------------------------------------------------------------


def test_stop_records_and_dead_writers_files_do_not_pile_up(tmp_path: Path) -> None:
    """Before, every NAME.stop stayed in the registry for good (unless a new
    root took that name), and so did a temporary file of a writer that died."""
    from shutdownbus import _registry

    folder = Path(_registry.directory())
    run = Run(tmp_path / "log", "--name", "once")
    try:
        assert cli("send-stop", "once").returncode == 0
        assert run.finish() == 0
    finally:
        with reaped(run.proc):
            pass
    record = folder / "once.stop"
    assert record.exists()  # kept a while, for an admin that joined the stop
    left = folder / ".tmp-0123456789ab"
    left.write_text("{")
    fresh = folder / "fresh.stop"
    fresh.write_text("{}")
    assert cli("list").returncode == 0
    assert record.exists() and left.exists() and fresh.exists()  # young: may still be read
    old = time.time() - _registry.LEFT_OVER_AGE - 10
    for path in (record, left):
        os.utime(path, (old, old))  # as they would be a minute later
    assert cli("list").returncode == 0
    assert not record.exists() and not left.exists() and fresh.exists()


def runtime_dirs_of(base: Path, pid: int) -> set[Path]:
    """The runtime directories in ``base`` whose owner file names ``pid``."""
    return {p.parent for p in base.glob("sb-*/owner") if p.read_text().split()[0] == str(pid)}


@pytest.mark.skipif(not LINUX, reason="a dead owner is proven by /proc start times (Linux); elsewhere none is removed")
def test_the_ipc_directory_of_a_killed_process_is_removed_later(tmp_path: Path, runtime_dir: str) -> None:
    """Before, a SIGKILLed run left its sb-* directory behind and nothing
    removed it.  Now the next send-stop removes it, and only it: not the
    directory of a live process, not one of another user, not one of another
    PID namespace, not one without an owner file (older versions)."""
    base = Path(runtime_dir)
    victim = Run(tmp_path / "a", "--name", "victim")
    live = Run(tmp_path / "b", "--name", "live")
    other = Run(tmp_path / "c", "--name", "other")
    try:
        mine = runtime_dirs_of(base, victim.proc.pid)
        assert len(mine) == 1
        owner = (next(iter(mine)) / "owner").read_text().split()
        victim.proc.kill()
        victim.proc.wait()
        wait_for(lambda: alive([victim.member_pid]) == [], 30, "the command outlived its killed run")
        assert all(p.is_dir() for p in mine)  # nobody removed it
        foreign, other_namespace, unsigned = base / "sb-foreign1", base / "sb-otherns1", base / "sb-unsigned"
        for path, line in ((foreign, " ".join(owner)), (other_namespace, f"{owner[0]} 1:1 {owner[2]}")):
            path.mkdir(mode=0o700)
            (path / "owner").write_text(line)
        unsigned.mkdir(mode=0o700)
        if os.geteuid() == 0:
            os.chown(foreign, 12345, 12345)
        kept = [*runtime_dirs_of(base, other.proc.pid), other_namespace, unsigned]
        kept += [foreign] if os.geteuid() == 0 else []
        assert len(kept) >= 3
        assert cli("send-stop", "live").returncode == 0  # it sweeps once its stop is done
        assert live.finish() == 0
        assert not any(p.exists() for p in mine), "the killed run's directory is still there"
        assert [p for p in kept if not p.exists()] == []
        assert cli("send-stop", "other").returncode == 0
        assert other.finish() == 0
    finally:
        for run in (victim, live, other):
            with reaped(run.proc):
                pass


@pytest.mark.skipif(WINDOWS, reason="SIGKILL of the leading admin: POSIX")
def test_a_stop_taken_over_from_a_killed_admin_has_a_total_no_shorter_than_a_row(tmp_path: Path) -> None:
    """Before, an admin that took over the stop of one that was killed
    reported a total (from its own start) shorter than the rows the root
    timed from the first stop (1.104 s against 2.023 s)."""
    log = tmp_path / "log"
    run, _, _ = start_slow_tree(log, "taken", "--cleanup", "1.5")
    with reaped(run, descendants=True):
        first = subprocess.Popen([*SCRIPT, "send-stop", "taken"], stdout=subprocess.DEVNULL)
        with reaped(first):
            wait_for(lambda: len(logged(log, "cleanup-started")) == 3, 30, "the members did not start cleaning up")
            first.kill()
        done = cli("send-stop", "taken", "--json")
        assert run.wait(60) == 0
    print(f"\n{done.stdout}{done.stderr}")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    rows = [e["seconds"] for e in report["entries"] if e["seconds"] is not None]
    assert max(rows) >= 1.5  # the members' cleanup, timed from the first stop
    assert report["seconds"] >= max(rows)
