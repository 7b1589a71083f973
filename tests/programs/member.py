"""A configurable bus member for the tests: builds a tree and logs what it does.

Each line it appends to --log is written with one os.write, so lines from
many processes never interleave.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from _event_log import log

import shutdownbus


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="m")
    p.add_argument("--log", required=True)
    p.add_argument("--depth", type=int, default=0)
    p.add_argument("--fanout", type=int, default=1)
    p.add_argument("--on-stop", default="clean", choices=["clean", "ignore", "stubborn", "hang", "exit1", "uncaught"])
    p.add_argument("--block", default="sleep", choices=["sleep", "event", "queue", "mp-wait", "popen"])
    p.add_argument("--grandchild", default="", choices=["", "plain", "daemon"])
    p.add_argument("--no-join", action="store_true")
    p.add_argument("--announce", action="store_true", help="print 'ready PID' on stdout once ready")
    p.add_argument("--late-children", type=int, default=0, help="children to start after ready()")
    p.add_argument("--stop-timeout", type=float, default=10.0)
    p.add_argument("--leaf-cleanup", type=float, default=0.0, help="seconds a leaf's cleanup takes (passed down)")
    p.add_argument("--leaf-fork", action="store_true", help="a leaf forks a worker that never execs (passed down)")
    args = p.parse_args()

    if not args.no_join:
        shutdownbus.join(name=args.name)
    log(args.log, f"{args.name} started {os.getpid()}")
    children = []
    try:
        for i in range(args.fanout if args.depth > 0 else 0):
            cmd = [
                sys.executable,
                __file__,
                "--name",
                f"{args.name}.{i}",
                "--log",
                args.log,
                "--depth",
                str(args.depth - 1),
                "--fanout",
                str(args.fanout),
                "--on-stop",
                args.on_stop,
                "--block",
                args.block,
                "--stop-timeout",
                str(args.stop_timeout),
                "--leaf-cleanup",
                str(args.leaf_cleanup),
                *(["--leaf-fork"] if args.leaf_fork else []),
            ]
            children.append(shutdownbus.spawn(cmd, ready_timeout=60, stop_timeout=args.stop_timeout))
        extra = None
        if args.grandchild == "plain":
            extra = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            log(args.log, f"{args.name} plain {extra.pid}")
        elif args.grandchild == "daemon":
            # Double fork: the intermediate exits at once, the daemon is orphaned.
            r, w = os.pipe()
            if os.fork() == 0:
                os.setsid()
                pid = os.fork()
                if pid == 0:
                    os.close(r)
                    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)"])
                os.write(w, str(pid).encode())
                os._exit(0)
            os.close(w)
            daemon_pid = int(os.read(r, 64))
            os.close(r)
            os.wait()
            log(args.log, f"{args.name} daemon {daemon_pid}")
        if args.leaf_fork and args.depth == 0:
            # A pre-forked worker: it shows this process's first environment, and no bus thread.
            worker = os.fork()
            if worker == 0:

                def asked(*_: object) -> None:
                    log(args.log, f"{args.name} forkterm {time.monotonic()}")
                    os._exit(0)

                signal.signal(signal.SIGTERM, asked)
                while True:
                    time.sleep(600)
            log(args.log, f"{args.name} fork {worker}")
        # Started before ready(): a stop that came between ready() and this
        # Popen would find no child to stop at this process's exit.
        blocker = None
        if args.block == "popen":
            blocker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        shutdownbus.ready()
        if args.announce:
            print(f"ready {os.getpid()}", flush=True)
        for i in range(args.late_children):  # a stop may arrive while these start
            cmd = [sys.executable, __file__, "--name", f"{args.name}.late{i}", "--log", args.log]
            children.append(shutdownbus.spawn(cmd))
            log(args.log, f"{args.name} spawned {children[-1].pid}")
        if args.block == "sleep":
            time.sleep(600)
        elif args.block == "event":
            threading.Event().wait()
        elif args.block == "queue":
            queue.Queue().get()
        elif args.block == "mp-wait":  # Windows: _winapi.WaitForMultipleObjects
            receiver, _sender = multiprocessing.Pipe(duplex=False)
            multiprocessing.connection.wait([receiver])
        elif blocker is not None:
            blocker.wait()
    except shutdownbus.StopRequested as exc:
        log(args.log, f"{args.name} stop-at {time.monotonic()}")
        log(args.log, f"{args.name} got stop {exc.reason}")
        if args.on_stop == "uncaught":
            raise
        if args.on_stop == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if args.on_stop in ("ignore", "stubborn"):
            while True:
                try:
                    time.sleep(600)
                except shutdownbus.StopRequested:
                    pass
        if args.on_stop == "hang":
            for c in children:
                c.wait()
            log(args.log, f"{args.name} hanging")
            threading.Event().wait()
    finally:
        log(args.log, f"{args.name} cleanup")
        if args.depth == 0:
            time.sleep(args.leaf_cleanup)
            log(args.log, f"{args.name} leaving {time.monotonic()}")
    if args.on_stop == "exit1":
        sys.exit(1)


if __name__ == "__main__":
    main()
