"""The per-user registry of stoppable roots, for ``shutdownbus send-stop``.

Rules of this module:

* One directory per user: ``$SHUTDOWNBUS_RUNTIME_DIR/shutdownbus`` when that
  is set (tests), else ``$XDG_RUNTIME_DIR/shutdownbus``, else
  ``<temp dir>/shutdownbus-<uid>``.  It is made 0700, and refused when it is
  not a directory owned by the user with no group or world access: its
  entries hold admin credentials.
* One JSON file per registered name, mode 0600, written to a temporary file
  and renamed into place, so a reader never sees half an entry.
* A corrupt or truncated entry is reported (`RegistryWarning` text) and
  skipped; an entry whose process is gone is removed, but only by a process
  that can tell: one in the same PID namespace (a root in a container that
  shares the directory has pids that mean other processes outside it).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _platform
from ._errors import RegistryError
from ._protocol import MAX_BUDGET
from ._transport import ENV_RUNTIME_DIR

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FORMAT = 2
_FORMATS = (1, 2)  # entries of format 1 have no PID namespace and no stop timeout


@dataclass(frozen=True)
class Entry:
    """One registered root.

    Attributes:
        name: The name ``send-stop`` finds it by.
        pid: The root's pid.
        started: The root's start time (``psutil.Process.create_time()``), to
            tell it from a later process that reused the pid.
        endpoint: Where the root's admin channel listens.
        secret: The admin credential (hex); never printed.
        argv: The root's command line, for ``list``.
        pid_namespace: The root's PID namespace (`_platform.pid_namespace`;
            empty where there is none to tell).
        stop_timeout: The stop timeout the root was started with: the
            default of ``send-stop``.
    """

    name: str
    pid: int
    started: float
    endpoint: str
    secret: str = field(repr=False)
    argv: tuple[str, ...] = ()
    pid_namespace: str = ""
    stop_timeout: float = 10.0

    def here(self) -> bool:
        """Whether the root's pid means the same process here (same PID namespace)."""
        mine = _platform.pid_namespace()
        return not (mine and self.pid_namespace) or mine == self.pid_namespace

    def alive(self) -> bool | None:
        """Whether the registered process is still the one running under that
        pid; None if that cannot be told from here (another PID namespace)."""
        import psutil

        if not self.here():
            return None
        try:
            proc = psutil.Process(self.pid)
            return bool(abs(proc.create_time() - self.started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False


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
    """The registry directory, created if missing and checked.

    Raises:
        RegistryError: it cannot be created, or is not private to this user.
    """
    base = os.environ.get(ENV_RUNTIME_DIR)
    if base:
        path = os.path.join(base, "shutdownbus")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = os.path.join(os.environ["XDG_RUNTIME_DIR"], "shutdownbus")
    else:
        uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
        path = os.path.join(tempfile.gettempdir(), f"shutdownbus-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RegistryError(f"cannot create the registry directory {path} ({exc.strerror})") from None
    _check_private(path)
    return path


def _check_private(path: str) -> None:
    if sys.platform == "win32":
        return  # per-user temp directories; POSIX modes do not apply
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise RegistryError(f"cannot read the registry directory {path} ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise RegistryError(f"the registry path {path} is not a directory; remove it")
    if st.st_uid != os.getuid():
        raise RegistryError(
            f"the registry directory {path} belongs to another user; remove it or set {ENV_RUNTIME_DIR}"
        )
    if st.st_mode & 0o077:
        raise RegistryError(
            f"the registry directory {path} is accessible to other users (mode {stat.S_IMODE(st.st_mode):o});"
            f" run 'chmod 700 {path}'"
        )


def write(entry: Entry) -> None:
    """Write ``entry`` atomically, mode 0600.

    Raises:
        RegistryError: a live root already has that name, or the file cannot be written.
    """
    folder = directory()
    existing = read(entry.name)
    if existing is not None and existing.pid != entry.pid and existing.alive() is not False:
        raise RegistryError(
            f"a tree named {entry.name!r} is already running (pid {existing.pid}); stop it first"
            f" ('shutdownbus send-stop {entry.name}') or choose another name"
        )
    data = json.dumps({"format": _FORMAT, **asdict(entry)}).encode()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(folder, entry.name))
    except OSError as exc:
        _unlink(tmp)
        raise RegistryError(f"cannot write the registry entry for {entry.name!r} ({exc.strerror})") from None
    _unlink(_stop_path(folder, entry.name))  # the record of an earlier root's stop


# -- the record of a stop under way ------------------------------------------------
#
# A root's admin channel serves one admin at a time.  So that a second
# ``send-stop`` joins a stop under way (the same end, the same report, the
# same exit status) instead of failing to reach the root, the admin that
# leads a stop says so in ``NAME.stop`` (created with O_EXCL: one leader),
# and writes the report there when it is done.


@dataclass(frozen=True)
class StopRecord:
    """A stop of a root under way, or done.

    Attributes:
        admin_pid: The leading admin's pid.
        admin_started: Its start time (to tell it from a process that reused the pid).
        timeout: The stop's timeout.
        report: The finished report (`StopReport.to_dict`), once there is one.
    """

    admin_pid: int
    admin_started: float
    timeout: float
    report: dict[str, Any] | None = None


def begin_stop(entry: Entry, timeout: float) -> StopRecord | None:
    """Lead the stop of ``entry``'s root, unless another admin does.

    Returns:
        None if this process leads it now; else the record of the stop that
        another live admin leads (or has finished).

    Raises:
        RegistryError: the record cannot be written.
    """
    import psutil

    folder = directory()
    path = _stop_path(folder, entry.name)
    mine = StopRecord(os.getpid(), psutil.Process().create_time(), timeout)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            current = read_stop(entry)
            if current is not None and (current.report is not None or leader_running(current)):
                return current
            _unlink(path)  # its admin died before it finished: lead it ourselves
            continue
        except OSError as exc:
            raise RegistryError(f"cannot record the stop of {entry.name!r} ({exc.strerror})") from None
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps({"root": [entry.pid, entry.started], **asdict(mine)}).encode())
        return None
    raise RegistryError(f"cannot record the stop of {entry.name!r}: its record keeps changing")


def finish_stop(entry: Entry, report: dict[str, Any] | None) -> None:
    """The leading admin is done: record ``report`` (None: drop the record, nobody can wait for it)."""
    import psutil

    folder = directory()
    path = _stop_path(folder, entry.name)
    if report is None:
        _unlink(path)
        return
    done = StopRecord(os.getpid(), psutil.Process().create_time(), 0.0, report)
    data = json.dumps({"root": [entry.pid, entry.started], **asdict(done)}).encode()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        _unlink(tmp)  # a joining admin falls back on its own view


def read_stop(entry: Entry) -> StopRecord | None:
    """The record of a stop of ``entry``'s root (not of an earlier root of that name), or None."""
    try:
        data = json.loads(_read_regular_file(_stop_path(directory(), entry.name)))
        root = data["root"]
        if root != [entry.pid, entry.started]:
            return None
        return StopRecord(int(data["admin_pid"]), float(data["admin_started"]), float(data["timeout"]), data["report"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def leader_running(record: StopRecord) -> bool:
    """Whether the admin that leads the stop of ``record`` still runs."""
    import psutil

    try:
        proc = psutil.Process(record.admin_pid)
        return bool(abs(proc.create_time() - record.admin_started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _stop_path(folder: str, name: str) -> str:
    return os.path.join(folder, check_name(name) + ".stop")


def _read_regular_file(path: str, limit: int = 1 << 20) -> bytes:
    """A regular file's content, read without blocking on a FIFO or a device
    planted in its place (``O_NONBLOCK``, then a type check)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError("too large")
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove(name: str, pid: int) -> None:
    """Remove ``name``'s entry if it is still the one of ``pid``."""
    try:
        folder = directory()
    except RegistryError:
        return
    current = read(name)
    if current is not None and current.pid == pid:
        _unlink(_path(folder, name))


def read(name: str) -> Entry | None:
    """The entry of ``name``, or None (missing or corrupt)."""
    entries, _ = _load(directory(), only=name)
    return entries[0] if entries else None


def entries() -> tuple[list[Entry], list[str]]:
    """Every entry that may be live, pruning those known dead; and a warning per corrupt entry.

    An entry of another PID namespace is kept (see `Entry.alive`).
    """
    live, problems = _load(directory())
    kept = []
    for entry in live:
        if entry.alive() is False:
            _unlink(_path(directory(), entry.name))
        else:
            kept.append(entry)
    return kept, problems


def find(target: str) -> Entry:
    """The live entry named ``target``, or registered for pid ``target``.

    Raises:
        RegistryError: no live root matches, or it runs in another PID
            namespace (its pid means another process here).
    """
    live, _ = entries()
    for entry in live:
        if entry.name == target and not entry.here():
            raise RegistryError(
                f"the tree {entry.name!r} runs in another PID namespace (a container?), where its pid means"
                " another process; run 'shutdownbus send-stop' inside that namespace"
            )
        if entry.here() and (entry.name == target or (target.isdigit() and entry.pid == int(target))):
            return entry
    what = f"with pid {target}" if target.isdigit() else f"named {target!r}"
    raise RegistryError(f"no running tree {what}; see 'shutdownbus list'")


def _load(folder: str, only: str | None = None) -> tuple[list[Entry], list[str]]:
    found, problems = [], []
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
        try:
            found.append(_parse(os.path.join(folder, filename), name))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"ignored the corrupt registry entry {filename} ({type(exc).__name__}); it can be removed")
    return found, problems


def _parse(path: str, name: str) -> Entry:
    data: dict[str, Any] = json.loads(_read_regular_file(path, limit=65536))
    if data.get("format") not in _FORMATS or data.get("name") != name:
        raise ValueError("unknown format")
    entry = Entry(
        name=str(data["name"]),
        pid=int(data["pid"]),
        started=float(data["started"]),
        endpoint=str(data["endpoint"]),
        secret=str(data["secret"]),
        argv=tuple(str(a) for a in data["argv"]),
        pid_namespace=str(data.get("pid_namespace", "")),
        stop_timeout=float(data.get("stop_timeout", 10.0)),
    )
    if entry.pid <= 0 or not entry.endpoint.startswith(("ipc://", "tcp://")):
        raise ValueError("bad values")
    if not (math.isfinite(entry.stop_timeout) and 0 < entry.stop_timeout <= MAX_BUDGET):
        raise ValueError("bad stop timeout")
    return entry


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
