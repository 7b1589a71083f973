"""A member whose children are all on the bus when its stop comes, and whose
cleanup then starts one that is not.

``cleanup_starts_a_process.py LOG [hang | hang-bare]``: spawns one member
child (tests/programs/member.py, named ``leaf``), calls ``ready()`` and
sleeps.  On its stop it starts ``sleep.py 600``, logs ``cleanup late PID``
and exits without waiting for it: the exit path must still end it and
report it.  With ``hang`` it sleeps on instead of exiting, until it is
killed; ``hang-bare`` also starts ``sleep.py`` without any ``SHUTDOWNBUS_*``
variable (as a program that cleans its children's environment does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _event_log import log

import shutdownbus

PROGRAMS = Path(__file__).parent


def main() -> None:
    path = sys.argv[1]
    shutdownbus.join(name="cleanup")
    leaf = shutdownbus.spawn([sys.executable, str(PROGRAMS / "member.py"), "--name", "leaf", "--log", path])
    leaf.wait_ready(60)
    shutdownbus.ready()
    try:
        time.sleep(600)
    finally:
        mode = sys.argv[2] if len(sys.argv) > 2 else ""
        env = None
        if mode == "hang-bare":
            env = {k: v for k, v in os.environ.items() if not k.startswith("SHUTDOWNBUS_")}
        late = subprocess.Popen([sys.executable, str(PROGRAMS / "sleep.py"), "600"], env=env)
        log(path, f"cleanup late {late.pid}")
        if mode.startswith("hang"):
            time.sleep(600)


if __name__ == "__main__":
    main()
