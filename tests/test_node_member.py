"""The Node.js member (node/): its own unit tests, the conformance runner, and mixed trees.

Skipped, with the reason, where ``node`` is not installed or node/'s
dependencies are not (``make test`` installs them: ``npm ci`` in node/).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import MEMBER, PROGRAMS, SCRIPT, alive, reaped, wait_for
from test_conformance import run_conformance

import shutdownbus
from shutdownbus import _deadlines

NODE_DIR = Path(__file__).parent.parent / "node"
NODE = shutil.which("node")
MEMBER_JS = str(NODE_DIR / "bin" / "conformance-member.js")
PYTHON_MEMBER = [sys.executable, "-m", "shutdownbus.conformance.member"]

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="the Node.js member has been run on Linux only so far"),
    pytest.mark.skipif(NODE is None, reason="node is not installed: the Node.js member cannot be tested"),
    pytest.mark.skipif(
        NODE is not None and not (NODE_DIR / "node_modules" / "zeromq").is_dir(),
        reason="node/'s dependencies are not installed: run `make node-deps` (make test does)",
    ),
]


def node_member(*child: str) -> list[str]:
    assert NODE is not None
    return [NODE, MEMBER_JS, *(("--child", *child) if child else ())]


def test_node_unit_tests_against_the_vectors() -> None:
    assert NODE is not None
    done = subprocess.run([NODE, "--test", "test/"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass " in done.stdout


def test_node_member_passes_the_conformance_runner() -> None:
    status, rows, stderr = run_conformance(node_member())
    failed = {name: row for name, row in rows.items() if row[0] != "PASS"}
    assert (status, stderr) == (0, "") and not failed, f"{failed} {stderr}"
    assert len(rows) >= 13


def test_node_member_with_a_python_child_passes_the_forwarding_cases() -> None:
    status, rows, _ = run_conformance(node_member(*PYTHON_MEMBER), "stop-forwarded", "parent-lost")
    assert status == 0, rows


def test_python_member_with_a_node_child_passes_the_forwarding_cases() -> None:
    status, rows, _ = run_conformance([*PYTHON_MEMBER, "--child", *node_member()], "stop-forwarded", "parent-lost")
    assert status == 0, rows


def test_a_node_parent_escalates_a_child_that_ignores_its_stop(tmp_path: Path) -> None:
    """A Node.js root (not a member) spawns a Python member that ignores its stop: SIGTERM at the deadline."""
    assert NODE is not None
    log = tmp_path / "log"
    script = f"""
    const sb = require({str(NODE_DIR)!r})
    ;(async () => {{
      const child = await sb.spawn({sys.executable!r}, {[MEMBER, "--log", str(log), "--on-stop", "ignore"]!r})
      await child.ready
      const entries = await child.stop({{ timeout: 1 }})
      console.log(JSON.stringify(entries))
      sb.close() // and the event loop ends on its own
    }})()
    """
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)
    assert entry["outcome"] == "terminated" and entry["member"] is True, entry
    assert 1.0 <= entry["seconds"] < 1.0 + 1.0, entry
    assert "m got stop stop" in log.read_text()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "not started on a channel"),
        ({"SHUTDOWNBUS_ENDPOINT": "ipc:///nonexistent/1"}, "only part of the shutdownbus variables"),
        ({"SHUTDOWNBUS_ENDPOINT": "ipc:///nonexistent/1", "SHUTDOWNBUS_SECRET": "ab" * 31}, "does not hold a valid"),
        ({"SHUTDOWNBUS_ENDPOINT": "udp://x", "SHUTDOWNBUS_SECRET": "ab" * 32}, "is not a shutdownbus endpoint"),
    ],
)
def test_node_member_refuses_a_bad_hand_over_in_one_line(env: dict[str, str], message: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHUTDOWNBUS_")}
    done = subprocess.run(node_member(), env={**clean, **env}, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2, done
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "ab" * 31 not in done.stderr


def test_a_node_member_hands_its_endpoint_to_what_it_starts_by_other_means() -> None:
    """Protocol 2.6: once joined, ``SHUTDOWNBUS_BELOW`` holds the endpoint it
    joined, so a plain child inherits it (its parent tells it by that should
    the member be killed); a child it spawns carries only its own endpoint."""
    assert NODE is not None
    below = "import os; print(os.environ.get('SHUTDOWNBUS_BELOW', '-'))"
    show = "import os; print(os.environ.get('SHUTDOWNBUS_BELOW', '-'), os.environ['SHUTDOWNBUS_ENDPOINT'][:3])"
    script = f"""
    const sb = require({str(NODE_DIR)!r})
    const cp = require('child_process')
    ;(async () => {{
      await sb.join()
      const plain = cp.execFileSync({sys.executable!r}, ['-c', {below!r}])
      console.log('plain ' + plain.toString().trim())
      const child = await sb.spawn({sys.executable!r}, ['-c', {show!r}], {{ stdio: ['ignore', 'pipe', 'inherit'] }})
      let out = ''
      child.process.stdout.on('data', (d) => {{ out += d }})
      await child.exited
      console.log('spawned ' + out.trim())
    }})()
    """
    with reaped(shutdownbus.spawn([NODE, "-e", script], stdout=subprocess.PIPE, text=True)) as node:
        assert node.stdout is not None
        lines = [node.stdout.readline().strip(), node.stdout.readline().strip()]
        report = node.stop(timeout=10)
    assert lines == [f"plain {node._link.endpoint}", f"spawned - {node._link.endpoint[:3]}"], (lines, report)


def test_a_node_parent_stops_a_non_member_with_the_os_request_after_the_join_grace() -> None:
    """7.2: a child that never joins gets SIGTERM once the join grace (1 s) is over; reported as a non-member."""
    assert NODE is not None
    sleeper = [str(Path(__file__).parent / "programs" / "sleep.py"), "600"]
    script = f"""
    const sb = require({str(NODE_DIR)!r})
    ;(async () => {{
      const child = await sb.spawn({sys.executable!r}, {sleeper!r})
      const entries = await child.stop({{ timeout: 5 }})
      console.log(JSON.stringify(entries))
      sb.close()
    }})()
    """
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)
    assert (entry["outcome"], entry["member"], entry["request"]) == ("stopped", False, "SIGTERM"), entry
    assert 0.9 <= entry["requested"] <= entry["seconds"] < 2.5, entry


def test_a_node_parent_drops_what_a_lying_member_reports() -> None:
    """6.5: reports sent unasked, and an entry for a process outside the child's subtree, are dropped."""
    assert NODE is not None
    script = f"""
    const sb = require({str(NODE_DIR)!r})
    ;(async () => {{
      const child = await sb.spawn({sys.executable!r}, [{str(PROGRAMS / "liar.py")!r}, String(process.pid)])
      await child.ready
      const entries = await child.stop({{ timeout: 5 }})
      console.log(JSON.stringify(entries))
      sb.close()
    }})()
    """
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert [e["member"] for e in entries] == [True], entries  # the liar's own entry only
    assert "unasked" in done.stderr and "outside the child's subtree" in done.stderr, done.stderr


SPAWNER = """
import sys, shutdownbus
child = shutdownbus.spawn(sys.argv[1:], ready_timeout=60, stop_timeout=3)
print("ready", child.pid, flush=True)
shutdownbus.wait_for_stop()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
def test_node_member_whose_spawner_is_killed_stops_itself_with_parent_lost(tmp_path: Path) -> None:
    """A Python spawner dies (SIGKILL): the kernel sends its Node member the parent-death signal (SIGTERM),
    which the member must take as the loss of its parent, not die of: it stops itself and its child."""
    log = tmp_path / "events"
    env = dict(os.environ, SHUTDOWNBUS_CONFORMANCE_EVENTS=str(log), SHUTDOWNBUS_CONFORMANCE_CHILD="1")
    cmd = [sys.executable, "-c", SPAWNER, *node_member(*PYTHON_MEMBER)]
    with reaped(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True), descendants=True) as spawner:
        assert spawner.stdout is not None
        line = spawner.stdout.readline()
        assert line.startswith("ready "), line
        member = int(line.split()[1])
        wait_for(lambda: any(e == "spawned" for _, e, _ in events(log)), 60, "the member's child")
        child = next(int(c) for p, e, c in events(log) if e == "spawned")
        tree = [psutil.Process(member), psutil.Process(child)]
        spawner.kill()
        spawner.wait()
        _, still = psutil.wait_procs(tree, timeout=30)
        assert still == []
    seen = events(log)
    stops = {p: rest.split(" ", 1) for p, e, rest in seen if e == "stop"}
    assert stops[member][1] == "parent-lost" and abs(float(stops[member][0]) - 3.0) < 0.5, seen
    assert stops[child][1] == "parent-lost", seen
    assert {p for p, e, _ in seen if e == "cleanup"} == {member, child}, seen


def events(path: Path) -> list[tuple[int, str, str]]:
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        pid, event, *rest = line.split(" ", 2)
        out.append((int(pid), event, rest[0] if rest else ""))
    return out


def test_mixed_tree_stops_level_by_level_with_a_right_report(tmp_path: Path) -> None:
    """shutdownbus run (Python) -> Node member -> Python member -> Node member; send-stop reaches every level."""
    log = tmp_path / "events"
    env = dict(os.environ, SHUTDOWNBUS_CONFORMANCE_EVENTS=str(log), SHUTDOWNBUS_CONFORMANCE_CHILD="2")
    cmd = [*SCRIPT, "run", "--name", "mixed", "--stop-timeout", "5", "--",
           *node_member(*PYTHON_MEMBER, "--child", *node_member())]
    with reaped(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL), descendants=True) as run:
        # The top member logs 'spawned' once its child is ready, which is once the whole tree is.
        wait_for(lambda: sum(e == "spawned" for _, e, _ in events(log)) == 2, 60, "the mixed tree to start")
        spawned = {pid: int(child) for pid, e, child in events(log) if e == "spawned"}
        top = next(pid for pid in spawned if pid not in spawned.values())
        levels = [top, spawned[top], spawned[spawned[top]]]
        programs = [psutil.Process(pid).cmdline()[:3] for pid in levels]
        assert [cmd[1] for cmd in programs] == [MEMBER_JS, "-m", MEMBER_JS], programs
        assert programs[1][2] == "shutdownbus.conformance.member"
        done = subprocess.run([*SCRIPT, "send-stop", "mixed", "--json"], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert run.wait(30) == 0
    report = json.loads(done.stdout)
    assert report["ok"] is True
    rows = {e["pid"]: e for e in report["entries"]}
    assert set(rows) == {run.pid, *levels}, report
    for pid in (run.pid, *levels):
        assert rows[pid]["outcome"] == "stopped", rows[pid]
        assert rows[pid]["returncode"] == 0, rows[pid]
        assert 0 <= rows[pid]["seconds"] <= 5, rows[pid]
    for pid in levels:
        assert rows[pid]["member"] is True, rows[pid]
    names = [rows[pid]["name"] for pid in (run.pid, *levels)]
    assert names == ["mixed", "conformance-member", "conformance-child", "conformance-child"], names
    assert all(rows[pid]["seconds"] >= rows[deeper]["seconds"] for pid, deeper in itertools.pairwise(levels))
    stops = {pid: (float(rest.split(" ", 1)[0]), rest.split(" ", 1)[1]) for pid, e, rest in events(log) if e == "stop"}
    cleanups = {pid for pid, e, _ in events(log) if e == "cleanup"}
    assert set(stops) == set(levels) and cleanups == set(levels)
    assert {reason for _, reason in stops.values()} == {"stop"}
    for upper, lower in itertools.pairwise(levels):  # each level keeps a share of its own time (protocol.md 7.1)
        assert stops[lower][0] <= _deadlines.children_deadline(stops[upper][0], 0.0) + 0.002, stops
    assert alive(levels) == []


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX terminal (pty)")
def test_ctrl_c_in_a_terminal_reaches_every_process_of_a_mixed_tree(tmp_path: Path) -> None:
    """Node -> Python -> Node in a terminal: Ctrl-C reaches each process natively, each cleans up once.

    A member whose parent took its Ctrl-C first may get that parent's stop
    ('parent-exit', its exit path) before its own SIGINT is handled: either
    way it cleans up once.  The top member has no parent that could.
    """
    import pty

    from test_ctrl_c import read_until

    log = tmp_path / "events"
    env = dict(os.environ, SHUTDOWNBUS_CONFORMANCE_EVENTS=str(log), SHUTDOWNBUS_CONFORMANCE_CHILD="2")
    cmd = [*SCRIPT, "run", "--name", "mixed-tty", "--", *node_member(*PYTHON_MEMBER, "--child", *node_member())]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the root of the tree, in the new terminal's foreground group
        os.execve(cmd[0], cmd, env)
    try:
        wait_for(lambda: sum(e == "spawned" for _, e, _ in events(log)) == 2, 60, "the mixed tree to start")
        tree = psutil.Process(pid).children(recursive=True)
        os.write(fd, b"\x03")  # what the terminal turns into SIGINT for its foreground group
        out = read_until(fd, None, 60)
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    spawned = {p: int(c) for p, e, c in events(log) if e == "spawned"}
    top = next(p for p in spawned if p not in spawned.values())
    levels = [top, spawned[top], spawned[spawned[top]]]
    seen = events(log)
    interrupted = {p for p, e, _ in seen if e == "interrupted"}
    stopped = {p for p, e, rest in seen if e == "stop" and rest.endswith(" parent-exit")}
    cleanups = [p for p, e, _ in seen if e == "cleanup"]
    assert sorted(cleanups) == sorted(levels), f"{seen} {out!r}"
    assert levels[0] in interrupted and set(levels) <= interrupted | stopped, f"{seen} {out!r}"
    assert b"Traceback" not in out, out
    assert os.waitstatus_to_exitcode(status) == 0, out
    _, still = psutil.wait_procs(tree, timeout=10)
    assert still == []
