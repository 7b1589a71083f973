"""Stop a child while no file descriptor is left (Linux: reads /proc).

    no_descriptor_stop.py

Spawns a non-member (sh) whose background job outlives it, prints the job's
pid, opens files until none can be opened (what an attacker holding
connections does to us), stops the child, gives the descriptors back and
prints the report as JSON.  Then it exits, and its exit hook must end the
job that the stop could not see.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess

import shutdownbus
from shutdownbus import _remains

resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
# The descriptor that watches the child for the remains of its death is
# closed when the child exits, which would hand the stop one to read /proc
# with: the stop must run with none at all.
_remains.watch = lambda child, bus: None
# A non-member child whose background job outlives it: only our look at the
# tree can find that job once the shell is gone.
child = shutdownbus.spawn(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
assert child.stdout is not None
print(child.stdout.readline().strip(), flush=True)
hog: list[int] = []
try:
    while True:
        hog.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass  # no descriptor left: what an attacker holding connections does to us
report = child.stop(timeout=1)
for fd in hog:
    os.close(fd)
print(json.dumps(report.to_dict()), flush=True)
try:
    shutdownbus.spawn(["true"])
except OSError:
    pass
