"""A parent (it spawned a child; it did not join) whose main thread catches a
Ctrl-C's SIGINT just before it blocks.

CPython runs a signal's Python handler at its next check, in the main
thread; a SIGINT caught after the last check before a blocking call (here
``time.sleep``) waits for the call to return.  Under load that happened to
``examples/abc.py``'s A: it slept out its ``time.sleep(60)`` after Ctrl-C
while B and C had long cleaned up.

The moment is made here for sure: another thread waits until the main thread
sleeps (its frame on the sleep's line while this thread holds the GIL, and
the kernel showing it asleep: Linux's /proc), then the SIGINT is caught on
that thread (``signal.raise_signal``).  Its handler is tripped and the main
thread sleeps on, as if the signal had landed between the check and the
system call.

Prints ``up`` once the child is ready, then one JSON line: ``interrupted``
(the KeyboardInterrupt came, rather than the end of the sleep) and
``seconds`` from the SIGINT to the KeyboardInterrupt.  Exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import shutdownbus

SLEEP = 120.0  # far longer than the test waits


def block() -> None:
    time.sleep(SLEEP)  # the only call on this line: see asleep()


LINE = block.__code__.co_firstlineno + 1


def asleep(main: threading.Thread) -> bool:
    """Whether the main thread is in `block`'s sleep, past its last check for signals."""
    frame = sys._current_frames().get(main.ident or 0)  # read with the GIL held: main is not running Python
    if frame is None or frame.f_code is not block.__code__ or frame.f_lineno != LINE:
        return False
    with open(f"/proc/self/task/{main.native_id}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "S"


def ctrl_c_once_asleep(main: threading.Thread, caught: list[float]) -> None:
    end = time.monotonic() + 60
    while not asleep(main):
        if time.monotonic() > end:
            print(json.dumps({"error": "the main thread never slept"}), flush=True)
            os._exit(3)
        os.sched_yield()  # releases the GIL: the main thread gets on to its sleep
    caught.append(time.monotonic())
    signal.raise_signal(signal.SIGINT)  # caught on this thread: the main thread's sleep goes on


def main() -> None:
    code = "import shutdownbus, time; shutdownbus.join(); shutdownbus.ready(); time.sleep(600)"
    child = shutdownbus.spawn([sys.executable, "-c", code], ready_timeout=30)
    try:
        print("up", flush=True)
        caught: list[float] = []
        threading.Thread(target=ctrl_c_once_asleep, args=(threading.main_thread(), caught), daemon=True).start()
        try:
            block()
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        print(json.dumps({"interrupted": interrupted, "seconds": time.monotonic() - caught[0]}), flush=True)
    finally:
        child.stop()


if __name__ == "__main__":
    main()
