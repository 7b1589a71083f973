"""The examples run as their docstrings say, on every OS (the Windows one under wine too)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_abc_term_stops_b_and_c_through_the_bus() -> None:
    """The reference article's tree: A stops B's subtree with a message, not
    SIGTERM (on Windows, not CTRL_BREAK_EVENT): B and C run their cleanup and
    are reported stopped, in milliseconds rather than at their deadline."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "abc.py"), "term"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert {"B cleaned up", "C cleaned up", "A cleaned up"} <= set(lines), done.stdout
    outcomes = {row.split()[1]: row.split()[2] for row in lines if re.match(r"^\d+\s+[BC]\s", row)}
    assert outcomes == {"B": "stopped", "C": "stopped"}, done.stdout
    assert any(re.match(r"^stop 'A terminates B': 2 process\(es\), ok, ", line) for line in lines), done.stdout
