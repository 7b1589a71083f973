"""Children that are not members: never orphaned, asked to go their own way, at once when declared."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import LINUX, PROGRAMS, SCRIPT, WINDOWS, logged, reaped, sleep_cmd, wait_for, wait_gone

import shutdownbus
from shutdownbus import _platform
from shutdownbus._deadlines import ESCALATION_MARGIN, JOIN_GRACE
from shutdownbus._guard import is_a_guard

linux = pytest.mark.skipif(not LINUX, reason="the kernel's parent-death signal is Linux's (docs/lifecycle.md)")
posix = pytest.mark.skipif(WINDOWS, reason="POSIX signals")


@linux
def test_a_killed_spawner_leaves_no_child_of_any_kind(tmp_path: Path) -> None:
    """A parent killed hard (SIGKILL, the OOM killer, a CI timeout), with no
    spawner of ours above it: its member stops itself with its cleanup,
    every child that cannot hear the bus gets its polite request from the
    kernel (the one that stops on SIGQUIT, that one, and nothing after it:
    it cleans up for 1 s), and a shell's background job, which gets nothing
    from the kernel, is ended by the spawner's guard.  On 3d995bd the child
    that never joined (sleep) was left running with PPID 1, for good; before
    the guard, the job was."""
    log, quit_marker, member_quit_marker = tmp_path / "log", tmp_path / "quitter", tmp_path / "member's quitter"
    argv = [sys.executable, str(PROGRAMS / "spawner.py"), str(log), "--shell", "--quitter", str(quit_marker)]
    argv += ["--member-quitter", str(member_quit_marker)]
    spawner = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None
        pids = json.loads(spawner.stdout.readline())
        (_, grandchild), = logged(log, "plain")  # the member's own plain subprocess
        procs = [psutil.Process(pid) for pid in [*pids.values(), int(grandchild)]]
        guards = guards_of(spawner.pid)
        assert len(guards) == 1, guards
        spawner.kill()
        spawner.wait()
        # The job is asked once its shell is gone, not escalated at the
        # deadline (the spawner's stop timeout, 10 s, and the margin).
        assert wait_gone([psutil.Process(pids["job"])], 5) == []
        assert wait_gone(procs, 30) == [], [p.cmdline() for p in procs if p.is_running()]
        assert wait_gone(guards, 30) == []  # its work done, the guard is gone too
    assert logged(log, "got stop") == [("m", "parent-lost")]
    assert [name for name, _ in logged(log, "cleanup")] == ["m"]
    assert quit_marker.read_text() == "cleaned up after SIGQUIT\n"
    # Nor what it started (nginx's workers): it passes its SIGQUIT on to them.
    assert Path(f"{quit_marker}.worker").read_text() == "cleaned up after SIGQUIT\n"
    # A member's own child is the member's to stop (on 'parent-lost', with
    # its SIGQUIT): the guard asks it nothing.
    assert member_quit_marker.read_text() == "cleaned up after SIGQUIT\n"


@linux
def test_what_a_strangers_spawner_left_to_us_is_its_guards_not_ours(tmp_path: Path) -> None:
    """We are a spawner (a subreaper) looking for the remains of a child of
    ours that just ended on its own; a top-level spawner we started with
    Popen is killed, and its children are re-parented to us.  They are not
    ours to end: its guard ends them, without asking again the one the
    kernel asked (with SIGQUIT: 1 s of cleanup, any other signal ends it
    without its marker).  Before, our look took them too, and sent SIGTERM
    (seen as this file's first test failing beside another test's look)."""
    from shutdownbus import _remains

    ended = shutdownbus.spawn([sys.executable, "-c", "pass"], joins=False)
    with reaped(ended):
        assert ended.wait(30) == 0
        wait_for(lambda: _remains._sweeper is not None, 30, "our look for the remains of a child that ended")
    marker = tmp_path / "quitter"
    argv = [sys.executable, str(PROGRAMS / "spawner.py"), str(tmp_path / "log"), "--quitter", str(marker)]
    spawner = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None
        pids = json.loads(spawner.stdout.readline())
        quitter = psutil.Process(pids["quitter"])
        spawner.kill()
        spawner.wait()
        assert wait_gone([quitter], 30) == []
    assert marker.read_text() == "cleaned up after SIGQUIT\n"


def guards_of(pid: int) -> list[psutil.Process]:
    """The guard processes started by process ``pid`` (see shutdownbus/_guard.py)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if is_a_guard("", args) and args[-2] == str(pid) and not args[0].endswith("sh"):
            found.append(proc)
    return found


@linux
def test_a_top_level_spawner_has_one_guard_outside_its_tree_that_ends_with_it() -> None:
    """The guard is started at the first spawn (one, though two threads make
    their first spawn at once, and though the spawner holds many
    descriptors: dash takes no descriptor above 9 in a redirection), is
    nobody's child here (no walk, leak check or tree of the spawner meets
    it), and exits once its spawner has exited normally, having found
    nothing to end."""
    code = (
        "import sys, threading, shutdownbus\n"
        "held = [open('/dev/null') for _ in range(20)]\n"
        "start = threading.Barrier(2)\n"
        "spawned = []\n"
        "def spawn():\n"
        "    start.wait()\n"
        "    sleeper = [sys.executable, '-c', 'import time; time.sleep(600)']\n"
        "    spawned.append(shutdownbus.spawn(sleeper, joins=False))\n"
        "threads = [threading.Thread(target=spawn) for _ in range(2)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "print(*(c.pid for c in spawned), flush=True)\n"
        "sys.stdin.read()\n"
    )
    spawner = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None and spawner.stdin is not None
        children = [int(pid) for pid in spawner.stdout.readline().split()]
        guards = guards_of(spawner.pid)
        assert len(guards) == 1, guards
        (guard,) = guards
        assert guard.ppid() != spawner.pid
        assert guard.pid not in {p.pid for p in psutil.Process(spawner.pid).children(recursive=True)}
        assert "SHUTDOWNBUS_SECRET" not in guard.environ() and "SHUTDOWNBUS_ENDPOINT" not in guard.environ()
        assert sorted(p.pid for p in psutil.Process(spawner.pid).children()) == sorted(children)
        spawner.stdin.close()  # it exits normally, stopping its children
        assert spawner.wait(60) == 0
        assert wait_gone([guard], 30) == []


@linux
def test_a_spawner_that_its_spawner_watches_has_no_guard(tmp_path: Path) -> None:
    """Below a spawner of ours, that spawner ends the remains (`_remains`): no guard."""
    log = tmp_path / "log"
    argv = [sys.executable, str(PROGRAMS / "spawner.py"), str(log)]
    spawner = shutdownbus.spawn(argv, joins=False, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None
        json.loads(spawner.stdout.readline())
        assert guards_of(spawner.pid) == []


@contextlib.contextmanager
def a_shell_spawner(log: Path) -> Iterator[tuple[shutdownbus.Child, dict[str, int]]]:
    """tests/programs/spawner.py with a shell that starts a background job,
    and the pids it started; reaped with what it leaves.  Once it is gone,
    its remains are looked for for 2 s (and 0.4 s)."""
    spawner = shutdownbus.spawn(
        [sys.executable, str(PROGRAMS / "spawner.py"), str(log), "--shell"],
        joins=False,
        stop_timeout=2,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None
        yield spawner, json.loads(spawner.stdout.readline())


@linux
def test_what_a_killed_spawnee_leaves_behind_is_ended_by_its_spawner(tmp_path: Path) -> None:
    """A child of ours (spawned) is killed hard: the kernel asks its own
    children to go (the parent-death signal), but a shell's background job
    gets nothing and is re-parented to us, the nearest subreaper.  We end it,
    as the dead child would have; the member among its children stops itself
    on 'parent-lost' with its cleanup, not cut short by us.  Before, the job
    ran on under us until our own stop (or for good, once we exited)."""
    log = tmp_path / "log"
    with a_shell_spawner(log) as (spawner, pids):
        job = psutil.Process(pids["job"])
        procs = [psutil.Process(pid) for pid in pids.values()]
        spawner.kill()
        spawner.wait()
        left = {p.pid for p in wait_gone(procs, 30)}
        assert not left, {name: pid for name, pid in pids.items() if pid in left}
        assert not job.is_running() or job.status() == psutil.STATUS_ZOMBIE
    assert logged(log, "got stop") == [("m", "parent-lost")]
    assert [name for name, _ in logged(log, "cleanup")] == ["m"]


@linux
def test_what_a_spawner_killed_as_its_stop_began_left_is_asked_by_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the stop of the spawner was asked before its death was
    seen, so the look for remains leaves what it left to the stop (emulated:
    that look is off).  The stop tells those processes by the endpoints the
    dead spawner made, and asks as that look would: the non-members, and
    the shell's background job, which the kernel did not ask, go at once;
    the member stops itself on 'parent-lost'.  Before, the job ran until the
    stop's deadline, and was escalated."""
    from shutdownbus import _remains

    monkeypatch.setattr(_remains, "look_for_remains", lambda *args: None)
    log = tmp_path / "log"
    argv = [sys.executable, str(PROGRAMS / "spawner.py"), str(log), "--shell"]
    spawner = shutdownbus.spawn(argv, joins=False, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with reaped(spawner, descendants=True):
        assert spawner.stdout is not None
        pids = json.loads(spawner.stdout.readline())
        procs = [psutil.Process(pid) for pid in pids.values()]
        spawner.kill()
        start = time.monotonic()
        report = spawner.stop(timeout=60)
        took = time.monotonic() - start
        print(report)
        left = {p.pid for p in wait_gone(procs, 5)}
        assert not left, {name: pid for name, pid in pids.items() if pid in left}
    assert took < 30, f"the stop took {took:.2f} s: what the spawner left waited for the deadline"
    job = report.entry(pids["job"])
    assert job is not None and job.outcome == "stopped", report
    assert logged(log, "got stop") == [("m", "parent-lost")]


@pytest.mark.skipif(not LINUX, reason="reads the kernel's lists of our children")
def test_a_judgment_of_remains_lasts_only_while_its_process_is_our_child() -> None:
    """The look for remains judges each of our children once.  A look that
    each new death keeps going (a server whose children end now and then)
    kept every judgment by pid: once pids wrapped (pid_max is often 32768),
    the remains of a later death that got a judged pid went unseen (a shell
    job left running 30 s past its spawner's death, twice in loaded suites).
    A judgment is dropped once its process is no longer our child."""
    from shutdownbus._remains import _Remains

    plain = subprocess.Popen(sleep_cmd())  # no marker: judged "not remains"
    try:
        remains = _Remains()

        def judged() -> bool:
            remains.look()  # a child in the middle of its exec is judged at a later look
            return plain.pid in remains.judged

        wait_for(judged, 30, "a judgment of our plain child")
        assert remains.judged[plain.pid] is None
    finally:
        plain.kill()
        plain.wait()  # reaped: its pid may be another process's next
    remains.look()
    assert plain.pid not in remains.judged


@linux
def test_remains_seen_before_their_spawners_death_was_told_are_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel re-parents a killed spawner's shell job to us as that
    spawner dies; the bus thread tells the look for remains of the death a
    moment later.  A look already under way (for an earlier death: its
    window is 10.4 s by default) that met the job in between judged it "not
    remains" for good, its marker's owner being no dead child of ours yet:
    the job ran on (the test above failed so in loaded suites).  Here the
    death is told only once such a look has judged the job: it must still
    be ended, within the spawner's stop timeout and the margin."""
    from shutdownbus import _remains

    log = tmp_path / "log"
    with a_shell_spawner(log) as (spawner, pids):
        job = psutil.Process(pids["job"])
        told = threading.Event()
        tell = _remains.look_for_remains

        def told_late(window: float, dead: tuple[int, int], child: shutdownbus.Child | None = None) -> None:
            def later() -> None:
                # An earlier death's look, under way, meets the job first.
                wait_for(lambda: job.pid in _remains._remains.judged, 30, "no look judged the job")
                tell(window, dead, child)
                told.set()

            threading.Thread(target=later, daemon=True).start()

        monkeypatch.setattr(_remains, "look_for_remains", told_late)
        tell(10.0, (0, 0))  # an earlier death, of which nothing is left: its look runs meanwhile
        try:
            spawner.kill()
            spawner.wait()
            assert told.wait(30), "the death was never told"
            assert wait_gone([job], 2 + ESCALATION_MARGIN + 5) == [], "the job was left running"
        finally:
            # The earlier death's look is not left running for the tests that come next in this process.
            with _remains._lock:
                _remains._look_until = 0.0
            sweeper = _remains._sweeper
            if sweeper is not None:
                sweeper.join(30)


@linux
def test_what_a_live_spawner_left_is_not_taken_for_remains() -> None:
    """A shell of ours that exits on its own leaves a background job, which
    the kernel re-parents to us: its marker's owner (we) is alive, so the
    look for remains leaves it alone; our own stop ends it, as before."""
    from shutdownbus import _remains

    spawned = time.monotonic()
    shell = shutdownbus.spawn(["sh", "-c", "sleep 300 & echo $!"], joins=False, stop_timeout=1, stdout=subprocess.PIPE)
    with reaped(shell, descendants=True):
        assert shell.stdout is not None
        job = psutil.Process(int(shell.stdout.readline()))
        assert shell.wait(30) == 0
        # The shell's exit was seen: a look is due until its stop timeout and the margin have passed.
        wait_for(lambda: _remains._look_until >= spawned + 1 + ESCALATION_MARGIN, 30, "the look for remains started")
        sweeper = _remains._sweeper
        if sweeper is not None:
            sweeper.join(30)  # every look due is done
            assert not sweeper.is_alive()
        assert job.is_running() and job.status() != psutil.STATUS_ZOMBIE and job.ppid() == os.getpid()
        report = shell.stop()
    assert wait_gone([job], 30) == [], report


@linux
def test_a_child_spawned_from_a_thread_outlives_the_thread() -> None:
    """The parent-death signal follows the thread that started the child, not
    the process: spawn starts children from a thread that lives as long as
    the process, so a worker thread that ends takes nothing with it."""
    spawned: list[shutdownbus.Child] = []

    def worker() -> None:
        cmd = [sys.executable, str(PROGRAMS / "echo_until_eof.py")]
        spawned.append(shutdownbus.spawn(cmd, joins=False, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    (child,) = spawned
    with reaped(child):
        # Gone from the kernel too: the parent-death signal, if any, was sent.
        wait_for(lambda: str(thread.native_id) not in os.listdir("/proc/self/task"), 30, "the thread ended")
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("still here?\n")
        child.stdin.flush()
        assert child.stdout.readline() == "still here?\n"
        child.stdin.close()
        report = child.stop()
    assert report.ok, report


def test_a_declared_non_member_is_asked_to_go_the_moment_the_stop_starts() -> None:
    """No join grace for a child declared not to join: a harness that starts
    a server in another language and stops it at once pays nothing for a
    join that cannot come (on 3d995bd: the rest of 1 s after its spawn)."""
    child = shutdownbus.spawn(sleep_cmd(), joins=False)
    with reaped(child):
        report = child.stop()
    (entry,) = report.entries
    assert (entry.outcome, entry.member, entry.request) == ("stopped", False, _platform.default_request()), report
    # Sent at the stop's start; the join grace would have made it 1 s.
    assert entry.requested is not None and entry.requested < JOIN_GRACE / 2, report


def test_a_child_that_may_join_gets_the_grace_and_then_its_request() -> None:
    """The default: a child that might still be starting its member library is
    given the join grace; then its polite request, which the report names."""
    child = shutdownbus.spawn(sleep_cmd())
    with reaped(child):
        report = child.stop()
    (entry,) = report.entries
    assert (entry.outcome, entry.request) == ("stopped", _platform.default_request()), report
    assert child.stop_policy.describe() == f"member/{_platform.default_request()}"


@posix
def test_the_stop_signal_is_the_one_the_program_stops_gracefully_on(tmp_path: Path) -> None:
    """nginx and unicorn stop gracefully on SIGQUIT, uWSGI on SIGINT: the
    signal named is the one sent, and the report says so."""
    marker = tmp_path / "cleaned"
    cmd = [sys.executable, str(PROGRAMS / "quits_gracefully.py"), "SIGQUIT", str(marker)]
    child = shutdownbus.spawn(cmd, stop_signal="QUIT", stdout=subprocess.PIPE)
    with reaped(child):
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        report = child.stop()
    assert marker.read_text() == "cleaned up after SIGQUIT\n"
    (entry,) = report.entries
    assert (entry.outcome, entry.returncode, entry.request) == ("stopped", 0, "SIGQUIT"), report
    assert child.stop_policy.describe() == "SIGQUIT"


@posix
def test_stop_as_group_reaches_what_the_child_started(tmp_path: Path) -> None:
    """supervisord's stopasgroup: a shell script's background job gets the
    request too, at the same moment as the shell (it leads a group of its
    own), and is reported as asked, not as lost when it outlives the shell
    (its cleanup takes a moment longer than the shell's)."""
    marker = tmp_path / "cleaned"
    job = f"{sys.executable} {PROGRAMS / 'quits_gracefully.py'} SIGTERM {marker} 0.2"
    child = shutdownbus.spawn(["sh", "-c", f"{job} & wait"], stop_as_group=True, stdout=subprocess.PIPE)
    with reaped(child, descendants=True):
        assert os.getpgid(child.pid) == child.pid
        assert child.stdout is not None and child.stdout.readline() == b"up\n"  # the job handles SIGTERM now
        report = child.stop()
    assert marker.read_text() == "cleaned up after SIGTERM\n"
    assert report.ok, report
    assert report.entries[0].request == "SIGTERM"
    assert child.stop_policy.describe() == "SIGTERM:group"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"stop_signal": "NOPE"}, "no stop signal 'NOPE'"),
        ({"joins": True, "stop_signal": "INT"}, "stopped through it"),
        pytest.param({"stop_signal": "KILL"}, "cannot be a stop signal", marks=posix),
        pytest.param({"stop_as_group": True}, "POSIX", marks=pytest.mark.skipif(not WINDOWS, reason="Windows")),
    ],
)
def test_a_policy_this_os_does_not_have_is_refused_before_anything_starts(
    policy: dict[str, object], message: str
) -> None:
    before = {p.pid for p in psutil.Process().children()}
    with pytest.raises(ValueError, match=message):
        shutdownbus.spawn(sleep_cmd(), **policy)  # type: ignore[arg-type]
    assert {p.pid for p in psutil.Process().children()} == before


def test_run_refuses_a_stop_signal_that_does_not_exist_with_one_line() -> None:
    done = subprocess.run(
        [*SCRIPT, "run", "--stop-signal", "NOPE", "--", *sleep_cmd()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--stop-signal: no stop signal 'NOPE'" in done.stderr
    assert "Traceback" not in done.stderr


@posix
def test_list_and_tree_show_how_runs_command_is_asked_to_go(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    cmd = [sys.executable, str(PROGRAMS / "quits_gracefully.py"), "SIGQUIT", str(marker)]
    run = subprocess.Popen(
        [*SCRIPT, "run", "--name", "quits", "--stop-signal", "QUIT", "--", *cmd], stdout=subprocess.PIPE
    )
    with reaped(run, descendants=True):
        assert run.stdout is not None and run.stdout.readline() == b"up\n"
        listed = subprocess.run([*SCRIPT, "list"], capture_output=True, text=True, timeout=60)
        (row,) = listed.stdout.splitlines()[1:]
        assert row.split()[4] == "SIGQUIT", listed.stdout
        tree = subprocess.run([*SCRIPT, "tree", "quits"], capture_output=True, text=True, timeout=60)
        command_row = tree.stdout.splitlines()[2]
        assert "no (SIGQUIT)" in command_row, tree.stdout
        stopped = subprocess.run([*SCRIPT, "send-stop", "quits"], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and run.wait(60) == 0, stopped.stdout + stopped.stderr
    assert marker.read_text() == "cleaned up after SIGQUIT\n"


@linux
def test_a_child_spawned_from_a_thread_gets_that_threads_signal_mask() -> None:
    """The children of non-main threads are forked by one lasting thread: each
    still starts with the mask of the thread that spawned it (a mask survives
    exec: a child with SIGTERM blocked would ignore its polite request)."""
    import signal

    def blocked(pid: int) -> int:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)

    spawned: dict[str, shutdownbus.Child] = {}

    def spawn_with(mask: set[int], key: str) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, mask)
        spawned[key] = shutdownbus.spawn(sleep_cmd(), joins=False)

    # The first thread to spawn off the main thread blocks SIGTERM (as worker
    # threads often do), and so would the thread kept for spawning; the second blocks nothing.
    for key, mask in (("blocking", {signal.SIGTERM}), ("plain", set())):
        thread = threading.Thread(target=spawn_with, args=(mask, key))
        thread.start()
        thread.join()
    with reaped(spawned["blocking"]), reaped(spawned["plain"]):
        assert blocked(spawned["blocking"].pid) == 1 << (signal.SIGTERM - 1)
        assert blocked(spawned["plain"].pid) == 0
        report = spawned["plain"].stop()
        assert report.ok, report  # its SIGTERM was heeded
        spawned["blocking"].kill()


def test_a_request_name_from_a_member_is_printed_harmlessly() -> None:
    """A member's report is its claim: a request with terminal escapes in it
    must not reach the operator's terminal raw."""
    entry = shutdownbus.ReportEntry(1, "x", shutdownbus.Outcome.STOPPED, request="\x1b]0;owned\x07\x1b[2J")
    table = shutdownbus.StopReport("stop", (entry,)).format_table()
    assert "\x1b" not in table
