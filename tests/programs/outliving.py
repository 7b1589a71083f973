"""The worst case for a stop's deadline: descendants that outlive their
parent, ignore SIGTERM, and multiply when asked to go.

    python outliving.py LOG

The top process (a plain program: it never joins) ignores SIGTERM and starts
two workers, then exits a moment after they said so in LOG: the workers
outlive it (re-parented to the nearest subreaper, the process that spawned
the top one).  Each worker ignores SIGTERM, and on each SIGTERM starts a
successor of its own that ignores SIGTERM too: processes the escalation has
not seen yet.  Only SIGKILL ends them.
"""

import os
import signal
import subprocess
import sys
import threading

log = sys.argv[1]
role = sys.argv[2] if len(sys.argv) > 2 else "top"


def say(what: str) -> None:
    with open(log, "a") as f:
        f.write(f"{role} {what} {os.getpid()}\n")


if role == "top":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    workers = [subprocess.Popen([sys.executable, __file__, log, "worker"], stdout=subprocess.PIPE) for _ in range(2)]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == b"up\n"
    say("up")
    os._exit(0)  # leaves the workers running: they outlive us

successors: list[subprocess.Popen[bytes]] = []


def multiply(signum: int, frame: object) -> None:
    successors.append(subprocess.Popen([sys.executable, __file__, log, "successor"]))


if role == "worker":
    signal.signal(signal.SIGTERM, multiply)
    say("up")
    print("up", flush=True)
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    say("up")
threading.Event().wait()
