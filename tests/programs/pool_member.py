"""A member that works through a multiprocessing pool, as a user writes one.

    pool_member.py KIND START_METHOD STATE LOG

KIND is ``pool`` (multiprocessing.Pool), ``executor``
(concurrent.futures.ProcessPoolExecutor) or ``shm`` (only a shared memory
block and a semaphore, which start the resource tracker).  STATE is ``busy``
(every worker in a long task) or ``idle``.  It logs ``finally`` when its
``finally:`` block runs.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.shared_memory
import os
import sys
import time
from typing import Any

import shutdownbus


def task(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


_all_started: Any = None  # the workers' barrier (an executor's initializer sets it)


def keep(barrier: Any) -> None:
    global _all_started
    _all_started = barrier


def meet(_: int) -> None:
    """Return once every worker runs one: an executor starts a worker only
    when none is idle, so tasks that end at once may leave it with fewer."""
    _all_started.wait()


def log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def main() -> None:
    kind, method, state, path = sys.argv[1:5]
    shutdownbus.join()
    ctx = multiprocessing.get_context(method)
    seconds = 600 if state == "busy" else 0
    try:
        if kind == "pool":
            with ctx.Pool(4) as pool:
                pool.map(task, [0] * 4)  # every worker has started
                log(path, f"workers {os.getpid()}")
                shutdownbus.ready()
                pool.map(task, [seconds] * 4) if seconds else time.sleep(600)
        elif kind == "executor":
            met = ctx.Barrier(4)
            workers = concurrent.futures.ProcessPoolExecutor(4, mp_context=ctx, initializer=keep, initargs=(met,))
            with workers as executor:
                list(executor.map(meet, range(4)))  # four workers have started
                log(path, f"workers {os.getpid()}")
                shutdownbus.ready()
                list(executor.map(task, [seconds] * 4)) if seconds else time.sleep(600)
        else:
            block = multiprocessing.shared_memory.SharedMemory(create=True, size=4096)
            semaphore = ctx.Semaphore(1)
            try:
                shutdownbus.ready()
                with semaphore:
                    time.sleep(600)
            finally:
                block.close()
                block.unlink()
    finally:
        log(path, "finally")


if __name__ == "__main__":
    main()
