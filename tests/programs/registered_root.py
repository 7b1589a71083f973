"""A registered root (``shutdownbus.register``), as admins reach one.

    registered_root.py NAME

Prints ``registered`` once its registry entry is written, then waits;
prints ``got stop REASON`` when a stop comes.
"""

from __future__ import annotations

import sys
import time

import shutdownbus

shutdownbus.register(sys.argv[1])
try:
    print("registered", flush=True)
    time.sleep(600)
except shutdownbus.StopRequested as exc:
    print("got stop", exc.reason, flush=True)
