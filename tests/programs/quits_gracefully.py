"""A non-member that stops gracefully on the signal it is told, as nginx does on SIGQUIT.

    quits_gracefully.py SIGNAL MARKER [SECONDS [WORKER_MARKER]]

Prints ``up``; on SIGNAL cleans up for SECONDS (default 0), writes MARKER
and exits 0; any other signal keeps its default effect.  With
WORKER_MARKER it first starts a worker (this program with WORKER_MARKER,
a plain subprocess, as nginx's master starts its workers), and on SIGNAL
passes SIGNAL on to it and waits for it before its own marker.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
worker = None
if len(sys.argv) > 4:
    argv = [sys.executable, __file__, sys.argv[1], sys.argv[4], str(seconds)]
    worker = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert worker.stdout is not None and worker.stdout.readline() == b"up\n"  # its handler is in place


#: Taken by the first run of the handler: the signal may come again while it
#: runs (the kernel sends a parent-death signal once per thread of the dying
#: parent that had the child), and a second run inside the first one's
#: ``Popen`` call blocked on the lock that call held (``Popen.wait``'s lock
#: is not reentrant): the program hung until its guard's deadline ended it.
#: A graceful stop runs once, as nginx's does.
_once = threading.Lock()


def graceful(signum: int, frame: FrameType | None) -> None:
    if not _once.acquire(blocking=False):  # one C call: no second run can slip in between
        return
    if worker is not None:
        worker.send_signal(signum)
    time.sleep(seconds)  # the cleanup's own time
    if worker is not None:
        worker.wait()
    Path(sys.argv[2]).write_text(f"cleaned up after {signal.Signals(signum).name}\n")
    sys.exit(0)


signal.signal(signal.Signals[sys.argv[1]], graceful)
print("up", flush=True)
while True:
    time.sleep(600)
