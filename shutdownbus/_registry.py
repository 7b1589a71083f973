"""The per-user registry of stoppable roots, for ``shutdownbus send-stop``.

Rules of this module:

* One directory per user, the first safe one of `candidates`.  It is made
  0700, and a place is refused unless it is a directory of the user's that
  nobody else can enter, below directories that nobody else can change
  (`path_problem`): its entries hold admin credentials, and a process that
  could swap them could make ``send-stop`` signal a pid of its choosing.
* One JSON file per registered name, mode 0600, written to a temporary file
  and renamed into place, so a reader never sees half an entry; read without
  blocking and only if it is a regular file (a FIFO planted there would hang
  the reader).
* ``list`` and ``send-stop`` read it on every call: this module imports
  no more than they need (``tempfile`` only for the last-resort place).
* Every file read is checked field by field (shape, types, ranges): a
  broken one (`BrokenEntry`) affects its own name only, is reported with
  what to do, and is never removed behind the user's back.  An entry whose
  process is gone is removed, but only by a process that can tell: one in
  the same PID namespace (a root in a container that shares the directory
  has pids that mean other processes outside it).
* A name is checked and taken under the registry's lock (`_Lock`, an
  advisory lock the kernel drops with its holder), and a dead root's entry
  is pruned under it: one tree per name.
* The record of a stop (``NAME.stop``) helps admins join it; the stop never
  depends on it (`RecordNotKept`), and a record that says "finished" counts
  only once its root is gone.  Records and temporary files left over are
  removed a minute later (`_sweep`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time

from . import _platform, _processes
from ._deadlines import MAX_BUDGET
from ._environment import ENV_RUNTIME_DIR
from ._errors import RegistryError
from ._values import FrozenValue

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, TypeVar

    T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FORMAT = 2
_FORMATS = (1, 2)  # entries of format 1 have no PID namespace and no stop timeout


class Entry(FrozenValue):
    """One registered root.

    Attributes:
        name: The name ``send-stop`` finds it by.
        pid: The root's pid.
        started: The root's start time (`_processes.started`), to
            tell it from a later process that reused the pid.
        endpoint: Where the root's admin channel listens.
        secret: The admin credential (hex); never printed.
        argv: The root's command line, for ``list``.
        pid_namespace: The root's PID namespace (`_platform.pid_namespace`;
            empty where there is none to tell).
        stop_timeout: The stop timeout the root was started with: the
            default of ``send-stop``.
        policy: How the root's command is asked to go if it does not join
            (`_policy.StopPolicy.describe`: ``member or SIGTERM``, ``SIGQUIT``,
            ...), for ``list`` and ``tree``; empty for a root that registered
            itself (it has no command).
    """

    __slots__ = ("name", "pid", "started", "endpoint", "secret", "argv", "pid_namespace", "stop_timeout", "policy")
    _hidden = ("secret",)
    name: str
    pid: int
    started: float
    endpoint: str
    secret: str
    argv: tuple[str, ...]
    pid_namespace: str
    stop_timeout: float
    policy: str

    def __init__(
        self,
        name: str,
        pid: int,
        started: float,
        endpoint: str,
        secret: str,
        argv: tuple[str, ...] = (),
        pid_namespace: str = "",
        stop_timeout: float = 10.0,
        policy: str = "",
    ) -> None:
        self._init(name, pid, started, endpoint, secret, argv, pid_namespace, stop_timeout, policy)

    def here(self) -> bool:
        """Whether the root's pid means the same process here (same PID namespace)."""
        mine = _platform.pid_namespace()
        return not (mine and self.pid_namespace) or mine == self.pid_namespace

    def alive(self) -> bool | None:
        """Whether the registered process is still the one running under that
        pid; None if that cannot be told from here (another PID namespace)."""
        if not self.here():
            return None
        return _processes.still(self.pid, self.started)


def check_name(name: str) -> str:
    """Validate a registration name.

    Raises:
        RegistryError: it is not 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.
    """
    if not _NAME.match(name):
        raise RegistryError(
            f"invalid name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def directory() -> str:
    """The registry directory: the first safe place of `candidates`, made if missing.

    Every directory on its path is checked the way OpenSSH's StrictModes
    checks a user's files (`path_problem`): a registry that someone else can
    swap or fill is never used.  A place that another user took first (made
    before us, with their owner or modes) is skipped for the next one.

    Raises:
        RegistryError: no safe place exists (each refusal says why).
    """
    refused = []
    for path in candidates():
        problem = _make_private_directory(path)
        if problem is None:
            return path
        refused.append(problem)
        if os.environ.get(ENV_RUNTIME_DIR):
            break  # an explicit choice: no place of our own choosing instead
    raise RegistryError(
        "no safe place for the registry: " + "; ".join(refused) + f"; set {ENV_RUNTIME_DIR} to a directory of yours"
    )


def candidates() -> Iterator[str]:
    """Where the registry may be, best first (each worked out when asked for).

    * ``$SHUTDOWNBUS_RUNTIME_DIR/shutdownbus-UID`` when that is set (the
      only place then; the uid keeps users apart in a shared directory);
    * ``$XDG_RUNTIME_DIR/shutdownbus`` (per user, made by the login manager);
    * ``$XDG_STATE_HOME/shutdownbus/HOST`` (by default
      ``~/.local/state/shutdownbus/HOST``), under the user's home, where no
      other user can make it first; the host name keeps the hosts that share
      a home (over NFS) apart, as a pid means nothing on another host;
    * ``<temp dir>/shutdownbus-UID``, the last resort (anyone can make that
      name first, and then it is refused).

    Windows: ``%LOCALAPPDATA%\\shutdownbus``, else the per-user temp directory.
    """
    user = str(os.getuid()) if hasattr(os, "getuid") else _user_name()
    explicit = os.environ.get(ENV_RUNTIME_DIR)
    if explicit:
        yield os.path.join(explicit, f"shutdownbus-{user}")
        return
    if _platform.WINDOWS:
        if os.environ.get("LOCALAPPDATA"):
            yield os.path.join(os.environ["LOCALAPPDATA"], "shutdownbus")
    else:
        if os.environ.get("XDG_RUNTIME_DIR"):
            yield os.path.join(os.environ["XDG_RUNTIME_DIR"], "shutdownbus")
        home = os.path.expanduser("~")
        state = os.environ.get("XDG_STATE_HOME") or (os.path.join(home, ".local", "state") if home != "~" else "")
        if os.path.isabs(state):
            yield os.path.join(state, "shutdownbus", os.uname().nodename or "localhost")
    import tempfile  # some milliseconds (send-stop's start-up): only when every place above was refused

    yield os.path.join(tempfile.gettempdir(), f"shutdownbus-{user}")


def _user_name() -> str:
    import getpass

    return getpass.getuser()


def _make_private_directory(path: str) -> str | None:
    """Make ``path`` (0700, its missing parents 0700 too) and check it; the problem, or None."""
    parent = os.path.dirname(path)
    problem = path_problem(parent)
    if problem is not None and not os.path.isdir(parent):
        try:  # the XDG state home may not exist yet: make it, ours and private
            os.makedirs(parent, 0o700, exist_ok=True)
        except OSError as exc:
            return f"{parent} cannot be made ({exc.strerror})"
        problem = path_problem(parent)
    if problem is not None:
        return problem
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"{path} cannot be made ({exc.strerror})"
    return path_problem(path, private=True)


def path_problem(path: str, private: bool = False) -> str | None:
    """What makes ``path`` unsafe for our files, or None.

    POSIX: ``path`` and every directory above it (symbolic links resolved)
    must belong to us or to root, and none may be writable by others unless
    it is sticky (as /tmp is: then others cannot rename or remove what is
    ours in it).  With ``private``, ``path`` itself must be a directory of
    ours that nobody else can enter (0700).  Windows: per-user directories,
    whose ACLs POSIX modes do not describe; nothing is checked here.

    Args:
        path: The directory.
        private: Check ``path`` itself as the registry directory.
    """
    if _platform.WINDOWS:
        return None
    me = os.getuid()
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    if private:
        if not stat.S_ISDIR(st.st_mode):
            return f"{path} is not a directory (remove it)"
        if st.st_uid != me:
            return f"{path} belongs to another user"
        if st.st_mode & 0o077:
            return f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}; run 'chmod 700 {path}')"
    current = os.path.realpath(path)
    while True:
        try:
            st = os.stat(current)
        except OSError as exc:
            return f"{current} cannot be read ({exc.strerror})"
        if st.st_uid not in (me, 0):
            return f"{current} belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return f"{current} can be changed by other users and is not sticky (mode {stat.S_IMODE(st.st_mode):o})"
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def write(entry: Entry) -> None:
    """Write ``entry`` atomically, mode 0600.

    Raises:
        RegistryError: a live root already has that name, or the file cannot be written.
    """
    folder = directory()
    data = json.dumps({"format": _FORMAT, **entry.as_dict()}).encode()
    # Under the registry's lock: two roots registering one name at once
    # must not both find it free (each would run, one of them unreachable).
    with _Lock(folder, f"register {entry.name!r}"):
        existing = read(entry.name)
        if existing is not None and existing.pid != entry.pid and existing.alive() is not False:
            raise RegistryError(
                f"a tree named {entry.name!r} is already running (pid {existing.pid}); stop it first"
                f" ('shutdownbus send-stop {entry.name}') or choose another name"
            )
        try:
            _replace(folder, _path(folder, entry.name), data, sync=True)
        except OSError as exc:
            raise RegistryError(f"cannot write the registry entry for {entry.name!r} ({exc.strerror})") from None
    _unlink(_stop_path(folder, entry.name))  # the record of an earlier root's stop


class _Lock:
    """The registry's lock (``.lock`` in its directory), held while a name is
    checked and taken, and while a dead root's entry is pruned.

    An advisory lock that the kernel drops with its holder's last descriptor
    (flock; Windows: msvcrt.locking), so a holder that dies leaves nothing
    stale.  It is tried for `LOCK_WAIT` seconds at most, never waited for
    without a bound: a holder that hangs (stopped, say) costs a clear error.

    Args:
        folder: The registry directory.
        what: What it is taken for, for the error.
        wait: Seconds to try it for.

    Raises:
        RegistryError: (on entry) it cannot be made or taken in time.
    """

    def __init__(self, folder: str, what: str, wait: float | None = None) -> None:
        self.path = os.path.join(folder, ".lock")
        self.what = what
        self.wait = LOCK_WAIT if wait is None else wait
        self.fd = -1

    def __enter__(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = _windows_sharing_retry(lambda: os.open(self.path, flags, 0o600))
        except OSError as exc:
            raise RegistryError(f"cannot {self.what}: the registry's lock {self.path} ({exc.strerror})") from None
        end = time.monotonic() + self.wait
        while True:
            try:
                _try_lock(fd)
                self.fd = fd
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                if not _platform.WINDOWS:  # Windows says "held elsewhere" with EACCES or EDEADLOCK
                    os.close(fd)
                    raise RegistryError(f"cannot {self.what}: the registry's lock ({exc.strerror})") from None
            if time.monotonic() > end:
                os.close(fd)
                raise RegistryError(
                    f"cannot {self.what}: another process has held the registry's lock {self.path} for"
                    f" {self.wait:g} s (is a shutdownbus command stopped or hung?)"
                )
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            if _platform.WINDOWS:  # Windows frees a lock at close, but not at once: unlock first
                import msvcrt

                try:
                    os.lseek(self.fd, 0, os.SEEK_SET)
                    msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]
                except OSError:
                    pass
            os.close(self.fd)  # drops the lock with it
            self.fd = -1


def _try_lock(fd: int) -> None:
    """Take an exclusive lock on ``fd`` or raise at once (BlockingIOError:
    another holder; Windows: OSError, EACCES or EDEADLOCK)."""
    if _platform.WINDOWS:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks from the file position
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


#: How long the registry's lock is tried before giving up; for a prune, which can wait for the next look.
LOCK_WAIT, PRUNE_LOCK_WAIT = 5.0, 0.2


def _replace(folder: str, path: str, data: bytes, *, sync: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all: a new file (0600, a
    name of its own in ``folder``), renamed over ``path``.

    `tempfile.mkstemp`'s way, without its import (``send-stop`` writes here).

    Raises:
        OSError: it cannot be written; nothing is left behind.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-{os.urandom(6).hex()}")
        try:
            fd = os.open(tmp, flags, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name in {folder}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        _windows_sharing_retry(lambda: os.replace(tmp, path))
    except OSError:
        _unlink(tmp)
        raise



def _windows_sharing_retry(action: Callable[[], T]) -> T:
    """``action()``, tried again for up to `SHARING_WAIT` seconds while it
    fails with PermissionError on Windows: there a file that another process
    has open cannot be replaced, and a file being replaced cannot be opened
    (a joining ``send-stop`` reads ``NAME.stop`` while its leader writes the
    report there).  Elsewhere PermissionError is final, and raised at once."""
    end = time.monotonic() + SHARING_WAIT
    while True:
        try:
            return action()
        except PermissionError:
            if not _platform.WINDOWS or time.monotonic() > end:
                raise
            time.sleep(0.005)


#: How long a registry file is tried again while another process holds it (Windows).
SHARING_WAIT = 1.0


# -- the record of a stop under way ------------------------------------------------
#
# A root's admin channel serves one admin at a time.  So that a second
# ``send-stop`` joins a stop under way (the same end, the same report, the
# same exit status) instead of failing to reach the root, the admin that
# leads a stop says so in ``NAME.stop`` (created with O_EXCL: one leader),
# and writes the report there when it is done.


class StopRecord(FrozenValue):
    """A stop of a root under way, or done.

    Attributes:
        admin_pid: The leading admin's pid.
        admin_started: Its start time (to tell it from a process that reused the pid).
        timeout: The stop's timeout.
        report: The finished report (`StopReport.to_dict`), once there is one.
    """

    __slots__ = ("admin_pid", "admin_started", "timeout", "report")
    admin_pid: int
    admin_started: float
    timeout: float
    report: dict[str, Any] | None

    def __init__(
        self, admin_pid: int, admin_started: float, timeout: float, report: dict[str, Any] | None = None
    ) -> None:
        self._init(admin_pid, admin_started, timeout, report)


class RecordNotKept(RegistryError):
    """The record of a stop cannot be written (a full disk, no inode left):
    the stop goes on without it, and a second admin cannot join it."""


def begin_stop(entry: Entry, timeout: float) -> StopRecord | None:
    """Lead the stop of ``entry``'s root, unless another admin does.

    A record that says a stop is finished counts only once the root is gone:
    one that says so of a root still running (left from a stop that did not
    end it, or forged) would have an admin report success with nothing sent.

    Returns:
        None if this process leads it now; else the record of the stop that
        another live admin leads (or has finished).

    Raises:
        RecordNotKept: the record cannot be written; this process leads the
            stop, without a record (nothing is left behind).
        RegistryError: the record keeps changing under us.
    """
    folder = directory()
    path = _stop_path(folder, entry.name)
    mine = StopRecord(os.getpid(), _processes.started(), timeout)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            current = read_stop(entry)
            if current is not None and (
                leader_running(current) or (current.report is not None and entry.alive() is not True)
            ):
                return current
            _unlink(path)  # its admin died before it finished, or it is not true: lead it ourselves
            continue
        except OSError as exc:
            raise RecordNotKept(_not_kept(entry, exc)) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps({"root": [entry.pid, entry.started], **mine.as_dict()}).encode())
        except OSError as exc:
            _unlink(path)
            raise RecordNotKept(_not_kept(entry, exc)) from None
        return None
    raise RegistryError(f"cannot record the stop of {entry.name!r}: its record keeps changing")


def _not_kept(entry: Entry, exc: OSError) -> str:
    return (
        f"the record of this stop of {entry.name!r} could not be kept ({exc.strerror}); the stop goes on without it"
        " (another send-stop cannot join it meanwhile)"
    )


def finish_stop(entry: Entry, report: dict[str, Any] | None) -> None:
    """The leading admin is done: record ``report`` (None: drop the record,
    nobody can wait for it).  A report that cannot be written drops the
    record too: a joining admin then says it ended without one."""
    folder = directory()
    path = _stop_path(folder, entry.name)
    if report is None:
        _unlink(path)
        return
    done = StopRecord(os.getpid(), _processes.started(), 0.0, report)
    data = json.dumps({"root": [entry.pid, entry.started], **done.as_dict()}).encode()
    try:
        _replace(folder, path, data)
    except OSError:
        _unlink(path)


def read_stop(entry: Entry) -> StopRecord | None:
    """The record of a stop of ``entry``'s root (not of an earlier root of
    that name), or None (none, or not a record: every field is checked)."""
    try:
        data = _json_object(_read_regular_file(_stop_path(directory(), entry.name)))
        if data.get("root") != [entry.pid, entry.started]:
            return None
        report = data.get("report")
        return StopRecord(
            _number(data, "admin_pid", int, 1, _MAX_PID),
            _number(data, "admin_started", float, 0.0, 1e12),
            _number(data, "timeout", float, 0.0, MAX_BUDGET),
            None if report is None else _check_report(report, entry),
        )
    except (OSError, ValueError):
        return None


def _check_report(report: Any, entry: Entry) -> dict[str, Any]:
    """``report`` if it is a `StopReport.to_dict` of a stop of ``entry``'s
    root (its first row is the root's).

    Raises:
        Broken: it is not.
    """
    from ._errors import ProtocolError
    from ._protocol import check_entry  # send-stop has loaded it

    if not isinstance(report, dict) or not isinstance(report.get("reason"), str):
        raise Broken("not a report")
    rows, unchecked = report.get("entries"), report.get("unchecked", [])
    if not (isinstance(rows, list) and rows and isinstance(unchecked, list)):
        raise Broken("not a report")
    try:
        for row in rows:
            check_entry(row)
    except ProtocolError:
        raise Broken("not a report") from None
    if rows[0]["pid"] != entry.pid or not all(type(p) is int for p in unchecked):
        raise Broken("not a report of this root")
    _number(report, "seconds", float, 0.0, MAX_BUDGET * 2)
    return report


def leader_running(record: StopRecord) -> bool:
    """Whether the admin that leads the stop of ``record`` still runs."""
    return _processes.still(record.admin_pid, record.admin_started)


def _stop_path(folder: str, name: str) -> str:
    return os.path.join(folder, check_name(name) + ".stop")


def _read_regular_file(path: str, limit: int = 1 << 20) -> bytes:
    """A regular file's content, read without blocking on a FIFO or a device
    planted in its place (``O_NONBLOCK``, then a type check; Windows has
    neither the flag nor FIFOs in its file system)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = _windows_sharing_retry(lambda: os.open(path, flags))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Broken("not a regular file")
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Broken(f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove(name: str, pid: int, folder: str | None = None) -> None:
    """Remove ``name``'s entry if it is still the one of ``pid``; never raises
    (it runs at the root's exit).

    An entry that cannot be read now (no descriptor left, say) is removed
    too: while its root lives, nobody else can register its name.

    Args:
        name: The registered name.
        pid: The root's pid.
        folder: The registry directory it was written to (default: look it up).
    """
    try:
        path = _path(folder or directory(), name)
        try:
            current: Entry | None = _parse(path, name)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            current = None
        if current is None or current.pid == pid:
            _unlink(path)
    except (RegistryError, OSError):
        pass


def read(name: str) -> Entry | None:
    """The entry of ``name``, or None (missing or broken)."""
    entries, _ = _load(directory(), only=name)
    return entries[0] if entries else None


class BrokenEntry(FrozenValue):
    """A registry file that cannot be used: it affects its own name only.

    Attributes:
        name: The name its file is for.
        path: The file.
        reason: What is wrong with it.
    """

    __slots__ = ("name", "path", "reason")
    name: str
    path: str
    reason: str

    def __init__(self, name: str, path: str, reason: str) -> None:
        self._init(name, path, reason)

    def message(self) -> str:
        """What is wrong, and what to do."""
        return (
            f"the registry entry of {self.name!r} is broken ({self.reason}): remove {self.path}; a tree of that"
            " name, if one still runs, cannot be reached through it (find it with ps, stop it by its pid)"
        )


def entries() -> tuple[list[Entry], list[BrokenEntry]]:
    """Every entry that may be live, pruning those known dead; and the broken ones.

    An entry of another PID namespace is kept (see `Entry.alive`).
    """
    folder = directory()
    live, broken = _load(folder)
    kept = []
    for entry in live:
        if entry.alive() is False:
            _prune(folder, entry)
        else:
            kept.append(entry)
    _sweep(folder, {entry.name for entry in kept} | {problem.name for problem in broken})
    return kept, broken


#: How long the record of a stop is kept once its root's entry is gone (for
#: an admin that joined the stop, and reads the report once the root
#: exited), and how old a writer's temporary file must be to count as left
#: by a writer that died.
LEFT_OVER_AGE = 60.0


def _sweep(folder: str, names: set[str]) -> None:
    """Remove what would pile up: ``NAME.stop`` records older than
    `LEFT_OVER_AGE` whose NAME has no entry any more, and temporary files of
    writers that died.  Housekeeping: it never raises."""
    try:
        files = os.listdir(folder)
    except OSError:
        return
    now = time.time()
    for filename in files:
        if filename.endswith(".stop") and filename[: -len(".stop")] not in names:
            pass
        elif not filename.startswith(".tmp-"):
            continue
        path = os.path.join(folder, filename)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if now - st.st_mtime > LEFT_OVER_AGE and not stat.S_ISDIR(st.st_mode):
            _unlink(path)


def _prune(folder: str, entry: Entry) -> None:
    """Remove the entry of a root seen dead, unless a new root took the name
    meanwhile (looked at again under the registry's lock).  Pruning is
    housekeeping: when the lock cannot be had, it waits for the next look."""
    path = _path(folder, entry.name)
    try:
        with _Lock(folder, "prune", wait=PRUNE_LOCK_WAIT):
            current = _parse(path, entry.name)
            if (current.pid, current.started) == (entry.pid, entry.started):
                _unlink(path)
    except (RegistryError, OSError, ValueError):
        pass


def find(target: str) -> Entry:
    """The live entry named ``target``.

    A name only: a bare number is a name too (names come from ports, 3000
    and 8080, and meet real pids), so it never stops the tree whose root
    happens to have that pid; `find_pid` looks pids up.

    Raises:
        RegistryError: no live root has that name (and, for a number, one
            has that pid: the error says how to ask for it), its entry is
            broken, or it runs in another PID namespace (its pid means another
            process here).
    """
    live, broken = entries()
    for entry in live:
        if entry.name == target:
            if not entry.here():
                raise RegistryError(
                    f"the tree {entry.name!r} runs in another PID namespace (a container?), where its pid means"
                    " another process; run 'shutdownbus send-stop' inside that namespace"
                )
            return entry
    for problem in broken:
        if problem.name == target:
            raise RegistryError(problem.message())
    if target.isdigit():
        for entry in live:
            if entry.here() and str(entry.pid) == target:
                raise RegistryError(
                    f"no tree is named {target!r}, but pid {target} is the root of the tree {entry.name!r}:"
                    f" give its name, or the pid as '--pid {target}'"
                )
    raise RegistryError(f"no running tree named {target!r}; see 'shutdownbus list'")


def find_pid(pid: int) -> Entry:
    """The live entry whose root is process ``pid`` (in this PID namespace).

    Raises:
        RegistryError: no live root of this PID namespace has that pid.
    """
    live, _ = entries()
    for entry in live:
        if entry.here() and entry.pid == pid:
            return entry
    raise RegistryError(f"no running tree with root pid {pid}; see 'shutdownbus list'")


def _load(folder: str, only: str | None = None) -> tuple[list[Entry], list[BrokenEntry]]:
    found, broken = [], []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise RegistryError(f"cannot read the registry directory {folder} ({exc.strerror})") from None
    for filename in names:
        if not filename.endswith(".json") or filename.startswith("."):
            continue
        name = filename[: -len(".json")]
        if only is not None and name != only:
            continue
        path = os.path.join(folder, filename)
        try:
            found.append(_parse(path, name))
        except FileNotFoundError:
            continue  # removed since the listing: its root is gone
        except OSError as exc:
            broken.append(BrokenEntry(name, path, f"cannot be read: {exc.strerror}"))
        except ValueError as exc:
            broken.append(BrokenEntry(name, path, str(exc)))
    return found, broken


def _parse(path: str, name: str) -> Entry:
    """The entry in ``path``, every field checked for its type and range.

    Raises:
        OSError: it cannot be read.
        ValueError: it is not an entry of ``name`` (`Broken`, saying what is wrong).
    """
    data = _json_object(_read_regular_file(path, limit=65536))
    if data.get("format") not in _FORMATS:
        raise Broken("unknown format")
    if data.get("name") != name or not _NAME.match(name):
        raise Broken("not the entry of its file name")
    argv = data.get("argv")
    if not (isinstance(argv, list) and len(argv) <= 4096 and all(isinstance(a, str) for a in argv)):
        raise Broken("'argv' is not a list of strings")
    entry = Entry(
        name=name,
        pid=_number(data, "pid", int, 1, _MAX_PID),
        started=_number(data, "started", float, 0.0, 1e12),
        endpoint=_text(data, "endpoint"),
        secret=_text(data, "secret"),
        argv=tuple(argv),
        pid_namespace=_text(data, "pid_namespace", ""),
        stop_timeout=_number(data, "stop_timeout", float, 0.0, MAX_BUDGET, 10.0),
        policy=_text(data, "policy", ""),
    )
    if len(entry.policy) > 64:
        raise Broken("'policy' is too long")
    if not entry.endpoint.startswith(("ipc://", "tcp://")):
        raise Broken("'endpoint' is not ipc:// or tcp://")
    if not re.fullmatch(r"[0-9a-f]{64}", entry.secret):
        raise Broken("'secret' is not a credential")
    if entry.stop_timeout <= 0:
        raise Broken("'stop_timeout' is not positive")
    return entry


class Broken(ValueError):
    """A registry file that is not what it must be; the message says what is wrong."""


#: The largest pid any system gives (Linux's limit is 2**22).
_MAX_PID = 2**31 - 1


def _json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object.

    Raises:
        Broken: it is not JSON (or nested too deep to read), or not an object.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise Broken("nested too deep") from None
    except ValueError:  # also UnicodeDecodeError
        raise Broken("not JSON") from None
    if not isinstance(data, dict):
        raise Broken("not a JSON object")
    return data


def _number(data: dict[str, Any], key: str, kind: type, low: float, high: float, default: float | None = None) -> Any:
    """``data[key]``, a finite number (an integer for ``kind`` int) within [low, high].

    Raises:
        Broken: it is missing (without ``default``), of another type, or out of range.
    """
    value: Any = data.get(key, default)
    allowed = (int,) if kind is int else (int, float)
    if type(value) not in allowed or not low <= value <= high:  # NaN and infinities fail too
        raise Broken(f"{key!r} is not {'an integer' if kind is int else 'a number'} from {low:g} to {high:g}")
    return kind(value)


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    """``data[key]``, a string of at most 4096 characters.

    Raises:
        Broken: it is missing (without ``default``), not a string, or too long.
    """
    value = data.get(key, default)
    if not isinstance(value, str) or len(value) > 4096:
        raise Broken(f"{key!r} is not a string")
    return value


def _path(folder: str, name: str) -> str:
    return os.path.join(folder, check_name(name) + ".json")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def uptime(entry: Entry) -> float:
    """Seconds since the root started."""
    return max(0.0, time.time() - entry.started)
