"""A child that fails before it is ready while a grandchild holds its stderr.

    holds_stderr.py PID_FILE

Writes ``boom`` to stderr, starts a grandchild (30 s) that inherits stderr,
writes the grandchild's pid to PID_FILE and exits with status 3.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

print("boom", file=sys.stderr, flush=True)
# The grandchild inherits the pipe (stderr=sys.stderr: on Windows only handles passed so are inherited).
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stderr=sys.stderr)
pathlib.Path(sys.argv[1]).write_text(str(grandchild.pid))
sys.exit(3)
