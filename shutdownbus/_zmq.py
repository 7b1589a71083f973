"""The ZeroMQ binding the bus runs on: ours where it can load, pyzmq's elsewhere.

Rules of this module:

* `_libzmq` (ctypes onto the libzmq that pyzmq's wheel bundles) is used
  wherever it loads: Linux and macOS with pyzmq's wheels.  Elsewhere
  (Windows, a pyzmq built on another libzmq), or when
  ``SHUTDOWNBUS_ZMQ_BINDING=pyzmq`` is set, pyzmq itself: the same names,
  the same behaviour, some 20 ms more to import.
* Every other module reaches ZeroMQ through this one, never through pyzmq
  (tests/test_libzmq.py checks it): a process then has one binding, and
  its sockets, pollers and errors are all of that binding.
* Importing it loads a binding: whoever imports it is about to make a
  socket (``shutdownbus list`` and the registry never import it).  A value
  of the variable other than ``pyzmq`` is refused (ChannelError), as a
  wrong ``SHUTDOWNBUS_TRANSPORT`` is.
"""

from __future__ import annotations

import os

from ._environment import ENV_ZMQ_BINDING
from ._errors import ChannelError

#: Why pyzmq's binding is in use ("" when ours is): for a bug report.
WHY_PYZMQ = ""

_ASKED = os.environ.get(ENV_ZMQ_BINDING, "").strip().lower()
if _ASKED not in ("", "pyzmq"):
    raise ChannelError(f"{ENV_ZMQ_BINDING} must be 'pyzmq' or unset, not {_ASKED!r}")

try:
    if _ASKED == "pyzmq":
        raise ImportError(f"{ENV_ZMQ_BINDING}=pyzmq")
    from ._libzmq import (
        CURVE_PUBLICKEY,
        CURVE_SECRETKEY,
        CURVE_SERVER,
        CURVE_SERVERKEY,
        EVENT_ACCEPTED,
        EVENT_CLOSED,
        EVENT_DISCONNECTED,
        EVENT_HANDSHAKE_FAILED_AUTH,
        EVENT_HANDSHAKE_FAILED_NO_DETAIL,
        EVENT_HANDSHAKE_FAILED_PROTOCOL,
        EVENT_HANDSHAKE_SUCCEEDED,
        HANDSHAKE_IVL,
        LAST_ENDPOINT,
        LINGER,
        MAXMSGSIZE,
        NOBLOCK,
        PAIR,
        POLLIN,
        POLLOUT,
        RCVHWM,
        RECONNECT_IVL,
        REP,
        ZAP_DOMAIN,
        Again,
        Context,
        Poller,
        Socket,
        ZMQError,
        curve_public,
        has,
        z85_decode,
        z85_encode,
        zmq_version_info,
    )

    BINDING = "shutdownbus (ctypes)"
except ImportError as exc:
    WHY_PYZMQ = str(exc)
    import zmq
    from zmq import (  # type: ignore[assignment]
        CURVE_PUBLICKEY,
        CURVE_SECRETKEY,
        CURVE_SERVER,
        CURVE_SERVERKEY,
        EVENT_ACCEPTED,
        EVENT_CLOSED,
        EVENT_DISCONNECTED,
        EVENT_HANDSHAKE_FAILED_AUTH,
        EVENT_HANDSHAKE_FAILED_NO_DETAIL,
        EVENT_HANDSHAKE_FAILED_PROTOCOL,
        EVENT_HANDSHAKE_SUCCEEDED,
        HANDSHAKE_IVL,
        LAST_ENDPOINT,
        LINGER,
        MAXMSGSIZE,
        NOBLOCK,
        PAIR,
        POLLIN,
        POLLOUT,
        RCVHWM,
        RECONNECT_IVL,
        REP,
        ZAP_DOMAIN,
        Again,
        Context,
        Poller,
        Socket,
        ZMQError,
        curve_public,
        has,
    )
    from zmq.utils import z85

    z85_encode = z85.encode  # type: ignore[assignment]
    z85_decode = z85.decode  # type: ignore[assignment]
    zmq_version_info = zmq.zmq_version_info
    BINDING = "pyzmq"

__all__ = [
    "BINDING",
    "CURVE_PUBLICKEY",
    "CURVE_SECRETKEY",
    "CURVE_SERVER",
    "CURVE_SERVERKEY",
    "EVENT_ACCEPTED",
    "EVENT_CLOSED",
    "EVENT_DISCONNECTED",
    "EVENT_HANDSHAKE_FAILED_AUTH",
    "EVENT_HANDSHAKE_FAILED_NO_DETAIL",
    "EVENT_HANDSHAKE_FAILED_PROTOCOL",
    "EVENT_HANDSHAKE_SUCCEEDED",
    "HANDSHAKE_IVL",
    "LAST_ENDPOINT",
    "LINGER",
    "MAXMSGSIZE",
    "NOBLOCK",
    "PAIR",
    "POLLIN",
    "POLLOUT",
    "RCVHWM",
    "RECONNECT_IVL",
    "REP",
    "WHY_PYZMQ",
    "ZAP_DOMAIN",
    "Again",
    "Context",
    "Poller",
    "Socket",
    "ZMQError",
    "curve_public",
    "has",
    "z85_decode",
    "z85_encode",
    "zmq_version_info",
]
