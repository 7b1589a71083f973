"""shutdownbus benchmarks, side by side with signals: ``make bench`` / ``make bench-quick``.

    python benchmarks/bench.py [--quick] [--reps N]

1. Stop latency, from the stop request at the root until every process of
   the tree is gone (watched with pidfds, not by trusting the root), for a
   chain of depth 10, fan-out 10 x depth 2 (111 processes) and fan-out 20 x
   depth 1; contenders interleaved A B C A B C ...:
     bus     Child.stop() on the root; every member has a trivial cleanup;
     signal  the reference article's SIGTERM forwarding, ending in sys.exit();
     killpg  the floor: os.killpg(SIGTERM) on a tree with the default action.
2. Spawn to ready: spawn() + wait_ready() against Popen + reading one line.
3. Per-member cost: threads, fds and RSS of a member against a plain child;
   the import time of shutdownbus in a child.
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

Linux only (pidfds, /proc).  Prints medians with min-max and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import zmq

import shutdownbus

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


def start_tree(mode: str, depth: int, fanout: int) -> tuple[Callable[[], None], list[int], Callable[[], None]]:
    """Start a tree; return (stop, pids, reap)."""
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


def stop_latency(mode: str, depth: int, fanout: int) -> float:
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


def bench_stop(reps: int, trees: list[tuple[str, int, int]]) -> dict[str, float]:
    print("\n1. Stop latency (ms, median (min-max)), request to last process gone")
    print(f"   {'tree':<24}{'bus':>24}{'signal':>24}{'killpg':>24}   bus/signal  bus/killpg  signal/killpg")
    medians = {}
    for label, depth, fanout in trees:
        samples: dict[str, list[float]] = {"bus": [], "signal": [], "plain": []}
        for _ in range(reps):
            for mode in samples:  # interleaved: A B C A B C ...
                samples[mode].append(stop_latency(mode, depth, fanout))
        med = {m: statistics.median(s) for m, s in samples.items()}
        medians[label] = med["bus"] / med["signal"]
        print(
            f"   {label:<24}{summary(samples['bus']):>24}{summary(samples['signal']):>24}"
            f"{summary(samples['plain']):>24}"
            f"   {med['bus'] / med['signal']:9.2f}x {med['bus'] / med['plain']:9.2f}x"
            f" {med['signal'] / med['plain']:9.2f}x"
        )
    return medians


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
    out = subprocess.run([PY, "-X", "importtime", "-c", "import shutdownbus"], capture_output=True, text=True)
    total = 0
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "shutdownbus":
            total = int(parts[1])
    print("\n3. Per-member cost (a member against a plain Python child)")
    print(f"   +{threads} threads, +{fds} fds, +{rss:.1f} MiB RSS; import shutdownbus: {total / 1000:.1f} ms")
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
        _some_moment_after(started)
        start = time.perf_counter()
        _admin.send_stop(entry)
        wait_all_gone(pids)
        took = time.perf_counter() - start
        runner.wait()
    elif how == "spawn":
        started = time.monotonic()
        child = shutdownbus.spawn(cmd, **quiet)
        _wait_processes(child.pid, processes - 1)
        pids = tree_pids(child.pid)
        _some_moment_after(started)
        start = time.perf_counter()
        child.stop()
        wait_all_gone(pids)
        took = time.perf_counter() - start
    else:
        started = time.monotonic()
        server = subprocess.Popen(cmd, **quiet)
        _wait_processes(server.pid, processes - 1)
        pids = tree_pids(server.pid)
        _some_moment_after(started)
        start = time.perf_counter()
        server.terminate()
        wait_all_gone(pids)
        took = time.perf_counter() - start
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
    _some_moment_after(started)
    start = time.perf_counter()
    pid1.terminate()
    wait_all_gone(pids)
    took = time.perf_counter() - start
    return took, outer.wait()


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


def main() -> None:
    parser = argparse.ArgumentParser(description="shutdownbus benchmarks")
    parser.add_argument("--quick", action="store_true", help="small trees, few repetitions (a smoke run)")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    print(
        f"shutdownbus {shutdownbus.__version__}; Python {platform.python_version()}; libzmq {zmq.zmq_version()};"
        f" {os.cpu_count()} cores; {psutil.virtual_memory().total / 2**30:.0f} GiB; {platform.platform()}"
    )
    if args.quick:
        trees = [("chain, depth 4", 4, 1), ("fan-out 4 x depth 2", 2, 4)]
    else:
        trees = [("chain, depth 10", 10, 1), ("fan-out 10 x depth 2", 2, 10), ("fan-out 20 x depth 1", 1, 20)]
    bench_stop(reps, trees)
    bench_spawn(reps * 2)
    bench_cost()
    bench_orphans(3 if args.quick else 10)
    if args.quick:
        bench_scale(2, 5)
    else:
        bench_scale(3, 7)
    bench_servers(3 if args.quick else 9)
    bench_init(3 if args.quick else 7)


if __name__ == "__main__":
    os.environ.setdefault("SHUTDOWNBUS_RUNTIME_DIR", tempfile.mkdtemp(prefix="sbb-"))
    main()
