"""Reading what a pipe holds, for at most a moment.

Rules of this module:

* POSIX: ``select`` bounds the wait.  Windows: pipes cannot be selected;
  `_windows.read_available` looks at the pipe every 10 ms.
"""

from __future__ import annotations

import os
import time

from . import _windows
from ._os import WINDOWS


def read_available(fd: int, seconds: float) -> bytes:
    """Read from a pipe until EOF or until ``seconds`` pass, whichever is first.

    POSIX: select() bounds the wait.  Windows: pipes cannot be selected;
    ``PeekNamedPipe`` tells how much can be read without blocking, and the
    pipe is looked at every 10 ms.
    """
    import select

    if WINDOWS:
        return _windows.read_available(fd, seconds)
    chunks = []
    end = time.monotonic() + seconds
    while (remaining := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
