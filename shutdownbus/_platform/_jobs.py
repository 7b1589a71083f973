"""Job Objects: a spawned child's whole subtree, ended by the kernel when its spawner dies.

Rules of this module:

* Windows: each child `spawn()` starts is created suspended
  (`suspended_creation_flag`), put into a Job Object of its own with
  ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`` (`contain`), then resumed, so
  that nothing it starts can escape the job before it is in it.  Only this
  process holds the job's handle, and it is not inheritable: when this
  process dies, however it dies, the kernel closes the handle and ends every
  process still in the job (the child and all its descendants).  A child
  that joins the bus is given a handle of its own to its job
  (`ChildJob.share_with`): then its parent's death no longer ends the job;
  the member stops on ``parent-lost``, gracefully, and when it exits its
  handle closes and the kernel ends whatever of its subtree is left (the
  job is the floor under it).  Jobs nest (Windows 8 and later; CPython 3.12
  needs 8.1), so a child in our job can put its own children in jobs of
  their own.  The job allows no breakaway: a program that asks for
  ``CREATE_BREAKAWAY_FROM_JOB`` gets ``ERROR_ACCESS_DENIED`` from
  ``CreateProcess``.
* Every other OS: there are no Job Objects; `suspended_creation_flag` is 0
  and `contain` returns None without calling anything.
* ``ctypes`` is loaded by the functions, on Windows only.
"""

from __future__ import annotations

from ._os import WINDOWS

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

CREATE_SUSPENDED = 0x00000004
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
_JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
_JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION = 1
_JOB_OBJECT_BASIC_PROCESS_ID_LIST = 3
_PROCESS_DUP_HANDLE = 0x0040
_PROCESS_QUERY_INFORMATION = 0x0400  # wine's IsProcessInJob refuses PROCESS_QUERY_LIMITED_INFORMATION
_THREAD_SUSPEND_RESUME = 0x0002
_TH32CS_SNAPTHREAD = 0x00000004
#: The access a member's own handle to its job gets: only to query it.  Any
#: handle keeps the job alive; this one cannot change its limits (drop
#: KILL_ON_JOB_CLOSE), assign processes to it or terminate it.
_JOB_OBJECT_QUERY = 0x0004
#: The exit code of the processes a job ends: that of ``Popen.terminate()``
#: (TerminateProcess with 1), so a return code reads the same either way.
TERMINATED_EXIT_CODE = 1


def suspended_creation_flag() -> int:
    """The creation flag that starts a child suspended, so that it can be put
    into its job before it runs (see `contain`).

    Windows: ``CREATE_SUSPENDED``.  Every other OS: 0 (no such flag).
    """
    return CREATE_SUSPENDED if WINDOWS else 0


class ChildJob:
    """Windows: the Job Object of one spawned child, and the only handle to it
    in this process (not inheritable); closing it (`close`, or this object's
    collection, or this process's death) ends every process still in the job.
    Elsewhere: never made (`contain` returns None).
    """

    def __init__(self, handle: int) -> None:
        self._handle: int | None = handle

    @property
    def handle(self) -> int | None:
        """Windows: the job's handle while open, else None.  Elsewhere: no instance exists."""
        return self._handle

    def terminate(self, exit_code: int = TERMINATED_EXIT_CODE) -> bool:
        """Windows: TerminateJobObject: every process in the job (the child and
        all its descendants, in nested jobs too) ends at once, with
        ``exit_code``, whatever its parent chain looks like.  Elsewhere: no
        instance exists.

        Returns:
            Whether the call succeeded (False once closed).
        """
        if self._handle is None:
            return False
        return bool(_kernel32().TerminateJobObject(self._handle, exit_code))

    def active_processes(self) -> int | None:
        """Windows: how many processes run in the job now (nested jobs
        included), or None if it cannot be asked.  Elsewhere: no instance exists."""
        if self._handle is None:
            return None
        import ctypes

        info = _accounting_type()()
        ok = _kernel32().QueryInformationJobObject(
            self._handle,
            _JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION,
            ctypes.byref(info),
            ctypes.sizeof(info),
            None,
        )
        return int(info.ActiveProcesses) if ok else None

    def pids(self) -> list[int] | None:
        """Windows: the pids of the processes in the job now (nested jobs
        included), or None if they cannot be listed.  Elsewhere: no instance exists."""
        if self._handle is None:
            return None
        import ctypes

        size = 256
        while size <= 1 << 16:

            class ProcessIdList(ctypes.Structure):  # JOBOBJECT_BASIC_PROCESS_ID_LIST
                _fields_ = [
                    ("NumberOfAssignedProcesses", ctypes.c_uint32),
                    ("NumberOfProcessIdsInList", ctypes.c_uint32),
                    ("ProcessIdList", ctypes.c_size_t * size),
                ]

            info = ProcessIdList()
            ok = _kernel32().QueryInformationJobObject(
                self._handle, _JOB_OBJECT_BASIC_PROCESS_ID_LIST, ctypes.byref(info), ctypes.sizeof(info), None
            )
            listed = min(int(info.NumberOfProcessIdsInList), size)
            if ok and listed >= info.NumberOfAssignedProcesses:
                return [int(pid) for pid in info.ProcessIdList[:listed]]
            if not ok and _last_error() != 234:  # ERROR_MORE_DATA
                return None
            size = max(size * 2, int(info.NumberOfAssignedProcesses) + 16)
        return None

    def share_with(self, pid: int) -> bool:
        """Windows: give the process ``pid``, if it runs in this job, a handle
        of its own to the job (DuplicateHandle, not inheritable, never told
        to it, with the right to query the job only): the job then lives as long as that process does, even if this
        one dies, and ends what is left in it when that process exits.  Called
        for a child that joined the bus, so that its parent's death lets it
        stop gracefully first.  Elsewhere: no instance exists.

        Returns:
            Whether the process now holds a handle to the job.
        """
        if self._handle is None:
            return False
        import ctypes
        from ctypes import wintypes

        kernel32 = _kernel32()
        process = kernel32.OpenProcess(_PROCESS_DUP_HANDLE | _PROCESS_QUERY_INFORMATION, False, pid)
        if not process:
            return False
        try:
            inside = wintypes.BOOL()
            if not kernel32.IsProcessInJob(process, self._handle, ctypes.byref(inside)) or not inside.value:
                return False  # a member's pid is its own claim: only a process of this job gets it
            remote = wintypes.HANDLE()
            return bool(
                kernel32.DuplicateHandle(
                    kernel32.GetCurrentProcess(),
                    self._handle,
                    process,
                    ctypes.byref(remote),
                    _JOB_OBJECT_QUERY,
                    False,
                    0,
                )
            )
        finally:
            kernel32.CloseHandle(process)

    def close(self) -> None:
        """Windows: close this process's handle to the job: if no other process
        holds one (a member it was shared with), the kernel ends every process
        still in the job.  Elsewhere: no instance exists."""
        handle, self._handle = self._handle, None
        if handle is not None:
            _kernel32().CloseHandle(handle)

    def __del__(self) -> None:
        # The Child was dropped: its job goes with it.  (At this process's
        # exit the kernel closes the handle anyway.)
        if self._handle is not None and _kernel32_dll is not None:
            self.close()


def contain(process_handle: int, pid: int, resume: bool = True) -> ChildJob:
    """Windows: put the process (created suspended, see
    `suspended_creation_flag`) into a new Job Object with
    ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``, then resume it (unless
    ``resume`` is False: the caller asked for a suspended child).  It is
    resumed even if the job could not be made, and the error raised then.
    Every other OS: not called (`_child` calls it only when
    `suspended_creation_flag` is not 0); it raises ``OSError``.

    The process is resumed with ``NtResumeProcess`` (ntdll: every thread of
    the process, one call, no thread handle needed; CPython's Popen closes
    the primary thread's handle), else by walking its threads (Toolhelp32,
    ``ResumeThread``): see `resume_process`.

    Returns:
        The job, whose handle only this process holds.

    Raises:
        OSError: the job could not be created or the process assigned to it
            (the process runs, outside any job of ours), or it could not be
            resumed.
    """
    if not WINDOWS:
        raise OSError("Job Objects exist on Windows only")
    job: ChildJob | None = None
    try:
        job = ChildJob(_create_kill_on_close_job())

        if not _kernel32().AssignProcessToJobObject(job.handle, process_handle):
            raise _win_error()
    except BaseException:
        if job is not None:
            job.close()  # the process is not in it: closing it ends nothing
        if resume:
            resume_process(process_handle, pid)
        raise
    if resume:
        try:
            resume_process(process_handle, pid)
        except BaseException:
            job.terminate()
            raise
    return job


def resume_process(process_handle: int, pid: int) -> None:
    """Windows: resume every thread of a process created suspended.

    ``NtResumeProcess`` first: one call that takes the process handle
    Popen keeps (it closes the thread's), exported by ntdll since Windows XP
    and used by Sysinternals' tools and debuggers; wine implements it too.
    If ntdll lacks it or it fails, each thread of the process is found in a
    Toolhelp32 snapshot and resumed with ``ResumeThread`` (documented calls,
    but a snapshot of every thread of the system, some milliseconds).
    Every other OS: raises ``OSError`` (nothing is created suspended there).

    Raises:
        OSError: neither way resumed it.
    """
    if not WINDOWS:
        raise OSError("CREATE_SUSPENDED exists on Windows only")
    if _nt_resume_process(process_handle):
        return
    if not _resume_threads(pid):

        raise _win_error(f"could not resume process {pid}")


def _nt_resume_process(process_handle: int) -> bool:
    import ctypes

    try:
        ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined,unused-ignore]
        nt_resume = ntdll.NtResumeProcess
    except (OSError, AttributeError):
        return False
    nt_resume.argtypes = [ctypes.c_void_p]
    nt_resume.restype = ctypes.c_long  # NTSTATUS
    return bool(nt_resume(process_handle) == 0)


def _resume_threads(pid: int) -> bool:
    import ctypes
    from ctypes import wintypes

    class ThreadEntry(ctypes.Structure):  # THREADENTRY32
        _fields_ = [
            ("dwSize", wintypes.DWORD),
            ("cntUsage", wintypes.DWORD),
            ("th32ThreadID", wintypes.DWORD),
            ("th32OwnerProcessID", wintypes.DWORD),
            ("tpBasePri", wintypes.LONG),
            ("tpDeltaPri", wintypes.LONG),
            ("dwFlags", wintypes.DWORD),
        ]

    kernel32 = _kernel32()
    snapshot = kernel32.CreateToolhelp32Snapshot(_TH32CS_SNAPTHREAD, 0)
    if not snapshot or snapshot == wintypes.HANDLE(-1).value:
        return False
    resumed = False
    try:
        entry = ThreadEntry()
        entry.dwSize = ctypes.sizeof(ThreadEntry)
        more = kernel32.Thread32First(snapshot, ctypes.byref(entry))
        while more:
            if entry.th32OwnerProcessID == pid:
                thread = kernel32.OpenThread(_THREAD_SUSPEND_RESUME, False, entry.th32ThreadID)
                if thread:
                    try:
                        # Down to 0: a thread created suspended has a count of 1.
                        while kernel32.ResumeThread(thread) > 1:
                            pass
                        resumed = True
                    finally:
                        kernel32.CloseHandle(thread)
            more = kernel32.Thread32Next(snapshot, ctypes.byref(entry))
    finally:
        kernel32.CloseHandle(snapshot)
    return resumed


def _create_kill_on_close_job() -> int:
    import ctypes

    kernel32 = _kernel32()
    handle = kernel32.CreateJobObjectW(None, None)  # unnamed; default security: not inheritable
    if not handle:
        raise _win_error()
    info = _extended_limit_type()()
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    if not kernel32.SetInformationJobObject(
        handle, _JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.byref(info), ctypes.sizeof(info)
    ):
        error = _win_error()
        kernel32.CloseHandle(handle)
        raise error
    return int(handle)


def _last_error() -> int:
    """The last Win32 error of this thread (kernel32 is loaded with ``use_last_error``)."""
    import ctypes

    return int(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]


def _win_error(message: str | None = None) -> OSError:
    """An ``OSError`` of `_last_error`."""
    import ctypes

    error: OSError = ctypes.WinError(_last_error(), message)  # type: ignore[attr-defined,unused-ignore]
    return error


_kernel32_dll: Any = None


def _kernel32() -> Any:
    """kernel32 through ctypes, with the prototypes this module uses (loaded once)."""
    global _kernel32_dll
    if _kernel32_dll is not None:
        return _kernel32_dll
    import ctypes
    from ctypes import wintypes

    k = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    h, b, d, v = wintypes.HANDLE, wintypes.BOOL, wintypes.DWORD, ctypes.c_void_p
    prototypes: dict[str, tuple[Any, list[Any]]] = {
        "CreateJobObjectW": (h, [v, wintypes.LPCWSTR]),
        "SetInformationJobObject": (b, [h, ctypes.c_int, v, d]),
        "QueryInformationJobObject": (b, [h, ctypes.c_int, v, d, v]),
        "AssignProcessToJobObject": (b, [h, h]),
        "TerminateJobObject": (b, [h, ctypes.c_uint]),
        "IsProcessInJob": (b, [h, h, v]),
        "OpenProcess": (h, [d, b, d]),
        "OpenThread": (h, [d, b, d]),
        "ResumeThread": (d, [h]),
        "DuplicateHandle": (b, [h, h, h, v, d, b, d]),
        "GetCurrentProcess": (h, []),
        "CloseHandle": (b, [h]),
        "CreateToolhelp32Snapshot": (h, [d, d]),
        "Thread32First": (b, [h, v]),
        "Thread32Next": (b, [h, v]),
    }
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(k, name)
        function.restype, function.argtypes = restype, argtypes
    _kernel32_dll = k
    return k


def _accounting_type() -> Any:
    import ctypes
    from ctypes import wintypes

    class BasicAccounting(ctypes.Structure):  # JOBOBJECT_BASIC_ACCOUNTING_INFORMATION
        _fields_ = [
            ("TotalUserTime", ctypes.c_int64),
            ("TotalKernelTime", ctypes.c_int64),
            ("ThisPeriodTotalUserTime", ctypes.c_int64),
            ("ThisPeriodTotalKernelTime", ctypes.c_int64),
            ("TotalPageFaultCount", wintypes.DWORD),
            ("TotalProcesses", wintypes.DWORD),
            ("ActiveProcesses", wintypes.DWORD),
            ("TotalTerminatedProcesses", wintypes.DWORD),
        ]

    return BasicAccounting


def _extended_limit_type() -> Any:
    import ctypes
    from ctypes import wintypes

    class BasicLimit(ctypes.Structure):  # JOBOBJECT_BASIC_LIMIT_INFORMATION
        _fields_ = [
            ("PerProcessUserTimeLimit", ctypes.c_int64),
            ("PerJobUserTimeLimit", ctypes.c_int64),
            ("LimitFlags", wintypes.DWORD),
            ("MinimumWorkingSetSize", ctypes.c_size_t),
            ("MaximumWorkingSetSize", ctypes.c_size_t),
            ("ActiveProcessLimit", wintypes.DWORD),
            ("Affinity", ctypes.c_size_t),
            ("PriorityClass", wintypes.DWORD),
            ("SchedulingClass", wintypes.DWORD),
        ]

    class IoCounters(ctypes.Structure):  # IO_COUNTERS
        _fields_ = [
            (name, ctypes.c_uint64)
            for name in (
                "ReadOperationCount",
                "WriteOperationCount",
                "OtherOperationCount",
                "ReadTransferCount",
                "WriteTransferCount",
                "OtherTransferCount",
            )
        ]

    class ExtendedLimit(ctypes.Structure):  # JOBOBJECT_EXTENDED_LIMIT_INFORMATION
        _fields_ = [
            ("BasicLimitInformation", BasicLimit),
            ("IoInfo", IoCounters),
            ("ProcessMemoryLimit", ctypes.c_size_t),
            ("JobMemoryLimit", ctypes.c_size_t),
            ("PeakProcessMemoryUsed", ctypes.c_size_t),
            ("PeakJobMemoryUsed", ctypes.c_size_t),
        ]

    return ExtendedLimit
