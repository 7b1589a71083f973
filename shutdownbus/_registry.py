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
  skipped; an entry whose process is gone is removed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import RegistryError
from ._transport import ENV_RUNTIME_DIR

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FORMAT = 1


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
    """

    name: str
    pid: int
    started: float
    endpoint: str
    secret: str = field(repr=False)
    argv: tuple[str, ...] = ()

    def alive(self) -> bool:
        """Whether the registered process is still the one running under that pid."""
        import psutil

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
    if existing is not None and existing.pid != entry.pid and existing.alive():
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
    """Every live entry, pruning the dead; and a warning per corrupt entry."""
    live, problems = _load(directory())
    kept = []
    for entry in live:
        if entry.alive():
            kept.append(entry)
        else:
            _unlink(_path(directory(), entry.name))
    return kept, problems


def find(target: str) -> Entry:
    """The live entry named ``target``, or registered for pid ``target``.

    Raises:
        RegistryError: no live root matches.
    """
    live, _ = entries()
    for entry in live:
        if entry.name == target or (target.isdigit() and entry.pid == int(target)):
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
    with open(path, "rb") as f:
        data: dict[str, Any] = json.loads(f.read(65536))
    if data.get("format") != _FORMAT or data.get("name") != name:
        raise ValueError("unknown format")
    entry = Entry(
        name=str(data["name"]),
        pid=int(data["pid"]),
        started=float(data["started"]),
        endpoint=str(data["endpoint"]),
        secret=str(data["secret"]),
        argv=tuple(str(a) for a in data["argv"]),
    )
    if entry.pid <= 0 or not entry.endpoint.startswith(("ipc://", "tcp://")):
        raise ValueError("bad values")
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
