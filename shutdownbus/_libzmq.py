"""A small binding of our own to the libzmq that pyzmq's wheel ships, through ctypes.

Why: importing pyzmq costs a member some 20 ms of its start-up (its Cython
backend, and `platform`, json, pickle, random and typing with it), nearly
twice the interpreter's own start; loading its libzmq through ctypes, which
a member loads anyway (`prctl`), costs about 2 (docs/performance.md).  The
bus uses a small part of ZeroMQ, and this module binds that part only.

Rules of this module:

* It loads the libzmq of the pyzmq that ``import zmq`` would load, found as
  import finds it (the wheel bundles it: ``pyzmq.libs/`` on Linux,
  ``zmq/.dylibs/`` on macOS), never another, and only a libzmq 4.3 or later
  with CURVE.  Where there is none
  (Windows, whose wheel links libzmq into pyzmq's extension; a pyzmq built
  on the system's libzmq), importing this module raises ImportError and
  `_zmq` uses pyzmq instead.
* Its names and their behaviour are pyzmq's, for the part the bus uses, so
  that `_bus`, `_transport` and `_admin` run the same on either binding
  (tests/test_libzmq.py checks the constants against pyzmq's and the two
  bindings against each other).
* Every call into libzmq that can fail is checked, and a failure raises
  `ZMQError` with libzmq's errno and message (`Again` for EAGAIN).  A call
  interrupted by a signal is made again (PEP 475), so that a signal's Python
  handler runs in between and a KeyboardInterrupt goes through.
* ctypes releases the GIL for every call into libzmq, so a thread blocked in
  `Poller.poll` or `Context.term` holds nobody up.
* Nothing is freed by a finalizer: a socket ends with `Socket.close`, a
  context with `Context.term` or `Context.destroy`, and whoever makes one
  ends it on every path.  A closed socket forgets its handle (libzmq may
  give its memory to the next socket): using it raises ENOTSOCK, as a
  poller that still holds it does.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import itertools
import os
import sys
import time

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Iterable

# Socket types, options, flags, poll and monitor events: zmq.h's values
# (tests/test_libzmq.py compares them with pyzmq's).
PAIR = 0
REP = 4
RCVMORE = 13
LINGER = 17
RECONNECT_IVL = 18
MAXMSGSIZE = 22
RCVHWM = 24
LAST_ENDPOINT = 32
CURVE_SERVER = 47
CURVE_PUBLICKEY = 48
CURVE_SECRETKEY = 49
CURVE_SERVERKEY = 50
ZAP_DOMAIN = 55
HANDSHAKE_IVL = 66
NOBLOCK = 1
SNDMORE = 2
POLLIN = 1
POLLOUT = 2
EVENT_ACCEPTED = 0x20
EVENT_CLOSED = 0x80
EVENT_DISCONNECTED = 0x200
EVENT_HANDSHAKE_FAILED_NO_DETAIL = 0x800
EVENT_HANDSHAKE_SUCCEEDED = 0x1000
EVENT_HANDSHAKE_FAILED_PROTOCOL = 0x2000
EVENT_HANDSHAKE_FAILED_AUTH = 0x4000

_INT64_OPTIONS = frozenset({MAXMSGSIZE})  # the rest of those used here are ints
_ETERM = 156384712 + 53  # ZMQ_HAUSNUMERO + 53: the context was terminated
_MSG_SIZE = 64  # sizeof(zmq_msg_t)
_MIN_VERSION = (4, 3)


def _library_path() -> str | None:
    """The libzmq bundled with the pyzmq that ``import zmq`` would load, if any.

    pyzmq is found as import finds it (its spec, without importing it), and
    its wheel's libzmq is taken only when there is exactly one: never a
    library from anywhere else on the path.
    """
    module = sys.modules.get("zmq")
    origin = getattr(module, "__file__", None) if module is not None else None
    if module is None:
        # What importlib.util.find_spec does (its import would load contextlib and functools).
        for finder in sys.meta_path:
            try:
                spec = finder.find_spec("zmq", None)
            except (AttributeError, ImportError, ValueError):
                continue
            if spec is not None:
                origin = spec.origin if spec.submodule_search_locations is not None else None
                break
    if origin is None or os.path.basename(origin) != "__init__.py":
        return None
    package = os.path.dirname(os.path.abspath(origin))
    linux = (os.path.join(os.path.dirname(package), "pyzmq.libs"), ".so")  # auditwheel's place
    macos = (os.path.join(package, ".dylibs"), ".dylib")  # delocate's
    for folder, suffix in (linux, macos):
        try:
            names = [name for name in os.listdir(folder) if name.startswith("libzmq") and suffix in name]
        except OSError:
            continue
        return os.path.join(folder, names[0]) if len(names) == 1 else None
    return None


def _load() -> ctypes.CDLL:
    path = _library_path()
    if path is None:  # Windows' wheel has its libzmq inside pyzmq's extension
        raise ImportError("no libzmq bundled with pyzmq found")
    try:
        lib = ctypes.CDLL(path, use_errno=True)
    except OSError as exc:
        raise ImportError(f"cannot load {path}: {exc}") from None
    c_int, c_void_p, c_char_p, c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    signatures = {
        "zmq_version": (None, [ctypes.POINTER(c_int)] * 3),
        "zmq_has": (c_int, [c_char_p]),
        "zmq_strerror": (c_char_p, [c_int]),
        "zmq_ctx_new": (c_void_p, []),
        "zmq_ctx_term": (c_int, [c_void_p]),
        "zmq_socket": (c_void_p, [c_void_p, c_int]),
        "zmq_close": (c_int, [c_void_p]),
        "zmq_setsockopt": (c_int, [c_void_p, c_int, c_void_p, c_size_t]),
        "zmq_getsockopt": (c_int, [c_void_p, c_int, c_void_p, ctypes.POINTER(c_size_t)]),
        "zmq_bind": (c_int, [c_void_p, c_char_p]),
        "zmq_connect": (c_int, [c_void_p, c_char_p]),
        "zmq_send": (c_int, [c_void_p, c_char_p, c_size_t, c_int]),
        "zmq_msg_init": (c_int, [c_void_p]),
        "zmq_msg_recv": (c_int, [c_void_p, c_void_p, c_int]),
        "zmq_msg_data": (c_void_p, [c_void_p]),
        "zmq_msg_size": (c_size_t, [c_void_p]),
        "zmq_msg_more": (c_int, [c_void_p]),
        "zmq_msg_close": (c_int, [c_void_p]),
        "zmq_poll": (c_int, [c_void_p, c_int, ctypes.c_long]),
        "zmq_socket_monitor": (c_int, [c_void_p, c_char_p, c_int]),
        "zmq_curve_public": (c_int, [c_char_p, c_char_p]),
        "zmq_z85_encode": (c_void_p, [c_char_p, c_char_p, c_size_t]),
        "zmq_z85_decode": (c_void_p, [c_char_p, c_char_p]),
    }
    try:
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
    except AttributeError as exc:
        raise ImportError(f"{path} lacks {exc}") from None
    parts = [c_int(), c_int(), c_int()]
    lib.zmq_version(*(ctypes.byref(part) for part in parts))
    if (parts[0].value, parts[1].value) < _MIN_VERSION or not lib.zmq_has(b"curve"):
        raise ImportError(f"{path} is older than libzmq 4.3 or has no CURVE")
    return lib


_lib = _load()
_monitor_numbers = itertools.count(1)  # inproc addresses are per context: unique per process will do


class _PollItem(ctypes.Structure):
    # zmq_pollitem_t on POSIX (Windows has a SOCKET for the fd, but never
    # loads this module).
    _fields_ = (
        ("socket", ctypes.c_void_p),
        ("fd", ctypes.c_int),
        ("events", ctypes.c_short),
        ("revents", ctypes.c_short),
    )


class ZMQError(Exception):
    """A libzmq call failed (pyzmq's `zmq.ZMQError`).

    Args:
        errno: libzmq's error number.
    """

    def __init__(self, errno: int) -> None:
        self.errno = errno
        self.strerror = (_lib.zmq_strerror(errno) or b"").decode(errors="replace")
        super().__init__(self.strerror)

    def __str__(self) -> str:
        return self.strerror


class Again(ZMQError):
    """The call would block (EAGAIN), as pyzmq's `zmq.Again`."""


def _error() -> ZMQError:
    code = ctypes.get_errno()
    return Again(code) if code == _errno.EAGAIN else ZMQError(code)


def _check(rc: int) -> int:
    if rc == -1:
        raise _error()
    return rc


def has(capability: str) -> bool:
    """Whether libzmq has ``capability`` ("curve", "ipc"...)."""
    return bool(_lib.zmq_has(capability.encode()))


def zmq_version_info() -> tuple[int, int, int]:
    """libzmq's version."""
    parts = [ctypes.c_int(), ctypes.c_int(), ctypes.c_int()]
    _lib.zmq_version(*(ctypes.byref(part) for part in parts))
    return parts[0].value, parts[1].value, parts[2].value


def curve_public(secret_key: bytes) -> bytes:
    """The z85 public key of a z85 CURVE secret key.

    Raises:
        ZMQError: the key is not a z85 CURVE key.
    """
    if len(secret_key) != 40:
        raise ZMQError(_errno.EINVAL)
    public = ctypes.create_string_buffer(41)
    _check(_lib.zmq_curve_public(public, secret_key))
    return public.value


def z85_encode(data: bytes) -> bytes:
    """Z85 (ZeroMQ RFC 32) of ``data``, whose length is a multiple of 4."""
    if len(data) % 4:
        raise ValueError("z85 encodes a multiple of 4 bytes")
    out = ctypes.create_string_buffer(len(data) * 5 // 4 + 1)
    try:
        if not _lib.zmq_z85_encode(out, data, len(data)):
            raise ValueError("cannot z85-encode these bytes")
        return out.value
    finally:
        ctypes.memset(out, 0, len(out))  # it may be a CURVE secret key (`_transport`)


def z85_decode(text: bytes) -> bytes:
    """The bytes of a Z85 text, whose length is a multiple of 5."""
    if len(text) % 5:
        raise ValueError("z85 decodes a multiple of 5 characters")
    out = ctypes.create_string_buffer(len(text) * 4 // 5 or 1)
    if _lib.zmq_z85_decode(out, text) is None and text:
        raise ValueError("not z85 text")
    return out.raw[: len(text) * 4 // 5]


class Context:
    """A libzmq context (pyzmq's `zmq.Context`, the part the bus uses).

    Raises:
        ZMQError: libzmq cannot make one (no file descriptor left, say).
    """

    def __init__(self) -> None:
        handle = _lib.zmq_ctx_new()
        if not handle:
            raise _error()
        self._handle: int | None = handle
        self._options: dict[int, int | bytes] = {}  # for every socket made from now on
        self._sockets: set[Socket] = set()

    def setsockopt(self, option: int, value: int | bytes) -> None:
        """Set ``option`` on every socket this context makes from now on."""
        self._options[option] = value

    def socket(self, kind: int) -> Socket:
        """A new socket of ``kind`` (`PAIR`, `REP`).

        Raises:
            ZMQError: it cannot be made.
        """
        if self._handle is None:
            raise ZMQError(_ETERM)
        sock = Socket(self, kind)
        self._sockets.add(sock)
        try:
            for option, value in self._options.items():
                sock.setsockopt(option, value)
        except BaseException:
            sock.close(0)
            raise
        return sock

    def term(self) -> None:
        """End the context once every socket is closed (blocks until then)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            while _lib.zmq_ctx_term(handle) == -1 and ctypes.get_errno() == _errno.EINTR:
                pass

    def destroy(self, linger: int | None = None) -> None:
        """Close every socket this context made (with ``linger``), then `term`."""
        for sock in list(self._sockets):
            sock.close(linger)
        self.term()


class Socket:
    """A libzmq socket (pyzmq's `zmq.Socket`, the part the bus uses): bytes frames only."""

    def __init__(self, context: Context, kind: int) -> None:
        self.context = context
        handle = _lib.zmq_socket(context._handle, kind)
        if not handle:
            raise _error()
        self._handle: int | None = handle
        self.closed = False

    def _live(self) -> int:
        """The handle; a closed socket's is gone (libzmq may have reused its memory)."""
        if self._handle is None:
            raise ZMQError(_errno.ENOTSOCK)
        return self._handle

    def setsockopt(self, option: int, value: int | bytes) -> None:
        """Set an option: bytes as they are, ints as libzmq's int (int64 for `MAXMSGSIZE`)."""
        if isinstance(value, bytes):
            _check(_lib.zmq_setsockopt(self._live(), option, value, len(value)))
            return
        number = ctypes.c_int64(value) if option in _INT64_OPTIONS else ctypes.c_int(value)
        _check(_lib.zmq_setsockopt(self._live(), option, ctypes.byref(number), ctypes.sizeof(number)))

    def getsockopt(self, option: int) -> int:
        """An int option's value (`RCVMORE`, `LINGER`...)."""
        number = ctypes.c_int64() if option in _INT64_OPTIONS else ctypes.c_int()
        size = ctypes.c_size_t(ctypes.sizeof(number))
        _check(_lib.zmq_getsockopt(self._live(), option, ctypes.byref(number), ctypes.byref(size)))
        return number.value

    def getsockopt_string(self, option: int) -> str:
        """A string option's value (`LAST_ENDPOINT`)."""
        buffer = ctypes.create_string_buffer(1024)
        size = ctypes.c_size_t(len(buffer))
        _check(_lib.zmq_getsockopt(self._live(), option, buffer, ctypes.byref(size)))
        return buffer.value.decode()

    def bind(self, endpoint: str) -> None:
        """Bind to ``endpoint``."""
        _check(_lib.zmq_bind(self._live(), endpoint.encode()))

    def connect(self, endpoint: str) -> None:
        """Connect to ``endpoint``."""
        _check(_lib.zmq_connect(self._live(), endpoint.encode()))

    def send(self, data: bytes, flags: int = 0) -> None:
        """Send one frame (a copy of ``data``).

        Raises:
            Again: `NOBLOCK` and the frame cannot be queued now.
            ZMQError: libzmq refused it.
        """
        while _lib.zmq_send(self._live(), data, len(data), flags) == -1:
            exc = _error()
            if exc.errno != _errno.EINTR:
                raise exc

    def send_multipart(self, frames: Iterable[bytes], flags: int = 0) -> None:
        """Send a message of several frames."""
        frames = list(frames)
        for i, frame in enumerate(frames):
            self.send(frame, flags | (SNDMORE if i < len(frames) - 1 else 0))

    def _recv(self, flags: int) -> tuple[bytes, bool]:
        msg = (ctypes.c_uint64 * (_MSG_SIZE // 8))()  # zmq_msg_t: 64 bytes, aligned
        _lib.zmq_msg_init(msg)
        try:
            while _lib.zmq_msg_recv(msg, self._live(), flags) == -1:
                exc = _error()
                if exc.errno != _errno.EINTR:
                    raise exc
            size = _lib.zmq_msg_size(msg)
            data = ctypes.string_at(_lib.zmq_msg_data(msg), size) if size else b""
            return data, bool(_lib.zmq_msg_more(msg))
        finally:
            _lib.zmq_msg_close(msg)

    def recv(self, flags: int = 0) -> bytes:
        """Receive one frame.

        Raises:
            Again: `NOBLOCK` and nothing is waiting.
        """
        return self._recv(flags)[0]

    def recv_multipart(self, flags: int = 0) -> list[bytes]:
        """Receive every frame of one message."""
        frame, more = self._recv(flags)
        frames = [frame]
        while more:
            frame, more = self._recv(flags & ~NOBLOCK)  # the rest of a message is there with its first frame
            frames.append(frame)
        return frames

    def poll(self, timeout: float | None = None, flags: int = POLLIN) -> int:
        """Wait up to ``timeout`` ms (forever if None) for ``flags``; the events that came."""
        poller = Poller()
        poller.register(self, flags)
        ready = poller.poll(timeout)
        return ready[0][1] if ready else 0

    def monitor(self, address: str, events: int) -> None:
        """Publish this socket's ``events`` on the inproc PAIR ``address``."""
        _check(_lib.zmq_socket_monitor(self._live(), address.encode(), events))

    def disable_monitor(self) -> None:
        """Stop publishing this socket's events."""
        _check(_lib.zmq_socket_monitor(self._live(), None, 0))

    def get_monitor_socket(self, events: int) -> Socket:
        """A PAIR socket that receives this socket's ``events`` (as pyzmq's)."""
        address = f"inproc://shutdownbus-monitor-{next(_monitor_numbers)}"
        self.monitor(address, events)
        monitor = self.context.socket(PAIR)
        try:
            monitor.connect(address)
        except BaseException:
            monitor.close(0)
            raise
        return monitor

    def close(self, linger: int | None = None) -> None:
        """Close the socket, letting queued frames go for ``linger`` ms first
        (its `LINGER` if None); closing a closed socket does nothing."""
        if self._handle is None:
            return
        if linger is not None:
            try:
                self.setsockopt(LINGER, linger)
            except ZMQError:
                pass  # a context being terminated refuses options: the socket closes all the same
        handle, self._handle = self._handle, None
        self.closed = True
        self.context._sockets.discard(self)
        _lib.zmq_close(handle)


class Poller:
    """Wait on sockets and file descriptors at once (pyzmq's `zmq.Poller`)."""

    def __init__(self) -> None:
        self._registered: dict[Socket | int, int] = {}
        self._items: ctypes.Array[_PollItem] | None = None  # rebuilt after each change
        self._order: list[Socket | int] = []
        self._revents: memoryview | None = None  # the items' revents fields, read at C speed

    def register(self, target: Socket | int, flags: int = POLLIN) -> None:
        """Watch ``target`` (a socket or a file descriptor) for ``flags``."""
        self._registered[target] = flags
        self._items = None

    def modify(self, target: Socket | int, flags: int = POLLIN) -> None:
        """Watch ``target`` for ``flags`` instead."""
        self.register(target, flags)

    def unregister(self, target: Socket | int) -> None:
        """Stop watching ``target``."""
        del self._registered[target]
        self._items = None

    def poll(self, timeout: float | None = None) -> list[tuple[Socket | int, int]]:
        """Wait up to ``timeout`` ms (forever if None or negative) for an event.

        Returns:
            ``(target, events)`` for every target with one.

        Raises:
            ZMQError: libzmq's poll failed (a closed socket, say).
        """
        if self._items is None:
            self._order = list(self._registered)
            self._items = (_PollItem * len(self._order))()
            for item, target in zip(self._items, self._order, strict=True):
                if isinstance(target, Socket):
                    item.socket = target._live()
                else:
                    item.fd = target
                item.events = self._registered[target]
            # Every item's revents, without a Python object per item: 87
            # against 14 us a poll for 400 items.
            shorts = memoryview(self._items).cast("B").cast("h")
            self._revents = shorts[_PollItem.revents.offset // 2 :: ctypes.sizeof(_PollItem) // 2]
        if any(isinstance(target, Socket) and target.closed for target in self._order):
            raise ZMQError(_errno.ENOTSOCK)  # its handle in the items may be another socket's by now
        wait = -1 if timeout is None or timeout < 0 else int(timeout)
        deadline = None if wait < 0 else time.monotonic() + wait / 1000
        while True:
            count = _lib.zmq_poll(self._items, len(self._order), wait)
            if count != -1:
                break
            exc = _error()
            if exc.errno != _errno.EINTR:
                raise exc
            if deadline is not None:
                wait = max(0, int((deadline - time.monotonic()) * 1000))
        if not count:
            return []
        assert self._revents is not None
        order = self._order
        return [(order[i], events) for i, events in enumerate(self._revents.tolist()) if events]
