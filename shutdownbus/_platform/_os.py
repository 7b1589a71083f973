"""Which operating system this is, and the one Linux call several mechanisms share.

Rules of this module:

* It imports only ``sys`` and ``os`` at its top (``ctypes`` in `prctl`, on
  Linux only): every mechanism module of `_platform` imports it.
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
