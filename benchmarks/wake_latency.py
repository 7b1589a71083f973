"""How long a stop takes to reach a member's main thread, by what it is blocked in.

    .venv/bin/python benchmarks/wake_latency.py [--rounds N] [KIND ...]
    tools/windows/run-python.sh benchmarks/wake_latency.py    (the same under wine)

For each kind of blocking call, spawns a member that blocks in it, stops it
(with a 3 s timeout), and takes two times, both read from ``time.perf_counter()``
(system-wide on Linux, macOS and Windows):

- wake: from the member's bus thread learning of the stop (an ``on_stop``
  callback, which runs just before the main thread is woken) to its main
  thread's ``except StopRequested`` (for asyncio: the main task's
  ``CancelledError``);
- stop: from ``Child.stop()`` in this process to the same moment.

A call the stop does not interrupt shows ``not interrupted``: the member was
escalated at the 3 s deadline.  Prints the median and the maximum of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import shutdownbus

MEMBER = r"""
import sys, threading, time
kind = sys.argv[1]
if kind == "taken":  # the program handles the signal the waker prefers: it takes another, or chains
    import signal
    from shutdownbus import _platform
    signal.signal(_platform.wake_signal_choices()[0], lambda *a: None)
import shutdownbus
shutdownbus.join()
woken = []
shutdownbus.on_stop(lambda reason: woken.append(time.perf_counter()))
def report():
    print(woken[0], time.perf_counter(), flush=True)
def block():
    if kind in ("sleep", "taken"):
        time.sleep(600)
    elif kind == "event":
        threading.Event().wait()
    elif kind == "event-timeout":
        threading.Event().wait(600)
    elif kind == "queue":
        import queue
        queue.Queue().get()
    elif kind == "lock":
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()
    elif kind == "thread-join":
        worker = threading.Thread(target=time.sleep, args=(600,), daemon=True)
        worker.start()
        worker.join()
    elif kind == "mp-wait":
        import multiprocessing.connection
        r, w = multiprocessing.Pipe(duplex=False)
        multiprocessing.connection.wait([r])
    elif kind == "mp-lock":
        import multiprocessing
        lock = multiprocessing.Lock()
        lock.acquire()
        lock.acquire()
    elif kind == "socket":
        import socket
        server = socket.create_server(("127.0.0.1", 0))
        server.accept()
    elif kind == "popen":
        import subprocess
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).wait()
    elif kind == "busy":
        while True:
            pass
if kind == "asyncio":
    import asyncio
    async def main():
        shutdownbus.ready()
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            report()
            raise
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
else:
    try:
        shutdownbus.ready()
        block()
    except shutdownbus.StopRequested:
        report()
"""

KINDS = {
    "sleep": "time.sleep",
    "event": "Event.wait()",
    "event-timeout": "Event.wait(600)",
    "queue": "Queue.get()",
    "lock": "Lock.acquire()",
    "thread-join": "Thread.join()",
    "mp-wait": "mp.connection.wait",
    "mp-lock": "mp.Lock.acquire",
    "socket": "socket.accept",
    "popen": "Popen.wait()",
    "asyncio": "asyncio.run",
    "busy": "while True: pass",
    "taken": "sleep, signal taken",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("kinds", nargs="*", metavar="KIND", help="any of: " + ", ".join(KINDS) + " (default: all)")
    args = parser.parse_args()
    if unknown := set(args.kinds) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    print(f"{'blocked in':<22}{'wake median':>12}{'wake max':>10}{'stop median':>12}{'stop max':>10}   ms, "
          f"{args.rounds} rounds, Python {sys.version.split()[0]} on {sys.platform}")  # fmt: skip
    for kind in args.kinds or KINDS:
        wakes: list[float] = []
        stops: list[float] = []
        for _ in range(args.rounds):
            child = shutdownbus.spawn([sys.executable, "-c", MEMBER, kind], ready_timeout=60, stdout=-1, text=True)
            start = time.perf_counter()
            child.stop(timeout=3)
            assert child.stdout is not None
            out = child.stdout.read().split()
            child.stdout.close()
            if len(out) != 2:
                break
            woken, caught = map(float, out)
            wakes.append((caught - woken) * 1000)
            stops.append((caught - start) * 1000)
        if len(wakes) < args.rounds:
            print(f"{KINDS[kind]:<22}{'not interrupted':>22}")
            continue
        print(
            f"{KINDS[kind]:<22}{statistics.median(wakes):>12.2f}{max(wakes):>10.2f}"
            f"{statistics.median(stops):>12.2f}{max(stops):>10.2f}"
        )


if __name__ == "__main__":
    main()
