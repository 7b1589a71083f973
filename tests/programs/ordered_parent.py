"""A member with a web server, two queue workers and a database proxy, which
must stop in that order: the server first (stop accepting, drain), then the
workers, then the proxy.

    ordered_parent.py LOG

Each child is tests/programs/member.py, spawned with its ``stop_order``;
every line they log goes to LOG, in the order it happened.
"""

from __future__ import annotations

import sys
from pathlib import Path

import shutdownbus

MEMBER = str(Path(__file__).parent / "member.py")
log = sys.argv[1]
shutdownbus.join(name="parent")
children = [
    shutdownbus.spawn([sys.executable, MEMBER, "--name", name, "--log", log], stop_order=order, ready_timeout=60)
    for name, order in (("proxy", 2), ("worker1", 1), ("server", 0), ("worker2", 1))
]
shutdownbus.ready()
try:
    shutdownbus.wait_for_stop()
finally:
    for child in children:
        child.wait()
