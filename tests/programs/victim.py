"""The target of tests/test_attacks.py: a member that says what it heeds.

    victim.py gated|open JOIN_TIMEOUT

``gated``: joins only once a line arrives on stdin (so squatters can come
first).  It calls ready(), and prints ``got stop REASON`` for every stop it
gets.
"""

from __future__ import annotations

import sys
import time

import shutdownbus

if sys.argv[1] == "gated":
    sys.stdin.readline()
shutdownbus.join(name="victim", timeout=float(sys.argv[2]))
try:  # ready() inside: the stop may come as soon as the parent hears it
    shutdownbus.ready()
    time.sleep(600)
except shutdownbus.StopRequested as exc:
    print("got stop", exc.reason, flush=True)
