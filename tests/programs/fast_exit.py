"""A member with join(fast_exit=...), stopped or not, that says whether the collector was frozen at its exit.

    fast_exit.py LOG FAST_EXIT SECONDS

FAST_EXIT is ``True`` or ``False``.  It calls ready() and sleeps SECONDS;
on a stop, it writes ``cleaned up`` to LOG through a buffered file it never
closes (its exit must flush it).  At its exit it prints ``frozen`` and
whether gc.freeze() ran since its start.
"""

from __future__ import annotations

import atexit
import gc
import sys
import time

# Registered before join(), so it runs after shutdownbus's exit hook.  The
# interpreter may freeze objects itself at start-up (CPython 3.12 does).
at_start = gc.get_freeze_count()
atexit.register(lambda: print("frozen", gc.get_freeze_count() > at_start, flush=True))
import shutdownbus  # noqa: E402 (after the hook above, on purpose)

log, fast_exit, seconds = sys.argv[1], sys.argv[2] == "True", float(sys.argv[3])
shutdownbus.join(fast_exit=fast_exit)
cleanup_log = open(log, "w")  # buffered, never closed: the exit must flush it
try:  # ready() inside: the stop may come as soon as the parent hears it
    shutdownbus.ready()
    time.sleep(seconds)
except shutdownbus.StopRequested:
    cleanup_log.write("cleaned up")
