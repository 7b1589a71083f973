"""A parent whose stop of a child is interrupted by Ctrl-C, then asked again.

    interrupted_stop.py CMD...

Spawns CMD (a member that ignores stops), stops it with a 2 s timeout and
interrupts that stop 0.3 s later with what a terminal's Ctrl-C does.  Prints
``interrupted`` and whether the child still ran then; then the report of
a second stop as JSON, and whether the child was gone after it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

import shutdownbus

b = shutdownbus.spawn(sys.argv[1:], ready_timeout=60)
main = threading.main_thread().ident
assert main is not None
if hasattr(signal, "pthread_kill"):  # a terminal's Ctrl-C, delivered to the main thread
    threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()
else:  # Windows: what the console's Ctrl-C handler does
    threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,)).start()
try:
    b.stop(timeout=2)
except KeyboardInterrupt:
    print("interrupted", b.poll() is None, flush=True)
report = b.stop()
print(json.dumps(report.to_dict()), b.returncode is not None, flush=True)
