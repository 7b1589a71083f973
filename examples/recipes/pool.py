"""A multiprocessing pool in a member: nothing special to do.

A stop raises StopRequested in the main thread, as Ctrl-C raises
KeyboardInterrupt; leaving the ``with`` block terminates the pool
(``Pool.terminate()``) or, for a ``ProcessPoolExecutor``, waits for it after
shutdownbus asked its workers to go (as Ctrl-C would have interrupted
them).  multiprocessing's resource tracker and forkserver are left to end on
their own once this process is gone.  Under every start method.
"""

import multiprocessing
import sys
import time

import shutdownbus


def work(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


if __name__ == "__main__":
    shutdownbus.join()
    method = sys.argv[1] if len(sys.argv) > 1 else "spawn"
    try:
        with multiprocessing.get_context(method).Pool(4) as pool:
            shutdownbus.ready()
            pool.map(work, [600] * 4)
    finally:
        print("pool: cleaned up", flush=True)
