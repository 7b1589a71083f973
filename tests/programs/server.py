"""A server for the pytest plugin's inner tests: it joins, says it is ready, and waits to be stopped.

    server.py [--never-ready]
"""

from __future__ import annotations

import sys
import time

import shutdownbus

shutdownbus.join()
if "--never-ready" not in sys.argv:
    shutdownbus.ready()
time.sleep(600)
