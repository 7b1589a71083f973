"""A member that crashes in its cleanup, after it forwarded the stop to its two children.

    crasher.py os-exit|exception LOG at-once|on-cue|-

Its children are member.py (``crasher.0``, ``crasher.1``), logging to LOG.
``os-exit``: the crash is ``os._exit(3)`` (no finally, no atexit: the bus
never reports); ``exception``: an uncaught RuntimeError.  ``at-once``: it
exits with status 3 in an on_stop callback, on the bus thread, before any
child can report; ``on-cue``: the crash waits for a line on stdin.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import shutdownbus

MEMBER = str(Path(__file__).parent / "member.py")
how, log, when = sys.argv[1:4]
shutdownbus.join(name="crasher")
if when == "at-once":  # on the bus thread, before any child can report
    shutdownbus.on_stop(lambda reason: os._exit(3))
kids = [
    shutdownbus.spawn([sys.executable, MEMBER, "--name", f"crasher.{i}", "--log", log], ready_timeout=60)
    for i in range(2)
]
try:  # ready() inside: the stop may come as soon as the parent hears it
    shutdownbus.ready()
    time.sleep(600)
except shutdownbus.StopRequested:
    if when == "on-cue":
        sys.stdin.readline()
    if how == "os-exit":
        os._exit(3)  # no finally, no atexit: the bus never reports
    raise RuntimeError("the cleanup failed")  # noqa: B904 (a cleanup that fails: the stop is its context)
