"""Load, with nothing lost: many spawn/stop rounds of big trees, many cycles of one child.

    .venv/bin/python benchmarks/stress.py [--rounds N] [--fanout F] [--depth D] [--cycles C]

Defaults (the full size of issue 6): 20 rounds of a tree of fan-out 10 and
depth 2 (1 + 10 + 100 = 111 processes), then 1000 sequential spawn/stop
cycles of one child.  For CI: ``--rounds 2 --fanout 3 --depth 2 --cycles 50``.

After every round and at the end of the cycles it checks, with psutil, that
no descendant of this process is left running, and compares this process's
open file descriptors and threads with their level after the first round (or
the first cycles): any growth fails.  RSS growth is reported, not judged
(the allocator keeps memory it once used).  Every stop report must be ok and
list every process of the tree.  Exit status 1 on any failure.

Each member spawns all its children first and then waits until each is ready,
so a tree starts in time proportional to its depth, not its size.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import threading
import time

import shutdownbus


def member(depth: int, fanout: int) -> None:
    """One member of the tree: join, spawn children, be ready, wait for the stop."""
    shutdownbus.join()
    kids = []
    if depth > 0:
        cmd = [sys.executable, __file__, "--member", str(depth - 1), str(fanout)]
        kids = [shutdownbus.spawn(cmd, stop_timeout=30) for _ in range(fanout)]
        for kid in kids:
            kid.wait_ready(120)
    try:
        shutdownbus.ready()
        time.sleep(3600)
    except shutdownbus.StopRequested:
        pass


def tree_size(fanout: int, depth: int) -> int:
    return sum(fanout**level for level in range(depth + 1))


class Probe:
    """This process's resources and what is left below it."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()

    def sample(self, base: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
        """fds, threads and RSS, once the bus thread has closed the channels of stopped children.

        Closing is queued on the bus thread and finished by libzmq's own
        threads, so with ``base`` a count above it is looked at again a few
        times (a leak stays; a socket being closed goes).
        """
        from shutdownbus import _member

        for _ in range(50):
            gc.collect()
            _member.get_bus().call_and_wait(lambda: None)  # every queued close has run
            now = self.descriptors(), self.proc.num_threads(), self.proc.memory_info().rss
            if base is None or (now[0] <= base[0] and now[1] <= base[1]):
                return now
            threading.Event().wait(0.01)
        return now

    def descriptors(self) -> int:
        """Open file descriptors; on Windows, open handles (sockets, events, files, threads...)."""
        count = getattr(self.proc, "num_fds", None) or self.proc.num_handles
        return int(count())

    def leftovers(self) -> tuple[list[int], int]:
        """Descendants still running, and the number of zombies among our children."""
        import psutil

        running, zombies = [], 0
        for p in self.proc.children(recursive=True):
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    zombies += 1
                else:
                    running.append(p.pid)
            except psutil.Error:
                pass
        return running, zombies


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--member":
        member(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fanout", type=int, default=10)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--cycles", type=int, default=1000)
    args = ap.parse_args()
    probe = Probe()
    failures: list[str] = []
    size = tree_size(args.fanout, args.depth)
    print(
        f"stress: {args.rounds} rounds of a tree of {size} processes (fan-out {args.fanout}, depth {args.depth}),"
        f" then {args.cycles} spawn/stop cycles of one child"
    )
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print()
    columns = ("round", 5), ("procs", 5), ("start s", 7), ("stop s", 6), ("ok", 3), ("left", 4), ("fds", 4), ("thr", 3)
    print("  ".join(f"{name:>{width}}" for name, width in columns) + "  RSS MiB")
    base: tuple[int, int, int] | None = None
    cmd = [sys.executable, __file__, "--member", str(args.depth), str(args.fanout)]
    total_started = 0
    start_times, stop_times = [], []
    for r in range(1, args.rounds + 1):
        t0 = time.monotonic()
        child = shutdownbus.spawn(cmd, stop_timeout=60, ready_timeout=300)
        t1 = time.monotonic()
        report = child.stop(timeout=60)
        t2 = time.monotonic()
        left, _zombies = probe.leftovers()
        fds, threads, rss = probe.sample(base)
        base = base or (fds, threads, rss)
        total_started += size
        start_times.append(t1 - t0)
        stop_times.append(t2 - t1)
        print(
            f"{r:>5}  {len(report.entries):>5}  {t1 - t0:>7.2f}  {t2 - t1:>6.2f}  {'yes' if report.ok else 'NO':>3}"
            f"  {len(left):>4}  {fds:>4}  {threads:>3}  {mib(rss)}",
            flush=True,
        )
        if not report.ok:
            failures.append(f"round {r}: the report is not ok\n{report}")
        if len(report.entries) != size:
            failures.append(f"round {r}: the report lists {len(report.entries)} processes, not {size}")
        if left:
            failures.append(f"round {r}: {len(left)} processes left: {left}")
        if fds > base[0] or threads > base[1]:
            failures.append(f"round {r}: fds/threads {fds}/{threads}, after round 1 {base[0]}/{base[1]}")
    rounds_rss = (base[2], probe.sample()[2]) if base else (0, 0)

    print()
    cycle_cmd = [sys.executable, __file__, "--member", "0", "0"]
    warm = min(10, args.cycles)
    cbase: tuple[int, int, int] | None = None
    bad_cycles, cycle_left = 0, 0
    t0 = time.monotonic()
    for i in range(1, args.cycles + 1):
        child = shutdownbus.spawn(cycle_cmd, ready_timeout=60)
        report = child.stop(timeout=30)
        if not report.ok or len(report.entries) != 1:
            bad_cycles += 1
        if i == warm:
            cbase = probe.sample()
        if i % 100 == 0 or i == args.cycles:
            left, _ = probe.leftovers()
            cycle_left += len(left)
            print(
                f"cycle {i:>5}: left {len(left)}, fds/threads/RSS MiB {'/'.join(map(str, probe.sample()[:2]))}"
                f"/{mib(probe.sample()[2])}",
                flush=True,
            )
    cycles_s = time.monotonic() - t0
    left, zombies = probe.leftovers()
    cend = probe.sample(cbase)
    if cbase is not None and (cend[0] > cbase[0] or cend[1] > cbase[1]):
        failures.append(f"cycles: fds/threads {cend[0]}/{cend[1]} at the end, {cbase[0]}/{cbase[1]} after {warm}")
    if left or cycle_left:
        failures.append(f"cycles: processes left {left}")
    if bad_cycles:
        failures.append(f"cycles: {bad_cycles} reports not ok")

    print()
    print("summary")
    print(f"  rounds              {args.rounds} x {size} processes = {total_started} started and stopped")
    if start_times:
        print(
            f"  tree start s        median {sorted(start_times)[len(start_times) // 2]:.2f}, max {max(start_times):.2f}"
        )
        print(f"  tree stop s         median {sorted(stop_times)[len(stop_times) // 2]:.2f}, max {max(stop_times):.2f}")
        print(f"  RSS over rounds     {mib(rounds_rss[0])} -> {mib(rounds_rss[1])} MiB")
    if args.cycles:
        print(
            f"  cycles              {args.cycles} in {cycles_s:.1f} s ({1000 * cycles_s / args.cycles:.0f} ms each),"
            f" {bad_cycles} not ok"
        )
        if cbase is not None:
            print(f"  fds/threads cycles  {cbase[0]}/{cbase[1]} after {warm} -> {cend[0]}/{cend[1]} at the end")
            print(
                f"  RSS over cycles     {mib(cbase[2])} -> {mib(cend[2])} MiB ({(cend[2] - cbase[2]) / 2**10:+.0f} KiB)"
            )
    print(f"  left at the end     {len(left)} running, {zombies} zombies")
    print(f"  result              {'FAILED' if failures else 'ok'}")
    for failure in failures:
        print("  - " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
