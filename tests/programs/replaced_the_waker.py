"""A member that replaces shutdownbus's handler of the wake signal after it joined.

    replaced_the_waker.py sleep|event

It blocks in ``time.sleep(3)`` (``sleep``) or ``Event.wait()`` (``event``),
then spins; it says "blocking" just before.  On the stop it prints JSON: the stop's reason, the signals its
own handler got, and the seconds from ready() to the stop's arrival (its
on_stop callback) and to the StopRequested.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from types import FrameType

import shutdownbus
from shutdownbus import _platform

calls: list[int] = []
arrived: list[float] = []


def handler(signum: int, frame: FrameType | None) -> None:
    calls.append(signum)


shutdownbus.join()
shutdownbus.on_stop(lambda reason: arrived.append(time.monotonic()))
wake = _platform.wake_signal()
assert wake is not None
signal.signal(wake, handler)  # replaces shutdownbus's
start = time.monotonic()
try:
    shutdownbus.ready()
    print("blocking", flush=True)
    if sys.argv[1] == "sleep":
        time.sleep(3)
    else:
        threading.Event().wait()
    while True:
        pass
except shutdownbus.StopRequested as exc:
    end = time.monotonic()
    print(json.dumps({"reason": exc.reason, "calls": calls, "arrived": arrived[0] - start, "raised": end - start}))
