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

TYPE_CHECKING = False  # typing is not imported by a test program for this
if TYPE_CHECKING:
    from typing import Any


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
    lock, unlock, where, handle_of = _windows_lock()
    handle = handle_of(fd)
    if not lock(handle, 2, 0, 1, 0, where):  # LOCKFILE_EXCLUSIVE_LOCK, and it waits
        raise OSError(f"LockFileEx failed on the event log (error {_last_error()})")
    try:
        os.write(fd, data)
    finally:
        unlock(handle, 0, 1, 0, where)


_lock_calls: tuple[Any, Any, Any, Any] | None = None


def _windows_lock() -> tuple[Any, Any, Any, Any]:
    """LockFileEx, UnlockFileEx, the OVERLAPPED that says where the lock is,
    and msvcrt's descriptor-to-handle: made once per process."""
    global _lock_calls
    if _lock_calls is None:
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

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        lock, unlock = kernel32.LockFileEx, kernel32.UnlockFileEx
        handle, dword, where = wintypes.HANDLE, wintypes.DWORD, ctypes.POINTER(Overlapped)
        lock.argtypes = [handle, dword, dword, dword, dword, where]
        unlock.argtypes = [handle, dword, dword, dword, where]
        # One byte far past any end the log reaches: the lock never stands in the write's way.
        place = Overlapped(Offset=0xFFFFFFFF, OffsetHigh=0x7FFFFFFF)
        _lock_calls = (lock, unlock, ctypes.byref(place), msvcrt.get_osfhandle)  # type: ignore[attr-defined,unused-ignore]
    return _lock_calls


def _last_error() -> int:
    import ctypes

    return int(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]
