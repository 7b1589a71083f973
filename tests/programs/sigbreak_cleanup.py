"""A non-member that cleans up on Windows' Ctrl-Break (``signal.SIGBREAK``).

    sigbreak_cleanup.py MARKER

Prints ``up``, then waits; on SIGBREAK it writes "cleaned up" into MARKER
and exits 0.  Windows only (SIGBREAK).
"""

import signal
import sys
import time


def cleanup(signum: int, frame: object) -> None:
    with open(sys.argv[1], "w") as f:
        f.write("cleaned up")
    sys.exit(0)


signal.signal(signal.SIGBREAK, cleanup)  # type: ignore[attr-defined]
print("up", flush=True)
while True:
    time.sleep(0.05)  # SIGBREAK's handler runs between the sleeps
