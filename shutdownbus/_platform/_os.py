"""Which operating system this is, and the one Linux call several mechanisms share.

Rules of this module:

* It imports only ``sys`` and ``os`` at its top (``ctypes`` in `prctl` and
  `release_free_memory`, on Linux only): every mechanism module of
  `_platform` imports it.
"""

from __future__ import annotations

import sys

WINDOWS = sys.platform == "win32"
LINUX = sys.platform.startswith("linux")


def prctl(option: int, value: int | bytes) -> bool:
    """Linux: ``prctl(option, value, 0, 0, 0)`` through the C library.

    Every other OS: False, and nothing is called.

    Returns:
        Whether the call succeeded.
    """
    if not LINUX:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def release_free_memory() -> bool:
    """Linux with glibc: give the memory that the C heap holds free back to the
    OS (``malloc_trim(0)``, which trims every thread's arena: libzmq's I/O
    thread allocates the buffers of the connections it accepts in its own).
    Without it, what a flood of connections made the heap grow by stays in
    the process's RSS after they are gone.

    Every other OS, or another C library: False, and nothing is called.

    Returns:
        Whether memory was given back.
    """
    if not LINUX:
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL(None).malloc_trim(0) == 1)
    except (OSError, AttributeError):
        return False
