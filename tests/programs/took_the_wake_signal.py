"""A member that handles, before it joins, the signal(s) shutdownbus would wake its main thread with.

    took_the_wake_signal.py first|every sleep|busy

``first``: it handles the signal the waker prefers; ``every``: every one it
may take.  It raises its own signal once after join, then blocks (``sleep``)
or spins (``busy``).  On the stop it prints JSON: the stop's reason, the
signals its handler got, and the signal the waker uses.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from types import FrameType

import shutdownbus
from shutdownbus import _platform

taken, block = sys.argv[1:]
calls: list[int] = []


def handler(signum: int, frame: FrameType | None) -> None:
    calls.append(signum)


choices = _platform.wake_signal_choices()
for signum in choices if taken == "every" else choices[:1]:
    signal.signal(signum, handler)
shutdownbus.join()
signal.raise_signal(choices[0])  # the program's own use of its signal
try:
    shutdownbus.ready()
    if block == "sleep":
        time.sleep(600)
    while True:
        pass
except shutdownbus.StopRequested as exc:
    print(json.dumps({"reason": exc.reason, "calls": calls, "used": _platform.wake_signal()}), flush=True)
