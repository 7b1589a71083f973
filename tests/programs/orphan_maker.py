"""Leaves behind an orphan that no tree walk can find, then waits.

    orphan_maker.py LOG [--join] [--ignore-stop]

It starts an intermediate process, which starts a sleeper with no
``SHUTDOWNBUS_*`` variable in its environment, says its pid and exits.  On
Windows nothing is re-parented: the sleeper is nobody's child any more and
carries no marker, so only the Job Object it inherited can end it.  Logs
``maker orphan PID`` then ``maker up PID`` (one os.write each), and sleeps; with
``--join`` it joins the bus first and, with ``--ignore-stop``, ignores the
stop (so that its parent escalates).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from _event_log import log

SLEEPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sleep.py")
INTERMEDIATE = """
import os, subprocess, sys
env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SHUTDOWNBUS")}
print(subprocess.Popen([sys.executable, sys.argv[1], "600"], env=env).pid, flush=True)
"""


def main() -> None:
    path, flags = sys.argv[1], sys.argv[2:]
    ignored: tuple[type[BaseException], ...] = ()
    if "--join" in flags:
        import shutdownbus

        shutdownbus.join(name="orphan-maker")
        if "--ignore-stop" in flags:
            ignored = (shutdownbus.StopRequested,)
    intermediate = subprocess.Popen([sys.executable, "-c", INTERMEDIATE, SLEEPER], stdout=subprocess.PIPE, text=True)
    assert intermediate.stdout is not None
    orphan = int(intermediate.stdout.readline())  # not communicate(): the orphan holds the pipe too
    intermediate.stdout.close()
    intermediate.wait(60)
    log(path, f"maker orphan {orphan}")
    log(path, f"maker up {os.getpid()}")
    while True:
        try:
            time.sleep(600)
        except ignored:
            log(path, f"maker ignored {os.getpid()}")


if __name__ == "__main__":
    main()
