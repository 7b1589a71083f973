"""The event log the test programs write: one line per event, appended.

``log(path, "B got stop deploy")``: tests read the lines back with
``conftest.logged``.  A module beside the programs (each runs as a script, so
its directory is first on ``sys.path``), so that they all write the same way.
"""

from __future__ import annotations

import os


def log(path: str, line: str) -> None:
    """Append ``line`` to the file ``path`` in one write (several processes share it)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
