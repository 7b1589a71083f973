"""A member that shows the stop log: logging at INFO, two member children,
one of which ignores its stop (so it is escalated).

Prints ``ready PID`` on stdout once both children are ready; logs on stderr
with ``logging.basicConfig(level=INFO)``, the pid first on each line.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import shutdownbus

MEMBER = str(Path(__file__).parent / "member.py")


def main() -> None:
    log = sys.argv[1]
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(levelname)s %(message)s")
    shutdownbus.join(name="boss")
    children = [
        shutdownbus.spawn([sys.executable, MEMBER, "--name", name, "--log", log, *extra], ready_timeout=60)
        for name, extra in (("worker", ()), ("deaf", ("--on-stop", "stubborn")))
    ]
    print(f"ready {' '.join(str(c.pid) for c in children)}", flush=True)
    try:
        time.sleep(600)
    except shutdownbus.StopRequested:
        for child in children:
            child.wait()


if __name__ == "__main__":
    main()
