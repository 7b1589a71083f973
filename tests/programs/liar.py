"""A member that lies in its reports.

    liar.py PID

Before any stop it sends 300 unasked reports of REPORT_CHUNK entries each;
during the stop, one entry for PID (a process outside its subtree) whose
name holds terminal control sequences.
"""

from __future__ import annotations

import sys
import time

import shutdownbus
from shutdownbus import _member
from shutdownbus._bus import REPORT_CHUNK
from shutdownbus._protocol import Report

shutdownbus.join()
bus = _member.get_bus()
entry = dict(
    pid=int(sys.argv[1]),
    name="\x1b]0;pwned\x07init\x1b[2J",
    outcome="stopped",
    returncode=0,
    seconds=0.0,
    member=True,
)
for i in range(300):  # unasked: no stop yet
    bus.send_upstream(Report(tuple(dict(entry, pid=100000 + i) for _ in range(REPORT_CHUNK))))


def lie(reason: str) -> None:  # during the stop: a process outside its subtree, and control characters
    bus.send_upstream(Report((entry,)))


shutdownbus.on_stop(lie)
try:
    shutdownbus.ready()
    time.sleep(600)
finally:
    pass
