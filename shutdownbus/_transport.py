"""The zmq transport under the sans-IO protocol: keys, endpoints, sockets.

Rules of this module:

* It moves whole frames and decides nothing about their meaning.
* Every channel socket is a PAIR socket secured with CURVE.  Both key pairs
  are derived from the per-spawn secret, and the parent's ZAP handler admits
  only the client key of the child it spawned on that socket.  So a peer that
  does not hold the secret never completes the transport handshake and never
  occupies the PAIR socket (a plain PAIR socket accepts its first peer,
  whoever that is, and locks the real child out).
* Frames over `MAX_FRAME_SIZE` (plus CURVE's overhead) are refused by libzmq
  (ZMQ_MAXMSGSIZE) before they are read whole; the peer that sent one is
  disconnected.
* Endpoints: ``ipc://`` in a private 0700 runtime directory on POSIX,
  ``tcp://127.0.0.1`` with a random port on Windows or when
  ``SHUTDOWNBUS_TRANSPORT=tcp`` is set.  A runtime directory is named for
  its owner (an ``owner`` file in it) and removed at its exit; one that a
  killed process left is removed later, once its owner is provably dead
  (`sweep_stale_runtime_dirs`, which ``shutdownbus send-stop`` calls).
* The ZeroMQ binding (`_zmq`) is imported by the functions that use it, not
  by this module: ``shutdownbus list`` reads the variables' names here
  (through the registry and the process trees) and has no socket to make.
  Whatever calls these functions (`_bus`, `_admin`) has loaded it already.
"""

from __future__ import annotations

import os
import sys

from . import _platform
from ._environment import ENV_ENDPOINT, ENV_RUNTIME_DIR, ENV_SECRET, ENV_TRANSPORT
from ._errors import ChannelError
from ._hmac import compare_digest, hmac_sha256
from ._protocol import MAX_FRAME_SIZE, SECRET_SIZE

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from . import _zmq

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
# libzmq counts CURVE's per-message overhead (33 bytes) against
# ZMQ_MAXMSGSIZE; the protocol itself refuses frames over MAX_FRAME_SIZE.
CURVE_OVERHEAD = 64
# A connection that has not finished the CURVE handshake by then is dropped:
# what a silent intruder holds (a descriptor, at most one frame) lasts no
# longer.  The child connects once it has started, and its handshake takes
# milliseconds.  libzmq reads it when the socket binds: it cannot change later.
HANDSHAKE_IVL_MS = 1000
#: The largest frame a registered root takes on its admin channel.  An admin
#: plays the parent there and sends only small frames (a knock, the parent's
#: handshake steps, a stop whose reason is at most `MAX_TEXT_LENGTH` code
#: points, acknowledgements: about 1.2 KiB at most); reports go the other way.
#: libzmq allocates a frame's whole size as soon as it reads its header, so
#: this is also what a peer that never authenticates can make the root hold
#: for its message: 4 KiB, not `MAX_FRAME_SIZE` (docs/security.md).
MAX_ADMIN_FRAME_SIZE = 4 << 10
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 104 (macOS) or 108 (Linux) bytes


class ChannelKeys:
    """Everything derived from one per-spawn secret.

    CURVE keys are z85-encoded, as libzmq's socket options want them.  The
    secret is held in one ``bytearray``, which the channel's protocol state
    shares, so that `wipe` can overwrite it once the channel is closed.
    """

    __slots__ = ("client_public", "client_secret", "secret", "server_public", "server_secret")

    def __init__(
        self, secret: bytearray, server_public: bytes, server_secret: bytes, client_public: bytes, client_secret: bytes
    ) -> None:
        self.secret = secret
        self.server_public = server_public
        self.server_secret = server_secret
        self.client_public = client_public
        self.client_secret = client_secret

    def __repr__(self) -> str:
        return "<ChannelKeys>"  # all of it is secret

    def wipe(self) -> None:
        """Overwrite the secret and drop the CURVE secret keys: the channel is closed.

        The z85 CURVE keys are immutable bytes (and libzmq keeps its own copy
        for the socket's life): they are only dropped.
        """
        self.secret[:] = bytes(len(self.secret))
        self.server_secret = self.client_secret = b""

    @classmethod
    def derive(cls, secret: bytes | bytearray) -> ChannelKeys:
        """Derive both CURVE key pairs from the per-spawn secret.

        Args:
            secret: `SECRET_SIZE` random bytes.

        Returns:
            The channel's keys.
        """
        from . import _zmq

        server_secret = _curve_secret(secret, b"curve-server")
        client_secret = _curve_secret(secret, b"curve-client")
        return cls(
            secret=bytearray(secret),
            server_public=_zmq.curve_public(server_secret),
            server_secret=server_secret,
            client_public=_zmq.curve_public(client_secret),
            client_secret=client_secret,
        )

    @classmethod
    def generate(cls) -> ChannelKeys:
        """Keys for a new spawn, from a fresh random secret."""
        return cls.derive(os.urandom(SECRET_SIZE))

    def encoded_secret(self) -> str:
        """The secret as handed over in the environment (hex)."""
        return self.secret.hex()

    @classmethod
    def from_encoded(cls, text: str) -> ChannelKeys:
        """Parse the secret from the environment.

        Raises:
            ChannelError: the variable does not hold a valid secret.
        """
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) != SECRET_SIZE:
            raise ChannelError(
                f"{ENV_SECRET} does not hold a valid secret; start this process with shutdownbus.spawn()"
                " and do not set the variable by hand"
            )
        return cls.derive(secret)

    def client_public_raw(self) -> bytes:
        """The child's public key in the 32-byte form ZAP requests carry."""
        from . import _zmq

        return _zmq.z85_decode(self.client_public)


def _curve_secret(secret: bytes | bytearray, label: bytes) -> bytes:
    from . import _zmq

    raw = hmac_sha256(secret, b"shutdownbus/1 " + label)
    return _zmq.z85_encode(raw)


def curve_available() -> bool:
    """Whether this libzmq was built with CURVE security."""
    from . import _zmq

    return bool(_zmq.has("curve"))


def _require_curve() -> None:
    if not curve_available():
        raise ChannelError(
            "this libzmq has no CURVE support, which shutdownbus needs to keep other processes off"
            " its channels; install the pyzmq wheel from PyPI (it bundles a libzmq with CURVE)"
        )


def use_tcp() -> bool:
    """Whether channels use tcp on loopback rather than ipc."""
    from . import _zmq

    choice = os.environ.get(ENV_TRANSPORT, "").strip().lower()
    if choice not in ("", "ipc", "tcp"):
        raise ChannelError(f"{ENV_TRANSPORT} must be 'ipc' or 'tcp', not {choice!r}")
    return choice == "tcp" or _platform.WINDOWS or not _zmq.has("ipc")


class RuntimeDir:
    """A private directory (0700, made by mkdtemp) for this process's ipc endpoints.

    Made on first use, under ``$SHUTDOWNBUS_RUNTIME_DIR``, else
    ``$XDG_RUNTIME_DIR``, else the system temp directory; removed by `close`.
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self._base: str | None = None
        self._made: list[str] = []
        self._count = 0

    def next_endpoint(self) -> str:
        """A fresh ``ipc://`` endpoint in the directory.

        Raises:
            ChannelError: the directory cannot be made or its path is too long for a socket.
        """
        import tempfile  # only a process that spawns needs it

        base = runtime_base()
        # Make a new directory if the setting changed, or if ours was removed
        # under us (tmp cleaners remove old directories in /tmp).
        if self.path is None or self._base != base or not os.path.isdir(self.path):
            self._base = base
            try:
                self.path = tempfile.mkdtemp(prefix="sb-", dir=base)
                self._made.append(self.path)
                _sign(self.path)
            except OSError as exc:
                raise ChannelError(
                    f"cannot create a runtime directory under {base!r} ({exc.strerror}); set"
                    f" {ENV_RUNTIME_DIR} to a writable directory"
                ) from None
        self._count += 1
        path = os.path.join(self.path, str(self._count))
        if len(path.encode()) > _SUN_PATH_MAX:
            raise ChannelError(
                f"the ipc socket path {path!r} is too long for the OS; set {ENV_RUNTIME_DIR}"
                f" to a shorter directory or {ENV_TRANSPORT}=tcp"
            )
        return "ipc://" + path

    def close(self) -> None:
        """Remove the directories made and whatever is left in them."""
        for path in self._made:
            try:
                _remove_flat_directory(path)
            except OSError:
                pass  # removed under us (a tmp cleaner), or holding what we did not put there: left
        self._made.clear()
        self.path = None


def runtime_base() -> str:
    """Where runtime directories are made: ``$SHUTDOWNBUS_RUNTIME_DIR``, else
    ``$XDG_RUNTIME_DIR``, else the system temp directory."""
    chosen = os.environ.get(ENV_RUNTIME_DIR) or os.environ.get("XDG_RUNTIME_DIR")
    if chosen:
        return chosen
    import tempfile  # some milliseconds of a command line's run: only when needed

    return tempfile.gettempdir()


def base_of(endpoint: str) -> str | None:
    """The directory that the `RuntimeDir` of an ``ipc://`` endpoint was made
    in (its `runtime_base`); None for another kind of endpoint."""
    if not endpoint.startswith("ipc://"):
        return None
    return os.path.dirname(os.path.dirname(endpoint[len("ipc://") :]))


#: The file in a `RuntimeDir` that names its owner: ``PID NS START`` (see `_sign`).
OWNER_FILE = "owner"


def start_ticks(pid: int, zombie: bool = False) -> int | None:
    """Linux: when process ``pid`` started, in clock ticks since boot (field 22
    of /proc/PID/stat: exact, unlike a time of day, which moves with the
    clock); None if it is gone, or a zombie (unless ``zombie``: a child of
    ours that exited and is not reaped yet is still itself).

    Raises:
        OSError: it cannot be told (no descriptor left, say).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] == b"X" or (fields[0] == b"Z" and not zombie):
        return None
    return int(fields[19])


def _owner_line(pid: int) -> str | None:
    """``PID NS START`` of process ``pid`` (its PID namespace, `start_ticks`);
    None where that cannot be told (not Linux)."""
    if not _platform.LINUX:
        return None
    try:
        ticks = start_ticks(pid)
    except OSError:
        return None
    return None if ticks is None else f"{pid} {_platform.pid_namespace() or '-'} {ticks}"


def _sign(path: str) -> None:
    """Write who made the runtime directory ``path`` into it (`OWNER_FILE`),
    so that one left by a killed process can be told stale
    (`sweep_stale_runtime_dirs`).  Best effort: a directory left unsigned (a
    full disk) is never swept, which is safe."""
    line = _owner_line(os.getpid())
    if line is None:
        return
    try:
        fd = os.open(os.path.join(path, OWNER_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        os.write(fd, line.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def sweep_stale_runtime_dirs(base: str) -> list[str]:
    """Remove the `RuntimeDir` directories in ``base`` whose owner is provably
    dead: a SIGKILLed process cannot remove its own.  Linux only, where a
    process's start time can be read; never raises.

    A directory is removed only if all of these hold: it is named ``sb-*``,
    a directory (not a link) of ours, holding an `OWNER_FILE` (a regular
    file of ours) that names a process of our own PID namespace (a pid of
    another namespace means another process here); and no process with that
    pid runs now (a zombie counts as gone), or the one that does started at
    another clock tick since boot (the pid was reused).  Anything else (directories of older versions, of other users,
    of other namespaces, unsigned ones) is left alone.  The removal itself
    never follows a link (`_remove_flat_directory`).

    Args:
        base: The directory the runtime directories are made in.

    Returns:
        The directories removed.
    """

    if not _platform.LINUX:
        return []
    namespace = _platform.pid_namespace() or "-"
    removed = []
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    for entry in entries:
        if not entry.startswith("sb-"):
            continue
        path = os.path.join(base, entry)
        if _owner_is_provably_dead(path, namespace):
            try:
                _remove_flat_directory(path)
            except OSError:
                continue  # not removable: left alone
            removed.append(path)
    return removed


def owner_is_dead(endpoint: str, owner: tuple[int, int] | None = None) -> bool:
    """Whether the process that made ``endpoint`` (a spawn's ``ipc://``
    endpoint, the marker its child's descendants carry) is provably dead, by
    its `RuntimeDir`'s owner file, with `sweep_stale_runtime_dirs`' checks.

    Linux only; False for anything that cannot be proven (a tcp endpoint,
    a directory gone, unsigned, of another user or namespace): never raises.

    Args:
        endpoint: The marker.
        owner: If given, ``(pid, start ticks)``: also False unless the owner
            file names that very process (`start_ticks`).
    """
    return dead_owner(endpoint, owner) is not None


def dead_owner(endpoint: str, owner: tuple[int, int] | None = None) -> int | None:
    """The pid the process that made ``endpoint`` had, if it is provably
    dead (see `owner_is_dead`, which takes the same arguments); else None."""
    if not _platform.LINUX or not endpoint.startswith("ipc://"):
        return None
    path = os.path.dirname(endpoint[len("ipc://") :])
    return _provably_dead_owner(path, _platform.pid_namespace() or "-", owner)


def _owner_is_provably_dead(path: str, namespace: str, owner: tuple[int, int] | None = None) -> bool:
    """`sweep_stale_runtime_dirs`' test of one directory ``path`` (and, if
    ``owner`` is given, that its owner file names that process)."""
    return _provably_dead_owner(path, namespace, owner) is not None


def _provably_dead_owner(path: str, namespace: str, owner: tuple[int, int] | None = None) -> int | None:
    """The dead owner's pid, if ``path`` passes `_owner_is_provably_dead`; else None."""
    import stat

    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return None
        fd = os.open(os.path.join(path, OWNER_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            signed = os.fstat(fd)
            text = os.read(fd, 256) if stat.S_ISREG(signed.st_mode) and signed.st_uid == os.getuid() else b""
        finally:
            os.close(fd)
        fields = text.decode("ascii", "replace").split()
        if len(fields) != 3 or not (fields[0].isdigit() and fields[2].isdigit()) or fields[1] != namespace:
            return None
        pid, ticks = int(fields[0]), int(fields[2])
        if owner is not None and (pid, ticks) != owner:
            return None
        return pid if pid != os.getpid() and start_ticks(pid) != ticks else None
    except (OSError, ValueError, OverflowError):
        return None  # not provably dead


def _remove_flat_directory(path: str) -> None:
    """Remove ``path``, a directory of files only (a `RuntimeDir`: sockets
    and its owner file), through a descriptor of it: a link in it is removed,
    never followed, and a link in its place is not opened.  It runs at exit
    (`RuntimeDir.close`, from `_member._at_exit`): it imports nothing, and
    it is a plain loop (``shutil.rmtree``'s walk cost each level of a chain
    of members 0.3 ms of its exit; its import, with bz2 and lzma, would cost
    ``send-stop`` milliseconds).

    Raises:
        OSError: it cannot be removed, or holds a directory (not ours then).
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with os.scandir(fd) as entries:
            names = []
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    raise IsADirectoryError(f"{path}/{entry.name}")
                names.append(entry.name)
        for name in names:
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def new_socket(ctx: _zmq.Context, kind: int) -> _zmq.Socket:
    """A new zmq socket.

    Raises:
        ChannelError: it cannot be made (no file descriptor left, a terminated context).
    """
    from . import _zmq

    try:
        return ctx.socket(kind)
    except _zmq.ZMQError as exc:
        why = f"cannot create a control channel ({exc}); is the process out of file descriptors?"
        raise ChannelError(why) from None


def _channel_socket(ctx: _zmq.Context, max_frame: int = MAX_FRAME_SIZE) -> _zmq.Socket:
    """A PAIR socket with what both ends of a channel need: CURVE (checked),
    no linger, and frames capped at ``max_frame``.

    Raises:
        ChannelError: no CURVE here, or the socket cannot be made or set.
    """
    from . import _zmq

    _require_curve()
    sock = new_socket(ctx, _zmq.PAIR)
    try:
        sock.setsockopt(_zmq.LINGER, 0)
        sock.setsockopt(_zmq.MAXMSGSIZE, max_frame + CURVE_OVERHEAD)
    except _zmq.ZMQError as exc:
        sock.close(0)
        raise ChannelError(f"cannot set up a control channel ({exc})") from None
    return sock


def bind_parent_socket(
    ctx: _zmq.Context,
    keys: ChannelKeys,
    domain: str,
    runtime: RuntimeDir,
    max_frame: int = MAX_FRAME_SIZE,
) -> tuple[_zmq.Socket, str]:
    """Create and bind the parent's end of a new channel.

    Args:
        ctx: The process's zmq context (its ZAP handler must be bound already).
        keys: The channel's keys.
        domain: The ZAP domain that identifies this channel to the ZAP handler.
        runtime: Where ipc endpoints live.
        max_frame: The largest frame it takes (`MAX_ADMIN_FRAME_SIZE` for a
            root's admin channel).

    Returns:
        The socket and the endpoint the child must connect to.

    Raises:
        ChannelError: the socket cannot be bound.
    """
    from . import _zmq

    sock = _channel_socket(ctx, max_frame)
    try:
        sock.setsockopt(_zmq.HANDSHAKE_IVL, HANDSHAKE_IVL_MS)
        sock.setsockopt(_zmq.CURVE_SERVER, 1)
        sock.setsockopt(_zmq.CURVE_SECRETKEY, keys.server_secret)
        sock.setsockopt(_zmq.CURVE_PUBLICKEY, keys.server_public)
        sock.setsockopt(_zmq.ZAP_DOMAIN, domain.encode())
        if use_tcp():
            sock.bind("tcp://127.0.0.1:*")
            endpoint = sock.getsockopt_string(_zmq.LAST_ENDPOINT)
        else:
            endpoint = runtime.next_endpoint()
            sock.bind(endpoint)
    except _zmq.ZMQError as exc:
        sock.close(0)
        raise ChannelError(
            f"cannot bind a control channel ({exc}); check {ENV_RUNTIME_DIR} or try {ENV_TRANSPORT}=tcp"
        ) from None
    except BaseException:
        sock.close(0)
        raise
    return sock, endpoint


def connect_child_socket(
    ctx: _zmq.Context, keys: ChannelKeys, endpoint: str, monitor_events: int
) -> tuple[_zmq.Socket, _zmq.Socket]:
    """Create the child's end of its channel and connect it to the parent.

    Reconnection is off: once the parent's end goes away, the channel is gone
    for good, which is how the child learns that its parent was lost.

    Args:
        ctx: The zmq context.
        keys: The channel's keys.
        endpoint: The parent's endpoint.
        monitor_events: The socket-monitor events to watch; the monitor is
            attached before connecting, so that no event is missed.

    Returns:
        The socket and its monitor socket.

    Raises:
        ChannelError: the endpoint is invalid.
    """
    from . import _zmq

    if not endpoint.startswith(("ipc://", "tcp://")):
        raise ChannelError(f"{ENV_ENDPOINT} is not a shutdownbus endpoint; start this process with shutdownbus.spawn()")
    sock = _channel_socket(ctx)
    try:
        sock.setsockopt(_zmq.RECONNECT_IVL, -1)
        sock.setsockopt(_zmq.CURVE_SERVERKEY, keys.server_public)
        sock.setsockopt(_zmq.CURVE_PUBLICKEY, keys.client_public)
        sock.setsockopt(_zmq.CURVE_SECRETKEY, keys.client_secret)
        monitor = sock.get_monitor_socket(monitor_events)
    except _zmq.ZMQError as exc:
        sock.close(0)
        raise ChannelError(f"cannot set up the channel to the parent ({exc})") from None
    try:
        sock.connect(endpoint)
    except _zmq.ZMQError as exc:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
        raise ChannelError(f"cannot connect to the parent's channel ({exc})") from None
    return sock, monitor


def monitor_event(frames: list[bytes]) -> int:
    """The event number of a zmq socket-monitor message.

    Its first frame is a 16-bit event number and a 32-bit value, in native
    byte order (zmq_socket_monitor(3)).  Parsed here rather than with
    zmq.utils.monitor, which imports asyncio: tens of milliseconds in every
    member's start-up.
    """
    return int.from_bytes(frames[0][:2], sys.byteorder) if frames and len(frames[0]) >= 2 else 0


def stop_listening(endpoint: str) -> None:
    """The child joined: take the channel's endpoint out of others' reach.

    ipc: the socket file is removed; nobody can connect any more, and the
    child's connection stays.  tcp: libzmq can neither stop accepting on a
    port without dropping the connections made through it, nor cap them; a
    connection that has not authenticated is dropped after `HANDSHAKE_IVL_MS`
    and holds at most one frame of `MAX_FRAME_SIZE` meanwhile.
    """
    if endpoint.startswith("ipc://"):
        remove_endpoint(endpoint)


def remove_endpoint(endpoint: str) -> None:
    """Remove the socket file of a closed ipc endpoint (tcp: nothing to do)."""
    if endpoint.startswith("ipc://"):
        try:
            os.unlink(endpoint[len("ipc://") :])
        except OSError:
            pass


def zap_reply(request: list[bytes], allowed: dict[bytes, bytes]) -> list[bytes]:
    """Answer one ZAP request (RFC 27): admit only the channel's own child key.

    Args:
        request: The request frames, as received on the ZAP socket.
        allowed: ZAP domain to the raw client public key allowed on it.

    Returns:
        The reply frames.
    """
    version = request[0] if request else b"1.0"
    request_id = request[1] if len(request) > 1 else b""
    ok = (
        len(request) == 7
        and version == b"1.0"
        and request[5] == b"CURVE"
        and request[2] in allowed
        and compare_digest(allowed[request[2]], request[6])
    )
    status = (b"200", b"OK") if ok else (b"400", b"not the spawned child")
    return [b"1.0", request_id, *status, b"", b""]
