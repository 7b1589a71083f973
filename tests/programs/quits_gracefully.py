"""A non-member that stops gracefully on the signal it is told, as nginx does on SIGQUIT.

    quits_gracefully.py SIGNAL MARKER [SECONDS]

Prints ``up``; on SIGNAL cleans up for SECONDS (default 0), writes MARKER
and exits 0; any other signal keeps its default effect.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType


def graceful(signum: int, frame: FrameType | None) -> None:
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)  # the cleanup's own time
    Path(sys.argv[2]).write_text(f"cleaned up after {signal.Signals(signum).name}\n")
    sys.exit(0)


signal.signal(signal.Signals[sys.argv[1]], graceful)
print("up", flush=True)
while True:
    time.sleep(600)
