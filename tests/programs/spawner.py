"""A parent of every kind of child, for the tests of its sudden death.

    spawner.py LOG [--shell] [--quitter MARKER] [--member-quitter MARKER]

Spawns a member (tests/programs/member.py, with a plain grandchild), a
child that may join but never does (sleep.py), and a child declared not to
join, from a thread that ends at once; with --shell, also a shell (declared
not to join) with a background job; with --quitter, also
quits_gracefully.py, declared to stop on SIGQUIT, with a worker of its own
(MARKER.worker): each cleans up for 1 s and then writes its marker (any
other signal ends it at once); with
--member-quitter, also a member with such a child of its own
(member_with_quitter.py).  Prints their
pids as one JSON line (the job's as "job"), then waits to be killed.
"""

from __future__ import annotations

import json
import subprocess
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
pids = {"member": member.pid, "sleeper": sleeper.pid, "declared": declared[0].pid}
if "--shell" in sys.argv:
    job = [sys.executable, str(PROGRAMS / "sleep.py"), "300"]
    shell = shutdownbus.spawn(["sh", "-c", '"$@" & echo $!; wait', "sh", *job], joins=False, stdout=subprocess.PIPE)
    assert shell.stdout is not None
    pids.update(shell=shell.pid, job=int(shell.stdout.readline()))
if "--quitter" in sys.argv:
    marker = sys.argv[sys.argv.index("--quitter") + 1]
    quitter = [sys.executable, str(PROGRAMS / "quits_gracefully.py"), "SIGQUIT", marker, "1", marker + ".worker"]
    quits = shutdownbus.spawn(quitter, stop_signal="SIGQUIT", stdout=subprocess.PIPE)
    assert quits.stdout is not None and quits.stdout.readline() == b"up\n"  # its handler is in place
    pids["quitter"] = quits.pid
if "--member-quitter" in sys.argv:
    marker = sys.argv[sys.argv.index("--member-quitter") + 1]
    keeper = shutdownbus.spawn([sys.executable, str(PROGRAMS / "member_with_quitter.py"), marker], ready_timeout=60)
    pids["member_with_quitter"] = keeper.pid
print(json.dumps(pids), flush=True)
sys.stdin.read()
