"""A member that shows the stop log (``logging.basicConfig(level=INFO)``, the
pid first on each line, on stderr).

``logging_member.py tree LOG``: two member children, ``worker`` (its cleanup
is quick) and ``slowpoke`` (its cleanup takes 1.5 s); prints ``ready PIDS``
(worker's, slowpoke's) once both are ready, then waits for its stop.

``logging_member.py escalate``: one child, ``deaf``, that ignores SIGTERM and
never joins; stops it with a 1 s timeout (so it is killed), then exits.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import shutdownbus

PROGRAMS = Path(__file__).parent
IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(levelname)s %(message)s")
    shutdownbus.join(name="boss")
    if sys.argv[1] == "escalate":
        deaf = shutdownbus.spawn([sys.executable, "-c", IGNORES_SIGTERM], name="deaf", stdout=subprocess.PIPE)
        assert deaf.stdout is not None and deaf.stdout.readline() == b"up\n"  # SIGTERM is ignored from now on
        print(f"ready {deaf.pid}", flush=True)
        deaf.stop(timeout=1)
        return
    log = sys.argv[2]
    children = [
        shutdownbus.spawn([sys.executable, str(PROGRAMS / "member.py"), "--name", "worker", "--log", log]),
        shutdownbus.spawn(
            [sys.executable, str(PROGRAMS / "slow_cleanup.py"), "--seconds", "1.5"], stdout=subprocess.DEVNULL
        ),
    ]
    for child in children:
        child.wait_ready(60)
    print(f"ready {' '.join(str(c.pid) for c in children)}", flush=True)
    try:
        time.sleep(600)
    except shutdownbus.StopRequested:
        for child in children:
            child.wait()


if __name__ == "__main__":
    main()
