"""shutdownbus benchmarks, side by side with signals: ``make bench`` / ``make bench-quick``.

    python benchmarks/bench.py [--quick] [--reps N] [--section N ...]

``--section 8`` runs the start-up section alone (about a minute; with
``--quick``, some 15 s); ``--reps`` sets every section's repetitions.

1. Stop latency, from the stop request at the root until every process of
   the tree is gone (watched with pidfds, not by trusting the root), for a
   chain of depth 10, fan-out 10 x depth 2 (111 processes), fan-out 8 x 8 x 7
   (521) and fan-out 200 x depth 1, each against its target (bus / signal,
   `STOP_TARGETS`) with its verdict; contenders interleaved A B C A B C ...:
     bus     Child.stop() on the root; every member has a trivial cleanup;
     signal  the reference article's SIGTERM forwarding, ending in sys.exit();
     killpg  the floor: os.killpg(SIGTERM) on a tree with the default action.
   Then a chain of 50 with the default timeout: time, and every report's outcome.
2. Spawn to ready: spawn() + wait_ready() against Popen + reading one line.
3. Per-member cost: threads, fds and RSS of a member against a plain child;
   the import time of a member in a child (the package, and the modules that
   its first `join` loads).
4. Orphan detection: SIGKILL a member's parent; time until the member's
   cleanup starts.
5. Scale: a 400-process tree (fan-out 7, depth 3) stops completely.
6. Third-party servers that never join: gunicorn (4 sync workers) and
   uvicorn (--workers 2), stopped by ``send-stop`` under ``shutdownbus run``
   (the admin's stop, in this process: the command line's own start-up is
   not the server's stop), by ``Child.stop()`` under ``spawn``, and by
   ``kill -TERM`` of the master; each stop starts at a random moment (uvicorn
   looks at its signals every 0.5 s), interleaved.
7. As a container's init (pid 1 of a PID namespace, ``unshare --pid``; root
   only), ``shutdownbus run`` next to tini (``tini``, and ``tini -g``, which
   signals the whole process group): zombies left by 20 short-lived orphans,
   and SIGTERM to the init (``docker stop``) of gunicorn -w 4 until every
   process is gone, with the exit status.
8. Start-up, as users run it: a wheel of the package, installed with its
   dependencies into build/bench-venv (not the editable .venv, whose finder
   adds to every interpreter start), and each contender run with that
   venv's interpreter and command, interleaved; three ratios against their
   targets:
     send-stop  ``shutdownbus send-stop`` of a tree under ``shutdownbus run``,
                from the command's start until every process is gone, against
                ``Child.stop()`` of the same tree (target: at most +50 ms);
     list       ``shutdownbus list`` (one tree registered) and ``--help``
                against ``python -c pass`` (target: at most 2.5x);
     spawn      spawn() + wait_ready() against Popen + one line (target: at
                most 2.5x), and the same with pyzmq's binding;
     many       200 members spawned from one parent against 200 Popen, one
                after the other and all at once (target: at most 2x);
   each with its floor: ``python -c`` importing what the command cannot do
   without (argparse and json; msgpack and libzmq through ctypes for
   send-stop, and pyzmq instead; each also with psutil, which the process
   trees use), and a child that imports msgpack, threading and libzmq
   through ctypes before its line; then the import profile (``-X importtime``) of a member (join + ready), of
   ``send-stop`` and of ``list``: ours, third-party, stdlib and the
   interpreter's own start, and the modules that cost the most, each
   third-party or stdlib package with everything it imported, under the
   module of ours that imported it first.

Linux only (pidfds, /proc).  Prints medians with min-max and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import psutil
import zmq

import shutdownbus
from shutdownbus._environment import ENV_ZMQ_BINDING

HERE = Path(__file__).parent
TREE = str(HERE / "_tree.py")
PY = sys.executable


# -- helpers -----------------------------------------------------------------


def wait_all_gone(pids: list[int], timeout: float = 60.0) -> None:
    """Block until every pid has exited (pidfds: no polling)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass
    try:
        end = time.monotonic() + timeout
        pending = list(fds)
        while pending:
            ready, _, _ = select.select(pending, [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError(f"{len(pending)} processes still running after {timeout} s")
            pending = [fd for fd in pending if fd not in ready]
    finally:
        for fd in fds:
            os.close(fd)


def tree_pids(root: int) -> list[int]:
    return [root] + [p.pid for p in psutil.Process(root).children(recursive=True)]


def start_tree(
    mode: str, depth: int, fanout: int | str
) -> tuple[Callable[[], None], list[int], Callable[[], None]]:
    """Start a tree; return (stop, pids, reap).  ``fanout``: see `_tree`."""
    args = [PY, TREE, mode, str(depth), str(fanout)]
    if mode == "bus":
        child = shutdownbus.spawn(args, ready_timeout=300)
        return (lambda: child.stop() and None), tree_pids(child.pid), lambda: None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, start_new_session=(mode == "plain"))
    assert proc.stdout is not None
    proc.stdout.read(1)
    pids = tree_pids(proc.pid)
    if mode == "signal":
        stop = lambda: os.kill(proc.pid, signal.SIGTERM)  # noqa: E731
    else:
        stop = lambda: os.killpg(proc.pid, signal.SIGTERM)  # noqa: E731

    def reap() -> None:
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        # killpg orphans the tree at once: its processes are re-parented to
        # this process (a subreaper, since it used spawn()) and stay zombies
        # until reaped here, where they would slow every later stop's look
        # at this process's children.
        for pid in pids[1:]:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass  # reaped by its own parent

    return stop, pids, reap


def stop_latency(mode: str, depth: int, fanout: int | str) -> float:
    stop, pids, reap = start_tree(mode, depth, fanout)
    start = time.perf_counter()
    stop()
    wait_all_gone(pids)
    took = time.perf_counter() - start
    reap()
    leftover = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not leftover, f"{mode}: {len(leftover)} processes left"
    return took


def summary(samples: list[float], unit: float = 1000.0) -> str:
    ms = [s * unit for s in samples]
    return f"{statistics.median(ms):8.1f}  ({min(ms):.1f}-{max(ms):.1f})"


# -- 1. stop latency -------------------------------------------------------------


#: Stop latency, shutdownbus against signal forwarding (at most, medians):
#: the targets of the stop-latency work (docs/performance.md).
STOP_TARGETS = {"chain, depth 10": 1.0, "111 processes": 0.9, "521 processes": 1.0, "fan-out 200 x depth 1": 1.0}


def bench_stop(reps: int, trees: list[tuple[str, int, int | str, int]]) -> dict[str, float]:
    """Each tree ``(label, depth, fanout, reps)`` stopped by each contender,
    interleaved; the ratio against its target where `STOP_TARGETS` has one.
    ``reps`` of 0 means the section's own."""
    print("\n1. Stop latency (ms, median (min-max)), request to last process gone")
    print(f"   {'tree':<24}{'bus':>24}{'signal':>24}{'killpg':>24}   bus/signal  bus/killpg  signal/killpg")
    medians = {}
    for label, depth, fanout, tree_reps in trees:
        samples: dict[str, list[float]] = {"bus": [], "signal": [], "plain": []}
        for _ in range(tree_reps or reps):
            for mode in samples:  # interleaved: A B C A B C ...
                samples[mode].append(stop_latency(mode, depth, fanout))
        med = {m: statistics.median(s) for m, s in samples.items()}
        ratio = med["bus"] / med["signal"]
        medians[label] = ratio
        target = STOP_TARGETS.get(label)
        verdict = "" if target is None else f"   (target: at most {target}x; {'met' if ratio <= target else 'NOT met'})"
        print(
            f"   {label:<24}{summary(samples['bus']):>24}{summary(samples['signal']):>24}"
            f"{summary(samples['plain']):>24}"
            f"   {ratio:9.2f}x {med['bus'] / med['plain']:9.2f}x"
            f" {med['signal'] / med['plain']:9.2f}x{verdict}"
        )
    return medians


def bench_depth(reps: int, depth: int) -> None:
    """A chain of ``depth`` members stopped with the default timeout: time
    against signal forwarding, and what the report says of every process."""
    bus: list[float] = []
    signal_times: list[float] = []
    outcomes: dict[str, int] = {}
    for _ in range(reps):
        child = shutdownbus.spawn([PY, TREE, "bus", str(depth), "1"], ready_timeout=300)
        pids = tree_pids(child.pid)
        start = time.perf_counter()
        report = child.stop()
        wait_all_gone(pids)
        bus.append(time.perf_counter() - start)
        for entry in report.entries:
            outcomes[entry.outcome] = outcomes.get(entry.outcome, 0) + 1
        signal_times.append(stop_latency("signal", depth, 1))
    ratio = statistics.median(bus) / statistics.median(signal_times)
    said = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    print(
        f"   {'chain, depth ' + str(depth):<24}{summary(bus):>24}{summary(signal_times):>24}{'':>24}   {ratio:9.2f}x"
        f"   reports: {said} (target: every process stopped)"
    )


# -- 2. spawn to ready -------------------------------------------------------------

READY_CHILD = "import shutdownbus\nshutdownbus.join()\nshutdownbus.ready()\nimport time\ntime.sleep(60)\n"
LINE_CHILD = "import sys\nsys.stdout.write('ready\\n')\nsys.stdout.flush()\nimport time\ntime.sleep(60)\n"


def bench_spawn(reps: int) -> float:
    bus, popen = [], []
    for _ in range(reps):
        start = time.perf_counter()
        child = shutdownbus.spawn([PY, "-c", READY_CHILD])
        child.wait_ready(60)
        bus.append(time.perf_counter() - start)
        child.stop()
        start = time.perf_counter()
        proc = subprocess.Popen([PY, "-c", LINE_CHILD], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()
        popen.append(time.perf_counter() - start)
        proc.kill()
        proc.wait()
        proc.stdout.close()
    extra = statistics.median(bus) - statistics.median(popen)
    print("\n2. Spawn to ready (ms, median (min-max))")
    print(
        f"   spawn()+wait_ready() {summary(bus)}   Popen+readline {summary(popen)}   difference {extra * 1000:.1f} ms"
    )
    return extra


# -- 3. per-member cost ---------------------------------------------------------------


def bench_cost() -> tuple[int, int, float]:
    member = shutdownbus.spawn([PY, "-c", READY_CHILD])
    member.wait_ready(60)
    plain = subprocess.Popen([PY, "-c", "import time\ntime.sleep(60)\n"])
    # The plain child is up once its interpreter reached the sleep: wait for its state.
    for _ in range(2000):
        if (
            psutil.Process(plain.pid).status() == psutil.STATUS_SLEEPING
            and len(psutil.Process(plain.pid).cmdline()) > 1
        ):
            break
        time.sleep(0.001)
    m, p = psutil.Process(member.pid), psutil.Process(plain.pid)
    threads, fds = m.num_threads() - p.num_threads(), m.num_fds() - p.num_fds()
    rss = (m.memory_info().rss - p.memory_info().rss) / 2**20
    member.stop()
    plain.kill()
    plain.wait()
    # What a member imports: the package, and what loads on its first use of
    # join (the package itself loads only its exceptions).
    code = "import shutdownbus\nshutdownbus.join\n"
    out = subprocess.run([PY, "-X", "importtime", "-c", code], capture_output=True, text=True)
    total = 0
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].startswith(" shutdownbus"):  # a top-level import (not indented)
            total += int(parts[1])
    print("\n3. Per-member cost (a member against a plain Python child)")
    print(f"   +{threads} threads, +{fds} fds, +{rss:.1f} MiB RSS; a member's imports: {total / 1000:.1f} ms")
    return threads, fds, rss


# -- 4. orphan detection -------------------------------------------------------------

ORPHAN_PARENT = """
import sys, shutdownbus, time
shutdownbus.join()
c = shutdownbus.spawn([sys.executable, "-c", sys.argv[1], sys.argv[2]], ready_timeout=60)
shutdownbus.ready()
time.sleep(600)
"""
ORPHAN_CHILD = """
import os, sys, time, shutdownbus
shutdownbus.join()
shutdownbus.ready()
try:
    time.sleep(600)
finally:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"%r\\n" % time.monotonic())
    os.close(fd)
"""


def bench_orphans(reps: int) -> float:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            path = os.path.join(tmp, f"t{i}")
            Path(path).touch()
            # stderr to /dev/null: the orphan's "the parent is gone" warning is expected here.
            parent = shutdownbus.spawn(
                [PY, "-c", ORPHAN_PARENT, ORPHAN_CHILD, path], ready_timeout=60, stderr=subprocess.DEVNULL
            )
            (child,) = psutil.Process(parent.pid).children()
            killed = time.monotonic()
            os.kill(parent.pid, signal.SIGKILL)
            child.wait(60)  # re-parented to us: we reap it
            samples.append(float(Path(path).read_text()) - killed)
            parent.stop()
    print("\n4. Orphan detection: SIGKILL of a member's parent to the member's cleanup (ms)")
    print(f"   {summary(samples)}  over {reps} runs")
    return statistics.median(samples)


# -- 5. scale --------------------------------------------------------------------------


def bench_scale(depth: int, fanout: int) -> None:
    me = psutil.Process()
    stop, pids, _ = start_tree("bus", depth, fanout)
    peak_fds, peak_threads = me.num_fds(), me.num_threads()
    start = time.perf_counter()
    stop()
    wait_all_gone(pids)
    took = time.perf_counter() - start
    peak_fds, peak_threads = max(peak_fds, me.num_fds()), max(peak_threads, me.num_threads())
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    print(f"\n5. Scale: a {len(pids)}-process tree (fan-out {fanout}, depth {depth})")
    print(f"   stopped in {took * 1000:.0f} ms; left: {len(left)}; root's fds {peak_fds}, threads {peak_threads}")


# -- 6. third-party servers ------------------------------------------------------------

SERVERS = {
    "gunicorn -w 4": ([str(Path(PY).parent / "gunicorn"), "-w", "4", "-b", "127.0.0.1:0", "wsgi_app:app"], 5),
    "uvicorn --workers 2": ([str(Path(PY).parent / "uvicorn"), "--workers", "2", "--port", "0", "asgi_app:app"], 4),
}
PROGRAMS = HERE.parent / "tests" / "programs"


def _wait_processes(pid: int, count: int) -> None:
    end = time.monotonic() + 60
    while len(psutil.Process(pid).children(recursive=True)) < count:
        if time.monotonic() > end:
            raise TimeoutError(f"pid {pid} did not start {count} processes")
        time.sleep(0.02)


def _some_moment_after(started: float) -> None:
    """A random moment once the server is older than the join grace: it has
    been serving, and will never join (a server a moment old still might)."""
    import random

    from shutdownbus._deadlines import JOIN_GRACE

    at = started + JOIN_GRACE + random.uniform(0, 0.5)  # noqa: S311 (a moment, not a secret)
    time.sleep(max(0.0, at - time.monotonic()))


def _timed_stop(pids: list[int], started: float, stop: Callable[[], object]) -> float:
    """After a random moment past the join grace: seconds from ``stop()`` until every one of ``pids`` is gone."""
    _some_moment_after(started)
    start = time.perf_counter()
    stop()
    wait_all_gone(pids)
    return time.perf_counter() - start


def server_stop(how: str, cmd: list[str], processes: int) -> float:
    """Start the server, wait for its workers and a random moment, stop it; seconds until all are gone."""
    from shutdownbus import _admin, _registry

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": PROGRAMS}
    if how == "run":
        started = time.monotonic()
        runner = subprocess.Popen([str(Path(PY).parent / "shutdownbus"), "run", "--name", "srv", "--", *cmd], **quiet)
        _wait_processes(runner.pid, processes)
        pids = tree_pids(runner.pid)
        entry = _registry.find("srv")
        took = _timed_stop(pids, started, lambda: _admin.send_stop(entry))
        runner.wait()
    elif how == "spawn":
        started = time.monotonic()
        child = shutdownbus.spawn(cmd, **quiet)
        _wait_processes(child.pid, processes - 1)
        pids = tree_pids(child.pid)
        took = _timed_stop(pids, started, child.stop)
    else:
        started = time.monotonic()
        server = subprocess.Popen(cmd, **quiet)
        _wait_processes(server.pid, processes - 1)
        pids = tree_pids(server.pid)
        took = _timed_stop(pids, started, server.terminate)
        server.wait()
    return took


def bench_servers(reps: int) -> None:
    print("\n6. Third-party servers that never join (ms, median (min-max)), request to last process gone")
    print(f"   {'server':<22}{'run + send-stop':>22}{'spawn + stop()':>22}{'kill -TERM':>22}   run/kill  spawn/kill")
    for label, (cmd, processes) in SERVERS.items():
        if not Path(cmd[0]).exists():
            print(f"   {label:<22}not installed (pip install -e '.[test]')")
            continue
        samples: dict[str, list[float]] = {"run": [], "spawn": [], "kill": []}
        for _ in range(reps):
            for how in samples:
                samples[how].append(server_stop(how, cmd, processes))
        med = {how: statistics.median(s) for how, s in samples.items()}
        print(
            f"   {label:<22}{summary(samples['run']):>22}{summary(samples['spawn']):>22}{summary(samples['kill']):>22}"
            f"   {med['run'] / med['kill']:7.2f}x {med['spawn'] / med['kill']:9.2f}x   (target: at most 1.2x)"
        )


# -- 9. non-members: stopped right after they are up, and a spawner killed hard ----------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def quick_stop(how: str, cmd: list[str], port: int, processes: int) -> float:
    """Start a server, wait until its workers run and it answers, stop it 0.3 s
    later (a harness that makes one request); seconds until all are gone."""
    from shutdownbus import _admin, _registry

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": PROGRAMS}
    if how == "run":
        script = str(Path(PY).parent / "shutdownbus")
        server = subprocess.Popen([script, "run", "--name", "quick", "--stop-signal", "TERM", "--", *cmd], **quiet)
        _wait_processes(server.pid, processes)
    else:
        server = subprocess.Popen(cmd, **quiet)
        _wait_processes(server.pid, processes - 1)
    end = time.monotonic() + 60
    while not _answers(port):
        if time.monotonic() > end:
            raise TimeoutError(f"{cmd[0]} does not answer on port {port}")
        time.sleep(0.01)
    pids = [server.pid, *tree_pids(server.pid)]
    time.sleep(0.3)
    start = time.perf_counter()
    if how == "run":
        _admin.send_stop(_registry.find("quick"))
    else:
        server.terminate()
    wait_all_gone(pids)
    took = time.perf_counter() - start
    server.wait()
    return took


def spawner_killed(children: int) -> float:
    """A parent that spawned ``children`` non-members is SIGKILLed: seconds until the last of them is gone."""
    code = (
        "import sys, shutdownbus\n"
        f"kids = [shutdownbus.spawn([sys.executable, '-c', 'import time; time.sleep(300)'], joins=False)"
        f" for _ in range({children})]\n"
        "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen([PY, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    start = time.perf_counter()
    parent.kill()
    wait_all_gone(pids)
    took = time.perf_counter() - start
    parent.wait()
    return took


def bench_non_members(reps: int) -> None:
    print("\n9. Non-members (ms, median (min-max))")
    print("   a. declared (run --stop-signal TERM) and stopped 0.3 s after it answers; run + send-stop vs kill -TERM")
    gunicorn = Path(PY).parent / "gunicorn"
    servers = {"gunicorn -w 3": ([str(gunicorn), "-w", "3", "-b", "127.0.0.1:{port}", "wsgi_app:app"], 4)}
    node = shutil.which("node")
    if node:
        servers["node http server"] = ([node, str(PROGRAMS / "node_server.js"), os.devnull, "{port}"], 1)
    for label, (template, processes) in servers.items():
        if not Path(template[0]).exists():
            print(f"   {label:<22}not installed")
            continue
        samples: dict[str, list[float]] = {"run": [], "kill": []}
        for _ in range(reps):
            for how in samples:  # interleaved
                port = _free_port()
                cmd = [arg.replace("{port}", str(port)) for arg in template]
                samples[how].append(quick_stop(how, cmd, port, processes))
        ratio = statistics.median(samples["run"]) / statistics.median(samples["kill"])
        verdict = "met" if ratio <= 1.2 else "NOT met"
        print(
            f"   {label:<22}{summary(samples['run']):>22}{summary(samples['kill']):>22}"
            f"   {ratio:5.2f}x (target: at most 1.2x: {verdict})"
        )
    if not sys.platform.startswith("linux"):
        print("   b. a spawner killed hard: Linux only (the kernel's parent-death signal)")
        return
    took = [spawner_killed(5) for _ in range(reps)]
    print(f"   b. a spawner of 5 non-members SIGKILLed: last of them gone after {summary(took)}")


# -- 7. as a container's init ------------------------------------------------------------

INITS = {
    "shutdownbus run": [str(Path(PY).parent / "shutdownbus"), "run", "--"],
    "tini": ["tini", "--"],
    "tini -g": ["tini", "-g", "--"],
}


def _namespace_init(init: list[str], cmd: list[str], **kwargs: object) -> tuple[subprocess.Popen[str], psutil.Process]:
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    outer = subprocess.Popen([*unshare, *init, *cmd], text=True, **kwargs)  # type: ignore[call-overload]
    end = time.monotonic() + 60
    while not psutil.Process(outer.pid).children():
        if time.monotonic() > end:
            raise TimeoutError("unshare started nothing")
        time.sleep(0.01)
    return outer, psutil.Process(outer.pid).children()[0]


def init_zombies(init: list[str]) -> int:
    outer, pid1 = _namespace_init(init, [str(PROGRAMS / "orphans.sh")], stdout=subprocess.PIPE)
    assert outer.stdout is not None and outer.stdout.readline() == "orphans made\n"
    time.sleep(0.5)  # each orphan lives 0.1 s
    zombies = 0
    for child in pid1.children():
        with contextlib.suppress(psutil.Error):
            zombies += child.status() == psutil.STATUS_ZOMBIE
    pid1.kill()
    outer.wait()
    outer.stdout.close()
    return zombies


def init_stop(init: list[str]) -> tuple[float, int]:
    cmd, processes = SERVERS["gunicorn -w 4"]
    started = time.monotonic()
    outer, pid1 = _namespace_init(init, cmd, cwd=PROGRAMS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_processes(pid1.pid, processes)
    pids = tree_pids(pid1.pid)
    return _timed_stop(pids, started, pid1.terminate), outer.wait()


def bench_init(reps: int) -> None:
    import shutil

    print("\n7. As a container's init (pid 1 of a PID namespace)")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("   skipped: needs root and util-linux's unshare")
        return
    if shutil.which("tini") is None:
        print("   skipped: tini is not installed (apt-get install tini)")
        return
    print(f"   {'init':<18}{'zombies left':>14}{'SIGTERM to gone (ms), gunicorn -w 4':>40}{'exit status':>14}")
    for label, init in INITS.items():
        zombies = init_zombies(init)
        stops = [init_stop(init) for _ in range(reps)]
        statuses = sorted({status for _, status in stops})
        print(f"   {label:<18}{zombies:>14}{summary([t for t, _ in stops]):>40}{statuses!s:>14}")



# -- 8. start-up, as users run it ------------------------------------------------------------

ROOT = HERE.parent
#: Also the working directory of the venv's processes: ``python -c`` puts its
#: working directory first on sys.path, where the work tree's shutdownbus/
#: would shadow the installed one.
BENCH_VENV = ROOT / "build" / "bench-venv"
DEPENDENCIES = ("pyzmq", "msgpack", "psutil")
#: Issue 23's targets (the spawn's was 2x in issue 16's).
STARTUP_TARGETS = {"send-stop": 0.050, "list": 2.5, "spawn": 2.5, "many": 2.0}
#: What a member cannot do without: the protocol's msgpack, the bus's thread
#: and ZeroMQ (libzmq through ctypes, `_libzmq`).
MEMBER_FLOOR = "msgpack, threading, shutdownbus._libzmq"


def bench_venv() -> Path:
    """build/bench-venv with a wheel of the package as it is now; returns its bin directory.

    The wheel is built from a copy of the sources (setuptools' build/lib in
    the work tree may hold modules removed since), with ``pip wheel``, and
    installed by this pip (a launcher as current pip writes it) with the
    dependencies at the versions this process runs with.  The venv is made
    anew only when the wheel's content or those versions changed.
    """
    import shutil

    python = BENCH_VENV / "bin" / "python"
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in DEPENDENCIES]
    with tempfile.TemporaryDirectory(prefix="sbb-wheel-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "shutdownbus", src / "shutdownbus", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, src / name)
        _quiet([PY, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", tmp, str(src)])
        (wheel,) = Path(tmp).glob("shutdownbus-*.whl")
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as archive:  # the content: a wheel's bytes change with its timestamps
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                digest.update(info.filename.encode() + b"\0" + archive.read(info) + b"\0")
        digest.update(" ".join(pins).encode())
        stamp = BENCH_VENV / ".wheel-digest"
        if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
            return python.parent
        shutil.rmtree(BENCH_VENV, ignore_errors=True)
        _quiet([PY, "-m", "venv", "--without-pip", str(BENCH_VENV)])
        install = ["install", "--disable-pip-version-check", "--no-warn-script-location", str(wheel), *pins]
        # Without PYTHONPATH: a work tree on it holds shutdownbus's metadata, and pip would take that as installed.
        _quiet([PY, "-m", "pip", "--python", str(python), *install], env={**os.environ, "PYTHONPATH": ""})
        stamp.write_text(digest.hexdigest())
    return python.parent


def _quiet(cmd: list[str], env: dict[str, str] | None = None) -> None:
    """Run ``cmd``; its output only if it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"bench: {' '.join(cmd[:5])} ... failed ({done.returncode})")


def run_tree(venv: Path, name: str, depth: int, fanout: int) -> tuple[list[int], Callable[[], None]]:
    """``shutdownbus run --name NAME -- _tree.py bus ...`` from the venv, once its whole tree is ready
    (run's READY=1 on a notify socket, sent after the tree's ready()); returns
    the tree's pids and what waits for run's exit once the tree was stopped."""
    import socket
    import uuid

    address = f"@sbb-{uuid.uuid4().hex}"
    tree_cmd = [str(venv / "python"), TREE, "bus", str(depth), str(fanout)]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:])
    sock.settimeout(120)
    runner = subprocess.Popen(
        [str(venv / "shutdownbus"), "run", "--name", name, "--ready-timeout", "120", "--", *tree_cmd],
        env={**os.environ, "NOTIFY_SOCKET": address},
    )
    while b"READY=1" not in sock.recv(4096):
        pass

    def finish() -> None:
        runner.wait()
        sock.close()  # open until run's exit: it notifies its stop too

    return tree_pids(runner.pid), finish


def startup_stop(venv: Path, how: str, depth: int, fanout: int) -> float:
    """Seconds from the request until every process of the tree is gone (and
    for the command line, until the command returned)."""
    from shutdownbus import _admin, _registry

    if how == "spawn":
        child = shutdownbus.spawn([str(venv / "python"), TREE, "bus", str(depth), str(fanout)], ready_timeout=120)
        pids = tree_pids(child.pid)
        start = time.perf_counter()
        child.stop()
        wait_all_gone(pids)
        return time.perf_counter() - start
    pids, finish = run_tree(venv, "bench-stop", depth, fanout)
    start = time.perf_counter()
    if how == "send-stop":
        subprocess.run([str(venv / "shutdownbus"), "send-stop", "bench-stop"], stdout=subprocess.DEVNULL, check=True)
    else:  # the admin's stop, in this process: send-stop without its own start-up
        _admin.send_stop(_registry.find("bench-stop"))
    wait_all_gone(pids)
    took = time.perf_counter() - start
    finish()
    return took


def time_command(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, cwd=BENCH_VENV)
    return time.perf_counter() - start


def import_profile(stderr: str, interpreter: set[str]) -> tuple[dict[str, float], list[tuple[float, str, str]]]:
    """Sum up ``-X importtime``'s lines (milliseconds).

    Returns:
        The import time of ours (each of our modules' own time), of
        third-party and stdlib packages (each with everything it imported),
        and of the interpreter's own start (what ``python -c pass`` imports);
        and those items, costliest first: (ms, module, the module of ours
        that imported it first, or "").
    """
    pending: dict[int, list[tuple[int, int, str, list[object]]]] = {}
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        depth = (len(fields[2]) - len(fields[2].lstrip()) - 1) // 2
        # Postorder: a module's line comes after its imports' (one level deeper).
        row = (int(fields[0]), int(fields[1]), fields[2].strip(), pending.pop(depth + 1, []))
        pending.setdefault(depth, []).append(row)  # type: ignore[arg-type]
    totals = {"ours": 0.0, "third-party": 0.0, "stdlib": 0.0, "interpreter": 0.0}
    items: list[tuple[float, str, str]] = []

    def walk(rows: list[tuple[int, int, str, list[object]]], importer: str) -> None:
        for own, cumulative, name, children in rows:
            top = name.partition(".")[0]
            if top == "shutdownbus":
                totals["ours"] += own / 1000
                items.append((own / 1000, name, importer))
                walk(children, name)  # type: ignore[arg-type]
                continue
            kind = "stdlib" if top in sys.stdlib_module_names else "third-party"
            if not importer and name in interpreter:
                kind = "interpreter"
            totals[kind] += cumulative / 1000
            if kind != "interpreter":
                items.append((cumulative / 1000, name, importer))

    walk(pending.get(0, []), "")
    return totals, sorted(items, reverse=True)


def print_profile(label: str, runs: list[str], interpreter: set[str], top: int) -> None:
    """The median over ``runs`` (each one's ``-X importtime`` output) of each total and item."""
    totals: dict[str, list[float]] = {}
    items: dict[tuple[str, str], list[float]] = {}
    for stderr in runs:
        run_totals, run_items = import_profile(stderr, interpreter)
        for kind, ms in run_totals.items():
            totals.setdefault(kind, []).append(ms)
        for ms, name, importer in run_items:
            items.setdefault((name, importer), []).append(ms)
    total = statistics.median([sum(t) for t in zip(*totals.values(), strict=True)])
    parts = ", ".join(f"{kind} {statistics.median(ms):.1f}" for kind, ms in totals.items())
    print(f"   {label}: {total:.1f} ms of imports ({parts})")
    ranked = sorted(((statistics.median(ms), name, importer) for (name, importer), ms in items.items()), reverse=True)
    for ms, name, importer in ranked[:top]:
        print(f"      {ms:6.1f}  {name}" + (f"  (by {importer})" if importer and importer != name else ""))


def profiles(venv: Path, top: int, runs: int) -> None:
    python = str(venv / "python")
    base = subprocess.run(
        [python, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True, cwd=BENCH_VENV
    )
    interpreter = {line.split("|")[2].strip() for line in base.stderr.splitlines() if line.count("|") == 2}
    print(f"\n   Import profiles (-X importtime, ms, median of {runs}; a package counts with everything it imported):")
    members = []
    for _ in range(runs):
        member = shutdownbus.spawn(
            [python, "-X", "importtime", "-c", READY_CHILD], stderr=subprocess.PIPE, text=True, cwd=BENCH_VENV
        )
        member.wait_ready(60)
        member.stop()
        assert member.stderr is not None
        members.append(member.stderr.read())
        member.stderr.close()
    print_profile("member (import, join, ready)", members, interpreter, top)
    profiled = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    outputs: dict[str, list[str]] = {"list": [], "send-stop": []}
    for _ in range(runs):
        _, finish = run_tree(venv, "bench-stop", 1, 1)
        for command in (["list"], ["send-stop", "bench-stop"]):
            done = subprocess.run(
                [str(venv / "shutdownbus"), *command], env=profiled, capture_output=True, text=True, check=True
            )
            outputs[command[0]].append(done.stderr)
        finish()
    for command, stderrs in outputs.items():
        print_profile(f"shutdownbus {command}", stderrs, interpreter, top)


def bench_startup(reps: int, tree: tuple[str, int, int], top: int, profile_runs: int, many: int) -> None:
    venv = bench_venv()
    python = str(venv / "python")
    versions = subprocess.run(
        [python, "-c", "import sys, zmq; print(sys.version.split()[0], zmq.__version__)"],
        capture_output=True, text=True, check=True, cwd=BENCH_VENV,
    ).stdout.split()
    print(f"\n8. Start-up, as users run it (ms, median (min-max)): a wheel in {BENCH_VENV.relative_to(ROOT)}"
          f" (Python {versions[0]}, pyzmq {versions[1]})")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    label, depth, fanout = tree
    stops: dict[str, list[float]] = {"send-stop": [], "admin": [], "spawn": []}
    for _ in range(reps):
        for how in stops:
            stops[how].append(startup_stop(venv, how, depth, fanout))
    med = {how: statistics.median(s) for how, s in stops.items()}
    extra, target = med["send-stop"] - med["spawn"], STARTUP_TARGETS["send-stop"]
    print(f"   {label}: run + send-stop {summary(stops['send-stop'])}   run + the admin's stop in-process"
          f" {summary(stops['admin'])}   spawn + Child.stop() {summary(stops['spawn'])}")
    print(f"   send-stop - Child.stop(): {extra * 1000:+.1f} ms"
          f" (target: at most +{target * 1000:.0f}; {verdict(extra <= target)}): the command's own start-up"
          f" {(med['send-stop'] - med['admin']) * 1000:+.1f}, run's level {(med['admin'] - med['spawn']) * 1000:+.1f}")

    # The floors: what the interpreter costs with the modules that a command
    # line (argparse, json) and the bus (msgpack; libzmq through ctypes) cannot do without;
    # and with psutil, which the process trees (_tree) use to tell a root
    # from a process that reused its pid, to watch a tree and to signal it.
    _, finish = run_tree(venv, "bench-list", 1, 2)  # list has a tree to show
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "shutdownbus list": [str(venv / "shutdownbus"), "list"],
        "shutdownbus --help": [str(venv / "shutdownbus"), "--help"],
        "floor of list, --help": [python, "-c", "import argparse, json"],
        "... with psutil": [python, "-c", "import argparse, json, psutil"],
        "floor of send-stop": [python, "-c", "import argparse, json, msgpack, shutdownbus._libzmq"],
        "... with psutil ": [python, "-c", "import argparse, json, msgpack, shutdownbus._libzmq, psutil"],
        "... with pyzmq": [python, "-c", "import argparse, json, msgpack, zmq"],
    }
    starts: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(reps * 2):
        for name, cmd in commands.items():
            starts[name].append(time_command(cmd))
    bare = statistics.median(starts["python -c pass"])
    for name, samples in starts.items():
        ratio = statistics.median(samples) / bare
        if name.startswith("shutdownbus"):
            target = STARTUP_TARGETS["list"]
            note = f"{ratio:.2f}x (target: at most {target}x; {verdict(ratio <= target)})"
        elif name.startswith(("floor", "...")):
            note = f"{ratio:.2f}x  (python -c 'import {commands[name][-1].removeprefix('import ')}')"
        else:
            note = ""
        print(f"   {name:<24}{summary(samples)}   {note}")
    floor, with_psutil = (statistics.median(starts[name]) for name in ("floor of send-stop", "... with psutil "))
    own, level = med["send-stop"] - med["admin"], med["admin"] - med["spawn"]
    print(f"   send-stop's floor: its command line cannot start in less than {floor * 1000:.1f} ms"
          f" (the interpreter and the imports above; {with_psutil * 1000:.1f} with psutil),"
          f" against its own start-up of {own * 1000:.1f};"
          f" with run's level as above, send-stop - Child.stop() cannot be less than {(floor + level) * 1000:+.1f}")
    subprocess.run([str(venv / "shutdownbus"), "send-stop", "bench-list"], stdout=subprocess.DEVNULL, check=True)
    finish()

    children: dict[str, list[float]] = {
        "spawn()+wait_ready()": [],
        "pyzmq": [],  # the same with pyzmq's binding
        "Popen+readline": [],
        "floor": [],  # Popen + readline of a child that imports what a member cannot do without
    }
    floor_child = LINE_CHILD.replace("import sys\n", f"import sys\nimport {MEMBER_FLOOR}\n", 1)
    for _ in range(reps * 2):
        for name, env in (("spawn()+wait_ready()", None), ("pyzmq", {**os.environ, ENV_ZMQ_BINDING: "pyzmq"})):
            start = time.perf_counter()
            child = shutdownbus.spawn([python, "-c", READY_CHILD], cwd=BENCH_VENV, env=env)
            child.wait_ready(60)
            children[name].append(time.perf_counter() - start)
            child.stop()
        for name, code in (("Popen+readline", LINE_CHILD), ("floor", floor_child)):
            start = time.perf_counter()
            proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, cwd=BENCH_VENV)
            assert proc.stdout is not None
            proc.stdout.readline()
            children[name].append(time.perf_counter() - start)
            proc.kill()
            proc.wait()
            proc.stdout.close()
    plain = statistics.median(children["Popen+readline"])
    ratio, floor, pyzmq = (
        statistics.median(children[name]) / plain for name in ("spawn()+wait_ready()", "floor", "pyzmq")
    )
    print(f"   spawn()+wait_ready()    {summary(children['spawn()+wait_ready()'])}   Popen+readline"
          f" {summary(children['Popen+readline'])}   {ratio:.2f}x"
          f" (target: at most {STARTUP_TARGETS['spawn']}x; {verdict(ratio <= STARTUP_TARGETS['spawn'])})")
    print(f"   floor of a member       {summary(children['floor'])}   {floor:.2f}x"
          f"  (Popen+readline of a child that imports {MEMBER_FLOOR})")
    print(f"   with pyzmq              {summary(children['pyzmq'])}   {pyzmq:.2f}x"
          f"  (spawn()+wait_ready() of a member with {ENV_ZMQ_BINDING}=pyzmq)")
    bench_many_spawns(python, many, max(1, reps // 3))
    profiles(venv, top, profile_runs)


def bench_many_spawns(python: str, count: int, reps: int) -> None:
    """``count`` members spawned from one parent against ``count`` Popen,
    two ways: each waited for before the next is started (its start-up as
    the parent's children pile up), and all started, then all waited for
    (workers that a server starts at once); every child lives to the end."""
    took: dict[str, list[float]] = {name: [] for name in MANY_WAYS}
    for _ in range(reps):
        for name in MANY_WAYS:
            took[name].append(_many(python, count, *name.split(", ")))
    print(f"   {count} children of one parent (s, median (min-max), {reps} each)")
    for way in ("one after the other", "all at once"):
        members, popen = (statistics.median(took[f"{kind}, {way}"]) for kind in ("spawn", "Popen"))
        target = STARTUP_TARGETS["many"]
        print(f"     {way + ':':<21}spawn()+wait_ready() {members:6.2f} s ({min(took[f'spawn, {way}']):.2f}-"
              f"{max(took[f'spawn, {way}']):.2f})   Popen+readline {popen:6.2f} s   {members / popen:.2f}x"
              f" (target: at most {target}x; {'met' if members / popen <= target else 'NOT met'})")


MANY_WAYS = [f"{kind}, {way}" for way in ("one after the other", "all at once") for kind in ("spawn", "Popen")]


def _many(python: str, count: int, kind: str, way: str) -> float:
    """Seconds to start ``count`` children and see each ready; then ends them."""
    children: list[shutdownbus.Child] = []
    plain: list[subprocess.Popen[bytes]] = []

    def wait(child: shutdownbus.Child | subprocess.Popen[bytes]) -> None:
        if isinstance(child, shutdownbus.Child):
            child.wait_ready(120)
        else:
            assert child.stdout is not None
            child.stdout.readline()

    start = time.perf_counter()
    try:
        for _ in range(count):
            if kind == "spawn":
                children.append(shutdownbus.spawn([python, "-c", READY_CHILD], cwd=BENCH_VENV))
            else:
                plain.append(subprocess.Popen([python, "-c", LINE_CHILD], stdout=subprocess.PIPE, cwd=BENCH_VENV))
            if way == "one after the other":
                wait(children[-1] if children else plain[-1])
        if way == "all at once":
            for child in [*children, *plain]:
                wait(child)
        return time.perf_counter() - start
    finally:
        for child in children:
            child.stop()
        for proc in plain:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="shutdownbus benchmarks")
    parser.add_argument("--quick", action="store_true", help="small trees, few repetitions (a smoke run)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument(
        "--section",
        type=int,
        action="append",
        choices=range(1, 10),
        metavar="N",
        help="run only section N (repeatable; default: all), e.g. --section 8 for the start-up",
    )
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    sections = set(args.section or range(1, 10))
    print(
        f"shutdownbus {shutdownbus.__version__}; Python {platform.python_version()}; libzmq {zmq.zmq_version()};"
        f" {os.cpu_count()} cores; {psutil.virtual_memory().total / 2**30:.0f} GiB; {platform.platform()}"
    )
    trees: list[tuple[str, int, int | str, int]]
    if args.quick:
        trees = [("chain, depth 4", 4, 1, 0), ("fan-out 4 x depth 2", 2, 4, 0)]
    else:
        # The two big trees take some 20 s each to start: 3 repetitions.
        trees = [
            ("chain, depth 10", 10, 1, 0),
            ("111 processes", 2, 10, 0),
            ("521 processes", 3, "8,8,7", min(reps, 3)),
            ("fan-out 200 x depth 1", 1, 200, min(reps, 3)),
        ]
    if 1 in sections:
        bench_stop(reps, trees)
        bench_depth(2 if args.quick else 3, 20 if args.quick else 50)
    if 2 in sections:
        bench_spawn(reps * 2)
    if 3 in sections:
        bench_cost()
    if 4 in sections:
        bench_orphans(3 if args.quick else 10)
    if 5 in sections:
        bench_scale(*((2, 5) if args.quick else (3, 7)))
    if 6 in sections:
        bench_servers(3 if args.quick else 9)
    if 7 in sections:
        bench_init(3 if args.quick else 7)
    if 8 in sections:
        if args.quick:
            bench_startup(args.reps or 3, ("fan-out 2 x depth 1", 1, 2), top=4, profile_runs=1, many=20)
        else:
            bench_startup(args.reps or 11, ("fan-out 4 x depth 2", 2, 4), top=10, profile_runs=5, many=200)
    if 9 in sections:
        bench_non_members(3 if args.quick else 9)


if __name__ == "__main__":
    os.environ.setdefault("SHUTDOWNBUS_RUNTIME_DIR", tempfile.mkdtemp(prefix="sbb-"))
    main()
