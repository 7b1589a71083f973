"""Reading processes from Linux's /proc, without psutil.

Rules of this module:

* Linux only, and it says so: on every other OS, and on a Linux whose /proc
  is not mounted (a chroot, a sandbox, a container without it), a function
  that needs /proc raises `ProcUnavailable` (an OSError) instead of
  answering: "cannot tell" is never taken for "gone" or "none".  Its callers
  fall back on psutil, or fail closed.
* A process that is gone is told from a /proc that is not there by
  looking at ``/proc/self`` once the read failed, so the common path costs
  nothing more.
* `PROC` is the only path it reads below: a test hides /proc by pointing it
  at an empty directory.
"""

from __future__ import annotations

import errno
import os

from ._os import LINUX, prctl

#: Where /proc is mounted (the tests point it elsewhere to hide it).
PROC = "/proc"


class ProcUnavailable(OSError):
    """/proc cannot answer here: every OS but Linux, or a Linux where it is not mounted."""

    def __init__(self) -> None:
        super().__init__(errno.ENOSYS, "no /proc to read here (not Linux, or not mounted)")


def _kernel_lists_children() -> bool:
    return LINUX and os.path.exists(f"{PROC}/self/task/{os.getpid()}/children")


#: Whether `child_pids` can answer.  Linux lists each thread's children in
#: /proc (CONFIG_PROC_CHILDREN, enabled by the common distributions' kernels).
KERNEL_LISTS_CHILDREN = _kernel_lists_children()


def child_pids(pid: int) -> list[int]:
    """The pids of ``pid``'s children, running or zombie; [] if ``pid`` is gone.

    Linux with `KERNEL_LISTS_CHILDREN` only: reads /proc/PID/task/*/children,
    which costs a few system calls per thread of ``pid``, where finding the
    children from the parent pid of every process (psutil's way, and the only
    one elsewhere) reads the whole process table.  Every other OS: raises
    `ProcUnavailable`.

    The kernel lists children per thread, and moves the children of a thread
    that exits to another thread, possibly one already read or one that
    started meanwhile: a look during which the threads changed is taken again
    (a few times at most).

    Raises:
        OSError: /proc could not be read for another reason than the process
            being gone (no descriptor left, say; `ProcUnavailable`: no /proc
            here): not knowing is not "none".
    """
    _require_linux()
    for _ in range(5):
        tids = _listdir_unless_gone(f"{PROC}/{pid}/task")
        if tids is None:
            return []
        found: set[int] = set()
        for tid in tids:
            found.update(_read_pids(f"{PROC}/{pid}/task/{tid}/children"))
        now = _listdir_unless_gone(f"{PROC}/{pid}/task")
        if now is None:
            return []
        if set(now) == set(tids):
            break
    return sorted(found)


def has_exited(pid: int) -> bool:
    """Linux: whether ``pid`` is gone or a zombie, from /proc/PID/stat.
    Every other OS: raises `ProcUnavailable` (psutil tells there).

    Raises:
        OSError: it could not be told (see `child_pids`).
    """
    _require_linux()
    stat = _read_proc_file(f"{PROC}/{pid}/stat")
    if not stat:
        return True
    after_name = stat.rfind(b")") + 2  # the state is the field after the (name)
    return stat[after_name : after_name + 1] in (b"Z", b"X", b"")


def threads_left(pid: int) -> bool:
    """Linux: whether ``pid``, a zombie, still has threads that have not
    exited: a leader that ended before the rest of its process, whose
    children are re-parented only when the last thread has.  False if it
    is gone, and on every other OS; True if it cannot be told (fail closed)."""
    if not LINUX:
        return False
    try:
        tids = _listdir_unless_gone(f"{PROC}/{pid}/task")
    except OSError:
        return True
    return tids is not None and len(tids) > 1


def started_at(pid: int) -> float | None:
    """Linux: when ``pid`` started, on psutil's clock (the boot time plus the
    start time in /proc/PID/stat), read without psutil; None if it is gone
    or a zombie.  Every other OS: raises `ProcUnavailable`.

    Raises:
        OSError: it could not be told (see `child_pids`).
    """
    _require_linux()
    stat = _read_proc_file(f"{PROC}/{pid}/stat") or b""
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in clock ticks


#: The name a joined member's bus thread takes (at most 15 bytes: Linux's limit).
MEMBER_THREAD_NAME = "shutdownbus:mbr"


def mark_member() -> None:
    """Let other processes see that this process joined the bus.

    Linux: the calling thread (the bus thread) takes `MEMBER_THREAD_NAME`
    as its name, which ``/proc/PID/task/TID/comm`` shows to anyone, and
    `joined_the_bus` looks for.  Every other OS: nothing.
    """
    pr_set_name = 15
    prctl(pr_set_name, MEMBER_THREAD_NAME.encode())


def parent_of(pid: int) -> int | None:
    """Linux: the parent pid of ``pid`` (0 for the first process of a PID
    namespace); None if it is gone.  Every other OS: raises `ProcUnavailable`.

    Raises:
        OSError: it could not be told (see `child_pids`).
    """
    _require_linux()
    stat = _read_proc_file(f"{PROC}/{pid}/stat") or b""
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def pids_of_this_user() -> list[int]:
    """The pids of every process of this user, from /proc: those whose
    /proc entry belongs to this process's effective uid (the kernel gives a
    process's entry its effective uid; a non-dumpable one, such as a setuid
    program, belongs to root and is not among them).

    Linux only: a guard looks among them for what a dead spawner left
    (`_guard`).  Every other OS: raises `ProcUnavailable`.

    Raises:
        OSError: /proc cannot be read (`ProcUnavailable`: no /proc here).
    """
    _require_linux()
    uid = os.geteuid()
    found = []
    for name in os.listdir(PROC):
        if name.isdigit():
            try:
                if os.stat(f"{PROC}/{name}").st_uid == uid:
                    found.append(int(name))
            except OSError:
                continue  # gone meanwhile
    return found


def joined_the_bus(pid: int) -> bool | None:
    """Whether process ``pid`` joined the bus (see `mark_member`).

    Linux: from the names of its threads.  Every other OS, a Linux without
    /proc, or a process that is gone: None (it cannot be told).
    """
    if not LINUX:
        return None
    try:
        tids = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return None
    marker = MEMBER_THREAD_NAME.encode()
    try:
        return any((_read_proc_file(f"{PROC}/{pid}/task/{tid}/comm") or b"").strip() == marker for tid in tids)
    except OSError:
        return None


def pid_namespace() -> str:
    """This process's PID namespace, as ``DEV:INODE`` of ``/proc/self/ns/pid``.

    Linux: two processes with the same value see the same pids.  Every other
    OS, or a Linux without /proc: empty (there is no namespace to tell apart).
    """
    if not LINUX:
        return ""
    try:
        st = os.stat(f"{PROC}/self/ns/pid")
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}"


_boot: list[float] = []


def _boot_time() -> float:
    """The boot time, as /proc/stat's ``btime`` gives it (psutil's too)."""
    if not _boot:
        for line in (_read_proc_file(f"{PROC}/stat") or b"").splitlines():
            if line.startswith(b"btime "):
                _boot.append(float(line.split()[1]))
                break
        else:
            raise ProcUnavailable()
    return _boot[0]


def _require_linux() -> None:
    if not LINUX:
        raise ProcUnavailable()


def _gone(exc: OSError) -> bool:
    """Whether a failure to read /proc/PID/... means that the process is gone
    (and not that /proc itself is missing: `ProcUnavailable` then)."""
    if exc.errno not in (errno.ENOENT, errno.ESRCH):
        return False
    if not os.path.isdir(f"{PROC}/self"):
        raise ProcUnavailable() from None
    return True


def _listdir_unless_gone(path: str) -> list[str] | None:
    try:
        return os.listdir(path)
    except OSError as exc:
        if _gone(exc):
            return None
        raise


def _read_pids(path: str) -> list[int]:
    """The pids a /proc list holds; [] if it is gone."""
    return [int(x) for x in (_read_proc_file(path) or b"").split()]


def _read_proc_file(path: str) -> bytes | None:
    """A /proc file's content, read to the end (/proc hands out at most a page
    per read); None if it is gone, what was read if it went meanwhile.

    Raises:
        OSError: it could not be opened for another reason (see `child_pids`).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if _gone(exc):
            return None
        raise
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)
