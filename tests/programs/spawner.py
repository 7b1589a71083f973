"""A parent of every kind of child, for the tests of its sudden death.

    spawner.py LOG

Spawns a member (tests/programs/member.py, with a plain grandchild), a
child that may join but never does (sleep.py), and a child declared not to
join, from a thread that ends at once.  Prints their pids as one JSON line,
then waits to be killed.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import shutdownbus

PROGRAMS = Path(__file__).parent
log = sys.argv[1]
member = shutdownbus.spawn(
    [sys.executable, str(PROGRAMS / "member.py"), "--name", "m", "--log", log, "--grandchild", "plain"],
    ready_timeout=60,
)
sleeper = shutdownbus.spawn([sys.executable, str(PROGRAMS / "sleep.py"), "300"])
declared: list[shutdownbus.Child] = []
thread = threading.Thread(
    target=lambda: declared.append(shutdownbus.spawn([sys.executable, str(PROGRAMS / "sleep.py"), "300"], joins=False))
)
thread.start()
thread.join()
print(json.dumps({"member": member.pid, "sleeper": sleeper.pid, "declared": declared[0].pid}), flush=True)
sys.stdin.read()
