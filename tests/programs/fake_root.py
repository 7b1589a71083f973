"""A forger's root: registered under a name, with its own credential, and deaf to stops.

    fake_root.py NAME

Prints ``up`` once registered, then ignores every stop (only a signal ends it).
"""

from __future__ import annotations

import sys
import time

import shutdownbus

shutdownbus.register(sys.argv[1])
print("up", flush=True)
while True:
    try:
        time.sleep(600)
    except shutdownbus.StopRequested:
        pass  # it ignores every stop
