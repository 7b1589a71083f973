"""Spawn with no file descriptor left: prints ``ERROR-TYPE MESSAGE`` of the ShutdownBusError raised.

    no_descriptor_spawn.py
"""

from __future__ import annotations

import os
import resource
import sys

import shutdownbus
from shutdownbus import spawn  # loaded before, as a program does (an import needs a descriptor too)

resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
hog: list[int] = []
try:
    while True:
        hog.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    spawn([sys.executable, "-c", "pass"])
except shutdownbus.ShutdownBusError as exc:
    print(type(exc).__name__, exc, flush=True)
