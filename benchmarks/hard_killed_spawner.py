"""A spawner killed hard: how long its non-member descendants outlive it.

    .venv/bin/python benchmarks/hard_killed_spawner.py [--rounds N] [--spawned]
    tools/windows/run-python.sh benchmarks/hard_killed_spawner.py    (the same under wine)

Each round starts tests/programs/hard_killed_spawner.py (a member M with a
member child and a plain subprocess, and a non-member with a grandchild
below it), waits until all of them run, kills the spawner (SIGKILL;
Windows: TerminateProcess) and takes two times from the kill: until the
last non-member descendant is gone, and until every descendant is gone (the
members stop on ``parent-lost`` with their cleanup first).  A process still
running 10 s after the kill is counted as left (and killed).  Prints the
median and the maximum of each.

Started with ``subprocess.Popen``, the spawner has no spawner of ours above
it: its guard process ends what its children leave behind (Linux:
``_guard``).  With --spawned, this process starts the spawner with
``shutdownbus.spawn`` (declared not to join) instead: it is then the
nearest subreaper, to which the kernel re-parents those remains, and it
ends them itself (Linux: ``_remains``).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROGRAMS = Path(__file__).resolve().parent.parent / "tests" / "programs"
LEFT_AFTER = 10.0


def gone_by(procs: list[psutil.Process], t0: float) -> tuple[float | None, list[psutil.Process]]:
    """Seconds from ``t0`` until the last of ``procs`` is gone, or None and those still running.

    A zombie has exited: it counts as gone.  (What is re-parented to init
    becomes one, and an init that does not reap, as in some containers,
    would keep it so: ``psutil.wait_procs`` waits for it to be reaped.)
    """
    alive = list(procs)
    while alive and time.monotonic() < t0 + LEFT_AFTER:
        alive = [p for p in alive if running(p)]
        if alive:
            time.sleep(0.001)
    return (None, alive) if alive else (time.monotonic() - t0, [])


def running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def one_round(log: str, spawned: bool) -> tuple[float | None, float | None]:
    import shutdownbus

    start = functools.partial(shutdownbus.spawn, joins=False) if spawned else subprocess.Popen
    spawner = start(
        [sys.executable, str(PROGRAMS / "hard_killed_spawner.py"), log],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    below: list[psutil.Process] = []
    try:
        assert spawner.stdout is not None and spawner.stdout.readline() == "ready\n"
        members = {int(line.split()[2]) for line in Path(log).read_text().splitlines() if " started " in line}
        plain = {int(line.split()[2]) for line in Path(log).read_text().splitlines() if " plain " in line}
        below = psutil.Process(spawner.pid).children(recursive=True)
        non_members = [p for p in below if p.pid not in members | plain]
        t0 = time.monotonic()
        spawner.kill()
        spawner.wait()
        non_member_time, _ = gone_by(non_members, t0)
        all_time, _ = gone_by(below, t0)
        return non_member_time, all_time
    finally:
        for p in below:
            try:
                p.kill()
            except psutil.Error:
                pass
        if spawner.poll() is None:
            spawner.kill()
        spawner.wait()
        for stream in (spawner.stdin, spawner.stdout):
            if stream is not None:
                stream.close()


def describe(times: list[float | None]) -> str:
    done = [t for t in times if t is not None]
    left = len(times) - len(done)
    text = f"median {statistics.median(done) * 1000:.0f} ms, max {max(done) * 1000:.0f} ms" if done else "-"
    return text + (f", LEFT RUNNING in {left}/{len(times)} rounds" if left else "")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--spawned", action="store_true", help="start the spawner with shutdownbus.spawn")
    args = p.parse_args()
    non_members: list[float | None] = []
    everyone: list[float | None] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            log = os.path.join(tmp, f"log{i}")
            a, b = one_round(log, args.spawned)
            non_members.append(a)
            everyone.append(b)
    how = "spawned by this process" if args.spawned else "started with Popen"
    print(f"{sys.platform}, {args.rounds} rounds, the spawner {how}; from its kill until gone:")
    print(f"  the last non-member descendant: {describe(non_members)}")
    print(f"  every descendant (members stop on parent-lost first): {describe(everyone)}")


if __name__ == "__main__":
    main()
