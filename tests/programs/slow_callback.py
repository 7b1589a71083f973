"""A member with a slow ``on_stop`` callback and a child that the stop ends.

    slow_callback.py LOG

Joins without being interrupted by its stop, spawns a member child
(tests/programs/member.py: the stop, forwarded, ends it), registers an
``on_stop`` callback that takes 0.5 s, and prints ``ready``.  Once the
child has exited (the stop reached it), prints ``stop_requested() = BOOL``
as this process saw it then: the stop had arrived (it was forwarded), so
True, even while the callback still runs.
"""

from __future__ import annotations

import os
import sys
import time

import shutdownbus

shutdownbus.join(interrupt_main=False)
child = shutdownbus.spawn([sys.executable, os.path.join(os.path.dirname(__file__), "member.py"), "--log", sys.argv[1]])
child.wait_ready(60)
shutdownbus.on_stop(lambda reason: time.sleep(0.5))  # a callback that takes its time
shutdownbus.ready()
print("ready", flush=True)
child.wait()
print(f"stop_requested() = {shutdownbus.stop_requested()}", flush=True)
