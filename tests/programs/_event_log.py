"""The event log the test programs write: one line per event, appended.

``log(path, "B got stop deploy")``: tests read the lines back with
``conftest.logged``.  A module beside the programs (each runs as a script, so
its directory is first on ``sys.path``), so that they all write the same way.

Several processes append to one log at once (the children of a stop clean up
together).  POSIX: ``O_APPEND`` makes each write land whole at the end.
Windows: it does not (the C runtime seeks to the end, then writes: two
processes can write at the same offset and a line is lost; 122 of 9,000 lines
under wine), so each write holds a lock on the file (``LockFileEx``, which
waits for it).
"""

from __future__ import annotations

import os
import sys


def log(path: str, line: str) -> None:
    """Append ``line`` to the file ``path`` in one write (several processes share it)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if sys.platform == "win32":
            _write_locked(fd, (line + "\n").encode())
        else:
            os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _write_locked(fd: int, data: bytes) -> None:
    import ctypes
    import msvcrt
    from ctypes import wintypes

    class Overlapped(ctypes.Structure):
        _fields_ = [
            ("Internal", ctypes.c_void_p),
            ("InternalHigh", ctypes.c_void_p),
            ("Offset", wintypes.DWORD),
            ("OffsetHigh", wintypes.DWORD),
            ("hEvent", wintypes.HANDLE),
        ]

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.LockFileEx.argtypes = [wintypes.HANDLE, wintypes.DWORD, wintypes.DWORD, wintypes.DWORD,
                                    wintypes.DWORD, ctypes.POINTER(Overlapped)]
    kernel32.UnlockFileEx.argtypes = [wintypes.HANDLE, wintypes.DWORD, wintypes.DWORD, wintypes.DWORD,
                                      ctypes.POINTER(Overlapped)]
    handle = msvcrt.get_osfhandle(fd)
    # The lock is on one byte far past any end the log reaches, so that it
    # never stands in the way of the write itself.
    where = Overlapped(Offset=0xFFFFFFFF, OffsetHigh=0x7FFFFFFF)
    if not kernel32.LockFileEx(handle, 2, 0, 1, 0, ctypes.byref(where)):  # LOCKFILE_EXCLUSIVE_LOCK, waits
        raise ctypes.WinError(ctypes.get_last_error())
    try:
        os.write(fd, data)
    finally:
        kernel32.UnlockFileEx(handle, 0, 1, 0, ctypes.byref(where))
