"""The shutdownbus wire protocol: a sans-IO state machine.

Rules of this module:

* No I/O and no zmq: frames (``bytes``) go in, events come out; events go in,
  frames come out.  The transport (``_transport.py``) only moves frames.
* One `Channel` is one end of one parent-child connection, in the role of the
  parent or of the child.  It runs the handshake once, then carries tagged
  messages.  `docs/protocol.md` is the normative spec; this code follows it.
* Every check raises `ProtocolError` (or its subclass `AuthenticationError`);
  a bad frame costs bounded work and never takes a healthy channel down (the
  two cases where state still moves are listed above the state machine).
* The secret never leaves this module in any form but an HMAC, and never
  appears in a repr or an exception message.
* Nothing is computed at import but the constants, and msgpack loads with
  the first frame (or `load`): ``send-stop`` reads the constants without
  coding a frame.
"""

from __future__ import annotations

import enum
import math
import os

from ._deadlines import MAX_BUDGET
from ._errors import AuthenticationError, ProtocolError
from ._hmac import compare_digest, hmac_sha256
from ._outcome import OUTCOMES
from ._values import Value

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1
#: Hard cap on one frame, also enforced by the transport before reading it.
#: Small on purpose: libzmq buffers up to this much for a peer that has not
#: authenticated yet (a command frame it announces), so it is what any local
#: process can make a parent hold per connection.  The largest legitimate
#: frame is a report chunk (see `_bus.REPORT_CHUNK`).
MAX_FRAME_SIZE = 64 << 10
SECRET_SIZE = 32
NONCE_SIZE = 32
TAG_SIZE = 32  # HMAC-SHA256, the one digest this protocol uses
MAX_TEXT_LENGTH = 256  # names and reasons

_LABEL = b"shutdownbus/1 "


class Role(enum.Enum):
    """Which end of the channel this is."""

    PARENT = "parent"
    CHILD = "child"


class State(enum.Enum):
    """Handshake states; see docs/protocol.md section 5."""

    AWAIT_HELLO = "await-hello"  # parent
    AWAIT_CHALLENGE = "await-challenge"  # child, after sending hello
    AWAIT_PROOF = "await-proof"  # parent, after sending challenge
    AWAIT_ACCEPT = "await-accept"  # child, after sending proof
    ESTABLISHED = "established"
    IDLE = "idle"  # child, before start()


# -- events -----------------------------------------------------------------
#
# Plain value objects (`_values.Value`), not dataclasses: see that module.


class Established(Value):
    """The handshake completed; the peer proved it holds the secret.

    ``peer_pid`` and ``peer_name`` are what the child said in hello (None on the child side).
    """

    __slots__ = ("peer_pid", "peer_name")

    def __init__(self, peer_pid: int | None = None, peer_name: str | None = None) -> None:
        self.peer_pid = peer_pid
        self.peer_name = peer_name


class Stop(Value):
    """Parent to child: stop your tree and exit within ``budget`` seconds."""

    __slots__ = ("reason", "budget")

    def __init__(self, reason: str, budget: float) -> None:
        self.reason = reason
        self.budget = budget


class Ready(Value):
    """Child to parent: the child is ready for work."""

    __slots__ = ()


class Report(Value):
    """Child to parent: what happened to part of the child's subtree during a stop.

    ``entries`` are plain dicts with the keys of `ENTRY_FIELDS`.
    """

    __slots__ = ("entries",)

    def __init__(self, entries: tuple[dict[str, Any], ...] = ()) -> None:
        self.entries = entries


class Ack(Value):
    """Parent to child: a report arrived."""

    __slots__ = ()


class Farewell(Value):
    """Child to parent, last of a stop: everything this process had to stop
    is gone and reported; only its interpreter's finalization is left."""

    __slots__ = ()


Event = Established | Stop | Ready | Report | Ack | Farewell

# What each established-phase message may carry, per direction.
_PARENT_SENDS = {"accept": (), "stop": ("reason", "budget"), "ack": ()}
_CHILD_SENDS = {"ready": (), "report": ("entries",), "farewell": ()}
ENTRY_FIELDS = ("pid", "name", "outcome", "returncode", "seconds", "member")
#: The fields an entry may carry besides `ENTRY_FIELDS`: how the reporting
#: process asked it to go, and when (docs/protocol.md, 6.5).
OPTIONAL_ENTRY_FIELDS = ("request", "requested")
#: The longest ``request`` (a signal's or a Windows request's name).
MAX_REQUEST_LENGTH = 32


# -- codec --------------------------------------------------------------------


def _short(value: Any) -> str:
    """A peer's value, made safe and short for an error message (they get logged)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load() -> None:
    """Load the codec now.  A process with a bus does it when the bus starts:
    a frame coded on its exit path must not load a module (see
    `_member._at_exit`)."""
    import msgpack  # noqa: F401


def _encode(kind: str, fields: dict[str, Any]) -> bytes:
    import msgpack

    frame: bytes = msgpack.packb([PROTOCOL_VERSION, kind, fields], use_bin_type=True)
    return frame


def _decode(body: bytes) -> tuple[str, dict[str, Any]]:
    """Decode ``[version, kind, fields]``; check everything but the fields."""
    import msgpack

    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"frame is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, list) or len(obj) != 3:
        raise ProtocolError("frame must be a msgpack array [version, kind, fields]")
    version, kind, fields = obj
    if type(version) is not int:
        raise ProtocolError("protocol version must be an integer")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {_short(version)} is not supported (this side speaks {PROTOCOL_VERSION});"
            " run the same shutdownbus version in parent and child"
        )
    if not isinstance(kind, str) or not isinstance(fields, dict):
        raise ProtocolError("message kind must be a string and its fields a map")
    return kind, fields


def _fields(kind: str, fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    keys = set(fields)
    if keys != set(names):
        missing = sorted(set(names) - keys)
        extra = sorted(str(k) for k in keys - set(names))
        raise ProtocolError(
            f"{_short(kind)} message: missing fields {missing}, unexpected fields {_short(extra)}"
            + (f" ({len(extra)} in all)" if len(extra) > 3 else "")
        )
    return fields


def _check_text(kind: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise ProtocolError(
            f"{_short(kind)} message: {name!r} must be a string of at most {MAX_TEXT_LENGTH} characters"
        )
    return value


def _check_bytes(kind: str, name: str, value: Any, size: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ProtocolError(f"{_short(kind)} message: {name!r} must be {size} bytes")
    return bytes(value)


def _check_pid(kind: str, value: Any) -> int:
    if type(value) is not int or not 0 < value < 1 << 32:
        raise ProtocolError(f"{_short(kind)} message: 'pid' must be a positive integer")
    return value


def _check_budget(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= MAX_BUDGET:
        raise ProtocolError(f"'stop' message: 'budget' must be a number of seconds in [0, {MAX_BUDGET:g}]")
    return float(value)


def knock() -> bytes:
    """The frame an admin sends first on a registered root's channel.

    The root binds and cannot see a new peer arrive; the knock asks it to
    start a fresh handshake (as the child side).  It carries nothing and
    proves nothing: the handshake that follows does.
    """
    return _encode("knock", {})


def is_knock(frame: bytes) -> bool:
    """Whether ``frame`` is a knock (never raises)."""
    return frame == knock()


def check_entry(entry: Any) -> dict[str, Any]:
    """Validate one report entry; return it unchanged.

    Raises:
        ProtocolError: the entry has missing, extra or ill-typed fields.
    """
    if not isinstance(entry, dict):
        raise ProtocolError("'report' message: each entry must be a map")
    _fields("report", {k: v for k, v in entry.items() if k not in OPTIONAL_ENTRY_FIELDS}, ENTRY_FIELDS)
    request = entry.get("request")
    if request is not None and (not isinstance(request, str) or not 0 < len(request) <= MAX_REQUEST_LENGTH):
        raise ProtocolError(f"'report' message: 'request' must be a string of 1 to {MAX_REQUEST_LENGTH} characters")
    requested = entry.get("requested")
    if requested is not None and (
        type(requested) not in (int, float) or not math.isfinite(requested) or requested < 0
    ):
        raise ProtocolError("'report' message: 'requested' must be a non-negative number or nil")
    _check_pid("report", entry["pid"])
    _check_text("report", "name", entry["name"])
    if entry["outcome"] not in OUTCOMES:
        raise ProtocolError(f"'report' message: 'outcome' must be one of {', '.join(OUTCOMES)}")
    rc = entry["returncode"]
    if rc is not None and (type(rc) is not int or not -(1 << 31) <= rc < 1 << 32):
        raise ProtocolError("'report' message: 'returncode' must be an integer or nil")
    sec = entry["seconds"]
    if sec is not None and (type(sec) not in (int, float) or not math.isfinite(sec) or sec < 0):
        raise ProtocolError("'report' message: 'seconds' must be a non-negative number or nil")
    if type(entry["member"]) is not bool:
        raise ProtocolError("'report' message: 'member' must be a boolean")
    return entry


def _cut_name(entry: Any) -> Any:
    """Cut an over-long name rather than lose a whole report over it."""
    if isinstance(entry, dict) and isinstance(entry.get("name"), str) and len(entry["name"]) > MAX_TEXT_LENGTH:
        return dict(entry, name=entry["name"][:MAX_TEXT_LENGTH])
    return entry


def _mac(key: bytes | bytearray, *parts: bytes) -> bytes:
    return hmac_sha256(key, b"".join(parts))


# -- the state machine ------------------------------------------------------
#
# The handshake, step by step (K is the per-spawn secret, 32 random bytes that
# only the parent and the child it spawned know; the child connects):
#
#   1. child -> parent  hello     {nonce: Nc, pid, name}
#        Nc is 32 fresh random bytes.  Nothing here is secret.
#   2. parent -> child  challenge {nonce: Np, proof: HMAC(K, "shutdownbus/1 parent" Nc Np)}
#        Np is 32 fresh random bytes.  The proof covers the child's fresh
#        nonce, so it cannot have been recorded earlier: the child now knows
#        it talks to the holder of K, i.e. its parent.
#   3. child -> parent  proof     {proof: HMAC(K, "shutdownbus/1 child" Nc Np)}
#        Different label, so the parent's proof cannot be reflected back.
#        The parent compares it in constant time: it now knows it talks to
#        the child it spawned.
#   4. Both derive one key per direction from K and both nonces:
#        Kpc = HMAC(K, "shutdownbus/1 p2c" Nc Np), Kcp = HMAC(K, "shutdownbus/1 c2p" Nc Np).
#      From here every frame is  body || HMAC(Kdir, seq || body), with seq a
#      64-bit big-endian counter per direction starting at 0 that is never
#      sent: a frame replayed, reordered, reflected or carried over from
#      another connection fails its tag.
#   5. parent -> child  accept (tagged, seq 0).  Only now is the child joined.
#
# A frame that fails any check raises and leaves the state unchanged, with two
# exceptions: a tagged frame that passed its tag but has bad content still
# counts in the sequence (to stay in step with the sender), and a failed proof
# at step 3 sends the parent back to waiting for a hello.  A parent waiting
# for a proof also accepts a new hello, which restarts the handshake.


class Channel:
    """One end of a parent-child control channel (sans-IO).

    Args:
        role: `Role.PARENT` or `Role.CHILD`.
        secret: The per-spawn secret, exactly `SECRET_SIZE` bytes.  A
            ``bytearray`` is kept as it is (not copied), so that its owner
            can overwrite it once the channel is done (see `forget`).
        pid: This process's pid (sent by the child in hello).
        name: This process's display name (sent by the child in hello).

    Raises:
        ValueError: the secret has the wrong size, or a child channel has no pid.
    """

    def __init__(self, role: Role, secret: bytes | bytearray, pid: int = 0, name: str = "") -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_SIZE:
            raise ValueError(f"the channel secret must be {SECRET_SIZE} bytes")
        if role is Role.CHILD and not 0 < pid < 1 << 32:
            raise ValueError("a child channel needs the child's pid")
        self.role = role
        self.secret = secret
        self.pid = pid
        self.name = name[:MAX_TEXT_LENGTH]
        self.state = State.AWAIT_HELLO if role is Role.PARENT else State.IDLE
        self._nonce_child = self._nonce_parent = b""
        self._send_key = self._recv_key = b""
        self._send_seq = self._recv_seq = 0
        self._peer: tuple[int, str] | None = None

    def __repr__(self) -> str:  # never the secret, the nonces or the keys
        return f"<Channel {self.role.value} {self.state.value} pid={self.pid} name={self.name!r}>"

    def forget(self) -> None:
        """Drop the secret and the keys derived from it: the channel is done.

        Afterwards every frame fails its check, as on a channel that never
        shook hands.  (The secret's owner overwrites its buffer; the derived
        keys are immutable bytes, only dropped.)
        """
        self.secret = bytes(SECRET_SIZE)
        self._send_key = self._recv_key = b""
        self._nonce_child = self._nonce_parent = b""
        self.state = State.IDLE

    @property
    def established(self) -> bool:
        """True once the handshake has completed on this side."""
        return self.state is State.ESTABLISHED

    # -- outgoing --

    def start(self) -> bytes:
        """Child only: begin the handshake; returns the hello frame.

        Raises:
            ProtocolError: called on the parent side or twice.
        """
        if self.role is not Role.CHILD or self.state is not State.IDLE:
            raise ProtocolError("start() is for a child channel that has not started yet")
        self._nonce_child = os.urandom(NONCE_SIZE)
        self.state = State.AWAIT_CHALLENGE
        return _encode("hello", {"nonce": self._nonce_child, "pid": self.pid, "name": self.name})

    def send(self, event: Event) -> bytes:
        """Encode an established-phase message from this side.

        Args:
            event: `Stop` or `Ack` on the parent side; `Ready` or `Report` on the child side.

        Returns:
            The frame to hand to the transport.

        Raises:
            ProtocolError: the channel is not established, or this side may not send ``event``.
        """
        if not self.established:
            raise ProtocolError("the channel is not established yet")
        if isinstance(event, Stop) and self.role is Role.PARENT:
            reason = _check_text(
                "stop", "reason", event.reason[:MAX_TEXT_LENGTH] if isinstance(event.reason, str) else None
            )
            return self._tagged("stop", {"reason": reason, "budget": _check_budget(event.budget)})
        if isinstance(event, Ack) and self.role is Role.PARENT:
            return self._tagged("ack", {})
        if isinstance(event, Ready) and self.role is Role.CHILD:
            return self._tagged("ready", {})
        if isinstance(event, Report) and self.role is Role.CHILD:
            entries = [check_entry(_cut_name(e)) for e in event.entries]
            return self._tagged("report", {"entries": entries})
        if isinstance(event, Farewell) and self.role is Role.CHILD:
            return self._tagged("farewell", {})
        raise ProtocolError(f"the {self.role.value} side cannot send {type(event).__name__}")

    def _tagged(self, kind: str, fields: dict[str, Any]) -> bytes:
        body = _encode(kind, fields)
        tag = _mac(self._send_key, self._send_seq.to_bytes(8, "big"), body)
        self._send_seq += 1
        return body + tag

    # -- incoming --

    def receive(self, frame: bytes) -> tuple[Event | None, bytes | None]:
        """Feed one frame from the peer.

        Args:
            frame: One whole frame as received from the transport.

        Returns:
            ``(event, reply)``: the event the frame completed (or None for an
            intermediate handshake step) and a frame to send back (or None).

        Raises:
            ProtocolError: the frame is malformed, too large, unexpected in this state.
            AuthenticationError: the peer failed to prove it holds the secret.
        """
        if not isinstance(frame, bytes):
            raise ProtocolError("a frame must be bytes")
        if len(frame) > MAX_FRAME_SIZE:
            raise ProtocolError(f"frame of {len(frame)} bytes exceeds the {MAX_FRAME_SIZE}-byte limit")
        if self.state is State.ESTABLISHED or self.state is State.AWAIT_ACCEPT:
            return self._receive_tagged(frame), None
        kind, fields = _decode(frame)
        if kind == "hello" and self.state in (State.AWAIT_HELLO, State.AWAIT_PROOF):
            # In await-proof too: a child that restarted its handshake must
            # not find the parent stuck waiting for the proof of the last one.
            return self._on_hello(fields)
        if self.state is State.AWAIT_PROOF and kind == "proof":
            return self._on_proof(fields)
        if self.state is State.AWAIT_CHALLENGE and kind == "challenge":
            return self._on_challenge(fields)
        raise ProtocolError(f"unexpected {_short(kind)} message in state {self.state.value}")

    def _on_hello(self, fields: dict[str, Any]) -> tuple[None, bytes]:
        _fields("hello", fields, ("nonce", "pid", "name"))
        nonce = _check_bytes("hello", "nonce", fields["nonce"], NONCE_SIZE)
        peer = (_check_pid("hello", fields["pid"]), _check_text("hello", "name", fields["name"]))
        self._nonce_child, self._nonce_parent, self._peer = nonce, os.urandom(NONCE_SIZE), peer
        proof = _mac(self.secret, _LABEL + b"parent", self._nonce_child, self._nonce_parent)
        self.state = State.AWAIT_PROOF
        return None, _encode("challenge", {"nonce": self._nonce_parent, "proof": proof})

    def _on_challenge(self, fields: dict[str, Any]) -> tuple[None, bytes]:
        _fields("challenge", fields, ("nonce", "proof"))
        nonce = _check_bytes("challenge", "nonce", fields["nonce"], NONCE_SIZE)
        proof = _check_bytes("challenge", "proof", fields["proof"], TAG_SIZE)
        expected = _mac(self.secret, _LABEL + b"parent", self._nonce_child, nonce)
        if not compare_digest(proof, expected):
            raise AuthenticationError("the parent's challenge failed authentication; ignored it")
        self._nonce_parent = nonce
        self._derive_keys()
        self.state = State.AWAIT_ACCEPT
        return None, _encode("proof", {"proof": _mac(self.secret, _LABEL + b"child", self._nonce_child, nonce)})

    def _on_proof(self, fields: dict[str, Any]) -> tuple[Established, bytes]:
        try:
            _fields("proof", fields, ("proof",))
            proof = _check_bytes("proof", "proof", fields["proof"], TAG_SIZE)
        except ProtocolError:
            self._reset()
            raise
        expected = _mac(self.secret, _LABEL + b"child", self._nonce_child, self._nonce_parent)
        if not compare_digest(proof, expected):
            self._reset()
            raise AuthenticationError("a peer failed to prove it is the spawned child; refused it")
        self._derive_keys()
        self.state = State.ESTABLISHED
        pid, name = self._peer or (None, None)
        return Established(pid, name), self._tagged("accept", {})

    def _reset(self) -> None:
        self.state = State.AWAIT_HELLO
        self._nonce_child = self._nonce_parent = b""
        self._peer = None

    def _derive_keys(self) -> None:
        nonces = (self._nonce_child, self._nonce_parent)
        p2c = _mac(self.secret, _LABEL + b"p2c", *nonces)
        c2p = _mac(self.secret, _LABEL + b"c2p", *nonces)
        self._send_key, self._recv_key = (p2c, c2p) if self.role is Role.PARENT else (c2p, p2c)
        self._send_seq = self._recv_seq = 0

    def _receive_tagged(self, frame: bytes) -> Event | None:
        if len(frame) <= TAG_SIZE:
            raise ProtocolError("frame too short to carry a message and its tag")
        body, tag = frame[:-TAG_SIZE], frame[-TAG_SIZE:]
        expected = _mac(self._recv_key, self._recv_seq.to_bytes(8, "big"), body)
        if not compare_digest(tag, expected):
            raise AuthenticationError("a message failed its integrity tag (forged, replayed or reordered); dropped it")
        # The tag is good, so the peer really sent this frame: count it even if
        # its content turns out to be invalid, to stay in step with the sender.
        self._recv_seq += 1
        kind, fields = _decode(body)
        allowed = _PARENT_SENDS if self.role is Role.CHILD else _CHILD_SENDS
        if kind not in allowed:
            raise ProtocolError(
                f"unexpected {_short(kind)} message from the {'parent' if self.role is Role.CHILD else 'child'}"
            )
        _fields(kind, fields, allowed[kind])
        if self.state is State.AWAIT_ACCEPT:
            if kind != "accept":
                raise ProtocolError(f"expected 'accept', got {_short(kind)}")
            self.state = State.ESTABLISHED
            return Established()
        if kind == "stop":
            return Stop(_check_text("stop", "reason", fields["reason"]), _check_budget(fields["budget"]))
        if kind == "ack":
            return Ack()
        if kind == "ready":
            return Ready()
        if kind == "farewell":
            return Farewell()
        if kind == "report":
            entries = fields["entries"]
            if not isinstance(entries, list):
                raise ProtocolError("'report' message: 'entries' must be an array")
            return Report(tuple(check_entry(e) for e in entries))
        raise ProtocolError(f"unexpected {_short(kind)} message once established")

