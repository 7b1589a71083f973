"""A member that logs at DEBUG and prints what it holds, for the secrets hygiene tests.

    debug_member.py DEPTH

One program for every level of a tree: named ``hDEPTH``, it spawns
``debug_member.py DEPTH-1`` on the bus and a plain grandchild while DEPTH >
0.  It prints, one line per event (``NAME EVENT VALUE``): ``env`` (the
SHUTDOWNBUS_ variables left after join), ``repr`` (of every object holding
its channel's secret), ``member`` and ``plain`` (the pids of its children)
and ``stop REASON``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import shutdownbus
from shutdownbus import _member

logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")

depth = int(sys.argv[1])
name = f"h{depth}"


def say(event: str, *parts: object) -> None:
    # One write per line: both members write to the same file at the same
    # moment, and print() under PYTHONUNBUFFERED writes each part apart.
    os.write(1, (" ".join(map(str, (name, event, *parts))) + "\n").encode())


shutdownbus.join(name=name)
up = _member._state.upstream
assert up is not None
say("env", ",".join(sorted(k for k in os.environ if k.startswith("SHUTDOWNBUS_"))))
say("repr", repr(up.channel), repr(up.keys), repr(up))
logging.getLogger("shutdownbus").debug("debug from %s: %r %r", name, up.channel, up.keys)
kids = []
if depth > 0:
    kids.append(shutdownbus.spawn([sys.executable, __file__, str(depth - 1)], ready_timeout=60))
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    say("member", kids[0].pid)
    say("plain", plain.pid)
    say("repr", repr(kids[0]), repr(kids[0]._link), repr(kids[0]._link.channel))
try:  # ready() inside: the stop may come as soon as the parent hears it
    shutdownbus.ready()
    time.sleep(600)
except shutdownbus.StopRequested as exc:
    say("stop", exc.reason)
