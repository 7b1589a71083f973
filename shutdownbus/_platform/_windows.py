"""Windows-only helpers, through ctypes and ``_winapi`` as the standard library reaches Win32.

Rules of this module:

* Every function here is called on Windows only; each says what it does
  there.  The other modules of `_platform` decide when to call them.
* Nothing is imported at the top but ``os`` and ``time``: ``ctypes``,
  ``_winapi`` and ``msvcrt`` are loaded by the functions, on Windows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def sigint_event_setter() -> Callable[[], object] | None:
    """Windows: a function that sets the interpreter's SIGINT event
    (``_PyOS_SigintEvent()``, which CPython exports), or None where that
    cannot be found (then only the waits that check signals by themselves,
    and ``Condition.wait``, are ended)."""
    try:
        import ctypes

        sigint_event = ctypes.pythonapi._PyOS_SigintEvent
        sigint_event.argtypes = []
        sigint_event.restype = ctypes.c_void_p
        handle = sigint_event()
        set_event = ctypes.WinDLL("kernel32").SetEvent  # type: ignore[attr-defined,unused-ignore]
        set_event.argtypes = [ctypes.c_void_p]
        set_event.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):
        return None
    if not handle:
        return None
    return lambda: set_event(handle)


def read_available(fd: int, seconds: float) -> bytes:
    import _winapi
    import msvcrt

    chunks = []
    end = time.monotonic() + seconds
    try:
        handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined,unused-ignore]
        while True:
            available = _winapi.PeekNamedPipe(handle, 0)[0]  # type: ignore[attr-defined,unused-ignore]
            if available:
                chunks.append(os.read(fd, available))
                continue
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.01, remaining))
    except OSError:
        pass  # BrokenPipeError: every writer closed it and it is empty (EOF)
    return b"".join(chunks)


def parent_pids() -> set[int] | None:
    """Windows: the parent pids of every running process (None if the list cannot be had)."""
    import ctypes
    from ctypes import wintypes

    class ProcessEntry(ctypes.Structure):  # PROCESSENTRY32W
        _fields_ = [
            ("dwSize", wintypes.DWORD),
            ("cntUsage", wintypes.DWORD),
            ("th32ProcessID", wintypes.DWORD),
            ("th32DefaultHeapID", ctypes.c_size_t),
            ("th32ModuleID", wintypes.DWORD),
            ("cntThreads", wintypes.DWORD),
            ("th32ParentProcessID", wintypes.DWORD),
            ("pcPriClassBase", wintypes.LONG),
            ("dwFlags", wintypes.DWORD),
            ("szExeFile", wintypes.WCHAR * 260),
        ]

    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]
    kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
    kernel32.CreateToolhelp32Snapshot.argtypes = [wintypes.DWORD, wintypes.DWORD]
    kernel32.Process32FirstW.argtypes = kernel32.Process32NextW.argtypes = [wintypes.HANDLE, ctypes.c_void_p]
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    snapshot_processes = 0x2  # TH32CS_SNAPPROCESS
    snapshot = kernel32.CreateToolhelp32Snapshot(snapshot_processes, 0)
    if not snapshot or snapshot == wintypes.HANDLE(-1).value:
        return None
    parents = set()
    try:
        entry = ProcessEntry()
        entry.dwSize = ctypes.sizeof(ProcessEntry)
        more = kernel32.Process32FirstW(snapshot, ctypes.byref(entry))
        while more:
            parents.add(int(entry.th32ParentProcessID))
            more = kernel32.Process32NextW(snapshot, ctypes.byref(entry))
    finally:
        kernel32.CloseHandle(snapshot)
    return parents
