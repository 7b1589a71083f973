"""Windows: a Ctrl-C in a console of its own, passed on as CTRL_BREAK to a child's process group.

    python ctrl_c_forwarding.py MARKER     (started by tests/test_windows_jobs.py in a new console)

The driver (this process) starts a parent (this file, ``parent MARKER``) in
its console.  The parent spawns a non-member with ``stop_signal="CTRL_BREAK"``
(so in a process group of its own, which the console's Ctrl-C does not
reach; spawn installs the forwarder) whose SIGBREAK handler writes MARKER,
and says ``up``.  The
driver then does what a user's Ctrl-C does (``GenerateConsoleCtrlEvent
(CTRL_C_EVENT, 0)``, ignoring it itself).  The parent (its stderr) logs what
its forwarder could not reach (``could not pass Ctrl-C on to pid PID``),
prints ``parent got KeyboardInterrupt``, and the child's return code (after a stop, which ends
its job, if it is still running), and the driver ``exit status N``.
"""

import ctypes
import os
import subprocess
import sys
import time

CTRL_C_EVENT = 0
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sigbreak_cleanup.py")


def parent(marker: str) -> None:
    import shutdownbus

    child = shutdownbus.spawn(
        [sys.executable, CHILD, marker], stop_signal="CTRL_BREAK", stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "up\n"
    try:
        print("up", flush=True)
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("parent got KeyboardInterrupt", flush=True)
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.stop(timeout=1)
    print(f"child exit status {child.returncode}", flush=True)


def driver(marker: str) -> None:
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    tree = subprocess.Popen(
        [sys.executable, __file__, "parent", marker], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert tree.stdout is not None
    for line in tree.stdout:
        print(line, end="", flush=True)
        if line == "up\n":
            break
    else:
        sys.exit(f"the parent ended before it was up: exit status {tree.wait()}")
    kernel32.SetConsoleCtrlHandler(None, True)  # the Ctrl-C is for the parent, not for us
    if not kernel32.GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0):
        tree.kill()
        sys.exit(f"GenerateConsoleCtrlEvent failed: {ctypes.get_last_error()}")  # type: ignore[attr-defined]
    for line in tree.stdout:
        print(line, end="", flush=True)
    print(f"exit status {tree.wait()}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "parent":
        parent(sys.argv[2])
    else:
        driver(sys.argv[1])
