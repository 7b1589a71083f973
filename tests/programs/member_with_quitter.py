"""A member with a child declared to stop on SIGQUIT.

    member_with_quitter.py MARKER

Joins, spawns quits_gracefully.py (SIGQUIT, MARKER, 1 s of cleanup; any
other signal ends it at once, without MARKER) declared with
``stop_signal="SIGQUIT"``, waits until it is up, says ready, and sleeps.  Its
stop (also 'parent-lost') asks the child with SIGQUIT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import shutdownbus

shutdownbus.join()
quitter = [sys.executable, os.path.join(os.path.dirname(__file__), "quits_gracefully.py"), "SIGQUIT", sys.argv[1], "1"]
child = shutdownbus.spawn(quitter, stop_signal="SIGQUIT", stdout=subprocess.PIPE)
assert child.stdout is not None and child.stdout.readline() == b"up\n"  # its handler is in place
shutdownbus.ready()
try:
    time.sleep(600)
finally:
    child.wait()  # its cleanup, then ours
