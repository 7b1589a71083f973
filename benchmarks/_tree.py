"""One process of a benchmark tree: ``python _tree.py MODE DEPTH FANOUT``.

MODE:
  bus     a shutdownbus member: spawns its children on the bus, waits for them
          to be ready, calls ready(), sleeps; a stop ends the sleep, the
          (trivial) cleanup runs, and it exits through the normal shutdown.
  signal  the reference article's way: a SIGTERM handler that terminates the
          children, waits for them and calls sys.exit().
  plain   the floor: default SIGTERM action, nothing to clean up.

For signal and plain, readiness goes up through stdout: a process writes one
byte once its whole subtree is up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def main() -> None:
    mode, depth, fanout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    args = [sys.executable, __file__, mode, str(depth - 1), str(fanout)]
    if mode == "bus":
        import shutdownbus

        shutdownbus.join()
        for _ in range(fanout if depth > 0 else 0):
            shutdownbus.spawn(args, ready_timeout=120)
        shutdownbus.ready()
        try:
            time.sleep(3600)
        finally:
            pass  # the trivial cleanup; the children were stopped by the bus
        return
    kids = [subprocess.Popen(args, stdout=subprocess.PIPE) for _ in range(fanout if depth > 0 else 0)]
    for kid in kids:
        assert kid.stdout is not None
        kid.stdout.read(1)
    if mode == "signal":

        def on_term(signum: int, frame: object) -> None:
            for kid in kids:
                kid.terminate()
            for kid in kids:
                kid.wait()
            sys.exit()

        signal.signal(signal.SIGTERM, on_term)
    sys.stdout.buffer.write(b"r")
    sys.stdout.flush()
    time.sleep(3600)


if __name__ == "__main__":
    main()
