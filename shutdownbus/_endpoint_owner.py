"""Whether a process holds a channel's endpoint: what ties a registry entry to its root.

Rules of this module:

* Used by the admin only (`_admin`), before anything is signalled: a forged
  entry can pair a channel of its own with a pid of the victim's.
* Three answers: True, False, and None where it cannot be told (another
  user's process, a system whose connection table names no listener); the
  caller never signals on None.
"""

from __future__ import annotations

import functools
import os

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

    import psutil


def holds_endpoint(pid: int, endpoint: str) -> bool | None:
    """Whether process ``pid`` listens on ``endpoint`` (``ipc://PATH`` or
    ``tcp://HOST:PORT``): its socket is among that process's open files.

    What ties a registry entry's pid to the channel an admin talked to: a
    forged entry can pair a channel of its own with a pid of the victim's.

    Returns:
        True or False; None if it cannot be told (the process's files are
        not ours to read, or the endpoint is of another kind).
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if endpoint.startswith("ipc://"):
            path = os.path.realpath(endpoint[len("ipc://") :])
            return any(c.laddr and os.path.realpath(c.laddr) == path for c in proc.net_connections(kind="unix"))
        if endpoint.startswith("tcp://"):
            port = int(endpoint.rsplit(":", 1)[1])
            if _listening_ports(proc, psutil).count(port):
                return True
            return False if _connection_table_names_listeners() else None
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except (psutil.Error, OSError, ValueError):
        return None
    return None


def _listening_ports(proc: psutil.Process, psutil: Any) -> list[int]:
    return [c.laddr.port for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr]


@functools.cache
def _connection_table_names_listeners() -> bool:
    """Whether this system's connection table tells which process listens on
    a tcp port: asked once, of a socket of our own.  Some do not (wine lists
    every connection with no owner), and there "not among its sockets" only
    means "cannot be told"."""
    import socket

    import psutil

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        probe.listen(1)
        try:
            return probe.getsockname()[1] in _listening_ports(psutil.Process(), psutil)
        except (psutil.Error, OSError):
            return False
