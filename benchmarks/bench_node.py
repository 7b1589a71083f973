"""The Node.js member beside plain Node.js children: ``make bench`` runs it after bench.py.

    python benchmarks/bench_node.py [--quick] [--reps N]

1. Spawn to ready: ``shutdownbus.spawn`` of a Node member (join, then
   ready) + ``wait_ready``, against ``Popen`` of ``node -e`` that prints one
   line + reading that line.
2. Stop: ``Child.stop()`` of that member until its process is gone, against
   ``kill -TERM`` of the plain ``node -e`` child until it is gone.
3. Cost: threads, fds and RSS of the member against a bare ``node -e`` process.

Contenders interleaved; medians with min-max, and the ratios.  Needs
``node`` and node/'s dependencies (``make node-deps``); says so and exits 0
without them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

import shutdownbus

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
NODE = shutil.which("node")
MEMBER = f"require({str(NODE_DIR)!r}).join().then((m) => m.ready())"
PLAIN = "console.log('ready'); setInterval(() => {}, 1e6)"


def summary(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ({min(samples) * 1000:.1f}-{max(samples) * 1000:.1f})"


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description="the Node.js member's benchmarks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 10)
    if NODE is None or not (NODE_DIR / "node_modules" / "zeromq").is_dir():
        print("\n9. Node.js member: skipped (node or node/'s dependencies are missing: make node-deps)")
        return 0
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    ready_bus, ready_plain, stop_bus, stop_plain = [], [], [], []
    for _ in range(reps):
        start = time.perf_counter()
        child = shutdownbus.spawn([NODE, "-e", MEMBER])
        child.wait_ready(60)
        ready_bus.append(time.perf_counter() - start)
        start = time.perf_counter()
        child.stop()
        wait_gone(child.pid)
        stop_bus.append(time.perf_counter() - start)

        start = time.perf_counter()
        proc = subprocess.Popen([NODE, "-e", PLAIN], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()
        ready_plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        stop_plain.append(time.perf_counter() - start)
        proc.stdout.close()

    member = shutdownbus.spawn([NODE, "-e", MEMBER])
    member.wait_ready(60)
    bare = subprocess.Popen([NODE, "-e", PLAIN], stdout=subprocess.PIPE)
    assert bare.stdout is not None
    bare.stdout.readline()
    m, b = psutil.Process(member.pid), psutil.Process(bare.pid)
    threads, fds = m.num_threads() - b.num_threads(), m.num_fds() - b.num_fds()
    rss_m, rss_b = m.memory_info().rss / 2**20, b.memory_info().rss / 2**20
    member.stop()
    bare.kill()
    bare.wait()
    bare.stdout.close()

    print(f"\n9. Node.js member (node {version}), {reps} runs each, ms median (min-max)")
    print(
        f"   spawn to ready: member {summary(ready_bus)}   node -e + one line {summary(ready_plain)}"
        f"   ratio {statistics.median(ready_bus) / statistics.median(ready_plain):.2f}x"
    )
    print(
        f"   stop until gone: Child.stop() {summary(stop_bus)}   kill -TERM {summary(stop_plain)}"
        f"   ratio {statistics.median(stop_bus) / statistics.median(stop_plain):.2f}x"
    )
    print(
        f"   cost: +{threads} threads, +{fds} fds, RSS {rss_m:.1f} MiB against {rss_b:.1f} MiB"
        f" (+{rss_m - rss_b:.1f} MiB, {rss_m / rss_b:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SHUTDOWNBUS_RUNTIME_DIR", tempfile.mkdtemp(prefix="sbb-"))
    sys.exit(main())
