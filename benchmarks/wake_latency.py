"""How long a stop takes to reach a member's main thread, by what it is blocked in.

    .venv/bin/python benchmarks/wake_latency.py [--rounds N]

For each kind of blocking call, spawns a member that blocks in it, stops it,
and takes the time from ``Child.stop()`` to the member's ``except
StopRequested`` (both read ``time.monotonic()``, which is system-wide on
Linux).  Prints the median and the maximum.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import shutdownbus

MEMBER = """
import subprocess, sys, threading, time
import shutdownbus
shutdownbus.join()
shutdownbus.ready()
try:
    if sys.argv[1] == "sleep":
        time.sleep(600)
    elif sys.argv[1] == "event":
        threading.Event().wait()
    else:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).wait()
except shutdownbus.StopRequested:
    print(time.monotonic(), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    print(f"{'blocked in':<16}{'median ms':>10}{'max ms':>10}   ({rounds} rounds)")
    for mode, label in (("sleep", "time.sleep"), ("event", "Event.wait"), ("popen", "Popen.wait")):
        samples = []
        for _ in range(rounds):
            child = shutdownbus.spawn([sys.executable, "-c", MEMBER, mode], ready_timeout=30, stdout=-1, text=True)
            start = time.monotonic()
            child.stop()
            assert child.stdout is not None
            samples.append((float(child.stdout.read()) - start) * 1000)
            child.stdout.close()
        print(f"{label:<16}{statistics.median(samples):>10.2f}{max(samples):>10.2f}")


if __name__ == "__main__":
    main()
