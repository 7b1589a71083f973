"""Windows: press Ctrl-C in a console of its own on examples/abc.py's tree.

    python console_ctrl_c.py     (started by tests/test_ctrl_c.py in a new console)

Starts abc.py (A, which starts B, which starts C) in this process's console,
waits until A says the tree is up, then does what a user's Ctrl-C does:
``GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)``, which every process attached
to the console gets (this one ignores it).  Prints the tree's output, then
``exit status N`` for A.
"""

import ctypes
import subprocess
import sys
from pathlib import Path

ABC = Path(__file__).parent.parent.parent / "examples" / "abc.py"
CTRL_C_EVENT = 0

kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
tree = subprocess.Popen([sys.executable, str(ABC)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
assert tree.stdout is not None
for line in tree.stdout:
    print(line, end="", flush=True)
    if "the tree is up" in line:
        break
else:
    sys.exit(f"the tree ended before it was up: exit status {tree.wait()}")
kernel32.SetConsoleCtrlHandler(None, True)  # the Ctrl-C is for the tree, not for us
if not kernel32.GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0):
    tree.kill()
    sys.exit(f"GenerateConsoleCtrlEvent failed: {ctypes.get_last_error()}")  # type: ignore[attr-defined,unused-ignore]
for line in tree.stdout:  # each process writes whole lines; the three may interleave
    print(line, end="", flush=True)
print(f"exit status {tree.wait()}", flush=True)
