"""A member whose members take their time to clean up, for the admin's fault tests.

    slow_tree.py LOG [--members N] [--cleanup S] [--top ignore|clean]

The top process joins, spawns N members of its own (this program with
``--leaf``), calls ready() and prints ``ready PID`` on stdout.  On the stop,
each leaf logs ``NAME cleanup-started PID``, spends S seconds cleaning up
(the work a real service finishes: flushing, closing), logs ``NAME
cleanup-done PID`` and exits.  With ``--top ignore`` the top process ignores
its stop and SIGTERM and runs on (only a kill ends it); its members still get
the stop, which the library forwards on its arrival.

Each line is written with one os.write, so lines never interleave.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from _event_log import log

import shutdownbus


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--cleanup", type=float, default=2.5)
    p.add_argument("--top", default="clean", choices=["clean", "ignore"])
    p.add_argument("--leaf", default="")
    args = p.parse_args()
    name = args.leaf or "top"
    shutdownbus.join(name=name)
    log(args.log, f"{name} started {os.getpid()}")
    if args.leaf:
        try:
            shutdownbus.ready()
            time.sleep(600)
        except shutdownbus.StopRequested:
            log(args.log, f"{name} cleanup-started {os.getpid()}")
            time.sleep(args.cleanup)  # the cleanup itself
            log(args.log, f"{name} cleanup-done {os.getpid()}")
        return
    children = [
        shutdownbus.spawn(
            [sys.executable, __file__, args.log, "--cleanup", str(args.cleanup), "--leaf", f"leaf{i}"],
            ready_timeout=60,
        )
        for i in range(args.members)
    ]
    print(f"ready {os.getpid()} {' '.join(str(c.pid) for c in children)}", flush=True)
    try:
        time.sleep(600)
    except shutdownbus.StopRequested:
        log(args.log, f"top got-stop {os.getpid()}")
        if args.top == "ignore":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                try:
                    time.sleep(600)
                except shutdownbus.StopRequested:
                    pass


if __name__ == "__main__":
    main()
