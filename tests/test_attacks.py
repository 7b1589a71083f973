"""Hostile input against a real, running tree (issue 6).

Every test attacks a real member through a real zmq endpoint and ends the same
way: the member is still stoppable by its real parent, the stop it heeds is
the real one (the member prints the reason of every stop it gets), the stop
report is clean, at most one warning per kind of bad frame is logged, and
nothing crashed (no traceback in the member, no internal error in our bus
thread).

Where the attacker stands.  A member connects to its parent; the only
endpoint anybody else can reach is the parent's bound socket for that child
(``child._link.endpoint``), a PAIR socket with CURVE and a ZAP handler that
admits only the child's key.  So:

* strangers (no key, or a wrong key, or raw bytes on the socket) attack the
  parent's socket before and after the child joined;
* frames that only a key holder can deliver (frames that reach the
  `Channel` decoder) are sent to the member from the parent's own socket
  through the bus thread (``bus.call``), or to the parent by a peer that uses
  the child's keys on a spawn whose process never joins;
* a registered root's admin channel (endpoint and credential in the registry
  file) is where the same secret serves several connections, so replay
  across connections is tried there.

The live fuzz test (marked ``fuzz``) runs ``SHUTDOWNBUS_FUZZ_EXAMPLES`` (default
1000; ``make fuzz`` sets 20000) attacks, seeded (``SHUTDOWNBUS_FUZZ_SEED``,
printed on failure).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from conftest import PROGRAMS, fuzz_examples, reaped, use_transport
from zmq.utils.monitor import parse_monitor_message

import shutdownbus
from shutdownbus import _admin, _member, _registry, _transport, _zmq
from shutdownbus._protocol import (
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Ack,
    Channel,
    Ready,
    Report,
    Role,
    Stop,
    _mac,
    knock,
)

LOOSE = 5.0  # bound against hangs on a loaded machine
JOIN_TIMEOUT = 3.0  # join() timeout of a victim whose endpoint was taken over
# What CURVE adds to each message on the wire (command name, nonce, flags, MAC):
# libzmq's ZMQ_MAXMSGSIZE counts it, so this is the largest frame that passes.
CURVE_OVERHEAD = 33
LARGEST = MAX_FRAME_SIZE - CURVE_OVERHEAD
FUZZ_EXAMPLES = fuzz_examples(1000)
FUZZ_SEED = int(os.environ.get("SHUTDOWNBUS_FUZZ_SEED", str(random.SystemRandom().randrange(1 << 32))))

VICTIM = str(PROGRAMS / "victim.py")  # prints the reason of every stop it gets


class Victim:
    """A real member spawned by this process; stderr goes to a file."""

    def __init__(self, tmp_path: Path, *, gated: bool = False, join_timeout: float = 30.0) -> None:
        self.err_path = tmp_path / f"victim-{os.urandom(4).hex()}.err"
        self._err = open(self.err_path, "wb")
        self.child = shutdownbus.spawn(
            [sys.executable, VICTIM, "gated" if gated else "open", str(join_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )

    @property
    def endpoint(self) -> str:
        return self.child._link.endpoint

    def release(self) -> None:
        """Let a gated victim join."""
        assert self.child.stdin is not None
        self.child.stdin.write("go\n")
        self.child.stdin.close()

    def stop_for_real(self, timeout: float = 10.0) -> shutdownbus.StopReport:
        """The real parent stops it; check that the stop was clean and the real one."""
        self.child.wait_ready(60)
        assert self.child.poll() is None
        report = self.child.stop(reason="real", timeout=timeout)
        assert self.child.stdout is not None
        out = self.child.stdout.read()
        assert report.ok, report
        assert out.splitlines() == ["got stop real"], out
        return report

    def stderr(self) -> str:
        self._err.flush()
        return self.err_path.read_text(errors="replace")

    def warnings(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if line.startswith("shutdownbus:")]

    def check_calm(self) -> None:
        """No traceback, at most one warning per kind of bad frame (protocol, authentication)."""
        text = self.stderr()
        assert "Traceback" not in text, text
        warnings = self.warnings()
        assert len(warnings) <= 2 and len(set(warnings)) == len(warnings), text
        assert all("dropped a frame from the parent" in w for w in warnings), text

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.stop(timeout=1)
        for stream in (self.child.stdin, self.child.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._err.close()


@pytest.fixture
def victims(tmp_path: Path) -> Iterator[Callable[..., Victim]]:
    made: list[Victim] = []

    def make(**kwargs: Any) -> Victim:
        made.append(Victim(tmp_path, **kwargs))
        return made[-1]

    yield make
    for v in made:
        v.close()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def bus_ctx() -> Iterator[_zmq.Context]:
    """A context of the binding the bus runs on, for peers that use the bus's own functions."""
    context = _zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def our_bus_stays_healthy(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """This process is the parent: its bus thread must survive every attack."""
    caplog.set_level(logging.WARNING, logger="shutdownbus")
    yield
    assert _member.get_bus().thread.is_alive()
    internal = [r for r in caplog.records if "internal error" in r.getMessage() or r.exc_info]
    assert not internal, [r.getMessage() for r in internal]
    dropped = [r.getMessage() for r in caplog.records if "dropped a frame" in r.getMessage()]
    assert len(dropped) == len(set(dropped)) <= 2, dropped


# -- attackers --------------------------------------------------------------------


def raw_connect(endpoint: str, timeout: float = 10.0) -> socket.socket:
    """A plain OS socket connected to a zmq endpoint: it can send any bytes at all."""
    if endpoint.startswith("ipc://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(endpoint[len("ipc://") :])
    else:
        host, port = endpoint[len("tcp://") :].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
    return s


def greeting(mechanism: bytes = b"CURVE", major: int = 3) -> bytes:
    """A ZMTP 3 greeting (64 bytes) as a client would send it."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([major, 0]) + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """Whether the peer closed ``s`` within ``timeout`` (reads and discards what it sent)."""
    s.settimeout(timeout)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if not s.recv(65536):
                return True
    except (ConnectionError, OSError):
        return True
    return False


def stranger(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, kind: str, server_public: bytes | None = None
) -> zmq.Socket[bytes]:
    """A zmq peer without the child's credentials.

    kinds: ``null`` (no security), ``plain`` (user name and password),
    ``curve-wrong-client`` (the parent's real public key, its own client key),
    ``curve-wrong-server`` (a wrong server key), ``dealer`` (another socket type).
    """
    sock = ctx.socket(zmq.DEALER if kind == "dealer" else zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    if kind == "plain":
        sock.plain_username, sock.plain_password = b"admin", b"admin"
    elif kind.startswith("curve"):
        public, secret = zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = server_public if kind == "curve-wrong-client" else zmq.curve_keypair()[0]
    sock.connect(endpoint)
    return sock


STRANGER_KINDS = ["null", "plain", "curve-wrong-client", "curve-wrong-server", "dealer"]


def forged_stop_frames() -> list[bytes]:
    """What a stranger would try: stops in every shape it can make without the keys."""
    body = msgpack.packb([PROTOCOL_VERSION, "stop", {"reason": "forged", "budget": 1.0}])
    return [b"stop", body, body + os.urandom(32), knock()]


def try_send(sock: zmq.Socket[bytes], frames: list[bytes]) -> None:
    for frame in frames:
        with contextlib.suppress(zmq.Again):
            sock.send(frame, zmq.NOBLOCK)


def on_bus(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    return _member.get_bus().call_and_wait(fn, timeout)


def send_from_parent(child: shutdownbus.Child, bodies: list[bytes], *, tagged: bool) -> int:
    """Send frames to a joined member from its parent's own socket (on the bus thread).

    ``tagged``: each body gets a valid tag (with the channel's send key and the
    next sequence number), as only the parent could make; the parent's counter
    moves on, so the real stop sent later stays in step.  Otherwise the bodies
    go as they are.

    Returns:
        How many frames were sent (all, unless the pipe stayed full).
    """
    link = child._link
    # An empty body with its tag is refused before the tag is checked (too
    # short), and so not counted: no parent makes one, and it would put us out of step.
    assert not tagged or all(bodies), "a tagged frame needs a body"
    pending = list(bodies)

    def run() -> int:
        sent = 0
        ch = link.channel
        while pending and link.sock.poll(100, zmq.POLLOUT):
            body = pending[0]
            frame = body + _mac(ch._send_key, ch._send_seq.to_bytes(8, "big"), body) if tagged else body
            try:
                link.sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                continue
            if tagged:
                ch._send_seq += 1
            pending.pop(0)
            sent += 1
        return sent

    total = 0
    end = time.monotonic() + 60
    while pending and time.monotonic() < end:
        total += on_bus(run)
    return total


def body(kind: Any, fields: Any, version: Any = PROTOCOL_VERSION) -> bytes:
    return msgpack.packb([version, kind, fields], use_bin_type=True)


BAD_BODIES = [
    # valid msgpack, wrong shapes and types
    msgpack.packb(None),
    msgpack.packb([]),
    msgpack.packb([1, "stop"]),
    msgpack.packb([1, "stop", {"reason": "shape"}, 4]),
    msgpack.packb({"version": 1, "kind": "stop"}),
    body("stop", []),
    body(b"stop", {"reason": "bin kind", "budget": 1.0}),
    body("stop", {"reason": "v", "budget": 1.0}, version=True),
    body("stop", {"reason": "v", "budget": 1.0}, version="1"),
    body("stop", {"reason": 7, "budget": 1.0}),
    body("stop", {"reason": b"bytes", "budget": 1.0}),
    body("stop", {"reason": "bad budget", "budget": "1"}),
    body("stop", {"reason": "bad budget", "budget": -1.0}),
    body("stop", {"reason": "bad budget", "budget": math.nan}),
    body("stop", {"reason": "bad budget", "budget": math.inf}),
    body("stop", {"reason": "bad budget", "budget": 1e12}),
    body("stop", {"reason": "bad budget", "budget": True}),
    body("stop", {"reason": "x" * 257, "budget": 1.0}),
    # missing and extra fields
    body("stop", {"reason": "missing"}),
    body("stop", {"budget": 1.0}),
    body("stop", {"reason": "extra", "budget": 1.0, "force": True}),
    body("stop", {"reason": "extra", "budget": 1.0, b"bin key": 1}),
    body("ack", {"extra": 1}),
    # unknown kinds and versions, wrong direction, out of place
    body("shutdown", {"reason": "unknown kind", "budget": 1.0}),
    body("", {}),
    body("stop", {"reason": "v0", "budget": 1.0}, version=0),
    body("stop", {"reason": "v2", "budget": 1.0}, version=2),
    body("stop", {"reason": "v-1", "budget": 1.0}, version=-1),
    body("stop", {"reason": "v2**64", "budget": 1.0}, version=2**64 - 1),
    body("ready", {}),
    body("report", {"entries": []}),
    body("accept", {}),
    body("hello", {"nonce": b"\0" * 32, "pid": 1, "name": "x"}),
    body("knock", {}),
    # not msgpack at all, or trailing bytes
    b"\xc1",
    b"\x93\x01\xa4stop",
    body("stop", {"reason": "trailing", "budget": 1.0}) + b"\x00",
]


def garbage_bodies(rng: random.Random) -> list[bytes]:
    """Random bytes and truncations of real frames."""
    real = body("stop", {"reason": "truncated", "budget": 1.0})
    out = [real[:i] for i in range(len(real))]
    out += [rng.randbytes(rng.randrange(0, 200)) for _ in range(50)]
    return out


def random_obj(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value, shaped like a frame now and then."""
    choice = rng.randrange(12 if depth < 3 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, 2, -1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, rng.randrange(-1000, 1000)])
    if choice == 3:
        return rng.choice([0.0, -0.0, 1.5, math.nan, math.inf, -math.inf, 1e308, rng.random()])
    if choice == 4:
        return rng.choice(["stop", "ack", "accept", "reason", "budget", "", "x" * 300, "é\u2603"])
    if choice == 5:
        return rng.randbytes(rng.choice([0, 1, 31, 32, 33]))
    if choice == 6:
        return msgpack.ExtType(rng.randrange(128), rng.randbytes(4))
    if choice == 7:
        return rng.randrange(1 << 32)
    if choice == 8:
        return [random_obj(rng, depth + 1) for _ in range(rng.randrange(5))]
    if choice == 9:
        kind = rng.choice(["stop", "ack", "accept", "ready", "report", "knock", "hello", "proof", "challenge"])
        fields = {rng.choice(["reason", "budget", "entries", "nonce", "x"]): random_obj(rng, depth + 1)}
        return [rng.choice([PROTOCOL_VERSION, PROTOCOL_VERSION, 0, 2, True]), kind, fields]
    return {
        random_obj(rng, 3) if rng.random() < 0.2 else rng.choice(["reason", "budget", "a"]): random_obj(rng, depth + 1)
    }


def random_frame(rng: random.Random) -> bytes:
    try:
        return msgpack.packb(random_obj(rng), use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return rng.randbytes(rng.randrange(1, 100))


class Impostor:
    """A peer that holds a spawn's keys and speaks the protocol by hand (the child role).

    Used on a spawn whose process never joins, so the PAIR socket is free for it.
    """

    def __init__(self, ctx: _zmq.Context, child: shutdownbus.Child) -> None:
        self.ctx, self.child = ctx, child
        self.keys = child._link.keys
        self.sock, self.monitor = _transport.connect_child_socket(
            ctx, self.keys, child._link.endpoint, zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        self.channel = Channel(Role.CHILD, self.keys.secret, pid=child.pid, name="impostor")

    def wait_event(self, event: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            if self.monitor.poll(int(left * 1000) + 1):
                if parse_monitor_message(self.monitor.recv_multipart())["event"] == event:
                    return True
        return False

    def events(self) -> list[int]:
        """The monitor's events so far, without waiting."""
        found = []
        while self.monitor.poll(0):
            found.append(parse_monitor_message(self.monitor.recv_multipart())["event"])
        return found

    def recv(self, timeout: float) -> bytes:
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError("the parent did not answer")
        return self.sock.recv()

    def probe(self, timeout: float) -> bool:
        """Send a hello; whether the parent answered it with a challenge."""
        probe = Channel(Role.CHILD, self.keys.secret, pid=self.child.pid, name="probe")
        self.sock.send(probe.start())
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0 and self.sock.poll(int(left * 1000) + 1):
            try:  # challenges to hellos among the junk come first; skip them
                _, reply = probe.receive(self.sock.recv())
            except shutdownbus.ProtocolError:
                continue
            return reply is not None
        return False

    def handshake(self) -> None:
        self.sock.send(self.channel.start())
        _, proof = self.channel.receive(self.recv(LOOSE))
        assert proof is not None
        self.sock.send(proof)
        event, _ = self.channel.receive(self.recv(LOOSE))
        assert self.channel.established, event

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)


def attach(ctx: _zmq.Context, child: shutdownbus.Child) -> Impostor:
    """An impostor that the parent's PAIR socket took as its peer.

    The PAIR socket drops a new connection while the last one is still being
    torn down (asynchronously), so try again until a hello is answered.
    """
    for _attempt in range(20):
        imp = Impostor(ctx, child)
        if imp.probe(2.0):
            return imp
        imp.close()
    raise AssertionError("the parent never took the impostor as its peer")


def placeholder() -> shutdownbus.Child:
    """A spawned process that never joins (so a test can take its channel); exits when its stdin closes."""
    return shutdownbus.spawn([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


# -- strangers on the parent's socket ---------------------------------------------------


@pytest.mark.usefixtures("our_bus_stays_healthy")
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_squatters_of_every_kind_neither_block_the_child_nor_hear_anything(
    transport: str, monkeypatch: pytest.MonkeyPatch, victims: Callable[..., Victim], ctx: Any
) -> None:
    """Extends test_member's squatting test: many squatters of five zmq kinds and
    raw sockets stuck in the middle of a greeting, all there before the child
    joins, and more arriving after it joined; they keep sending forged stops."""
    use_transport(monkeypatch, transport)
    v = victims(gated=True)
    assert v.endpoint.startswith(f"{transport}://")
    server_public = v.child._link.keys.server_public
    early = [stranger(ctx, v.endpoint, kind, server_public) for kind in STRANGER_KINDS for _ in range(6)]
    raw = [raw_connect(v.endpoint) for _ in range(5)]
    for i, s in enumerate(raw):
        s.sendall(greeting()[: 5 + i * 10])  # stuck half-way through the greeting
    for sock in early:
        try_send(sock, forged_stop_frames())
    v.release()
    v.child.wait_ready(60)
    late = [stranger(ctx, v.endpoint, kind, server_public) for kind in STRANGER_KINDS]
    for sock in early + late:
        try_send(sock, forged_stop_frames())
    v.stop_for_real()
    assert [sock.poll(0) for sock in early + late] == [0] * len(early + late)  # nothing reached them
    v.check_calm()
    for s in raw:
        s.close()


@pytest.mark.usefixtures("our_bus_stays_healthy")
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_raw_bytes_truncated_greetings_and_oversized_frames_on_the_socket(
    transport: str, monkeypatch: pytest.MonkeyPatch, victims: Callable[..., Victim]
) -> None:
    """Below zmq: random bytes, every prefix of a greeting, greetings of other
    mechanisms and versions, and a frame header announcing a frame far over
    MAX_FRAME_SIZE, which libzmq must refuse before reading it (the connection
    is closed after at most a few MB, not a GB).  Before the child joins: once
    it has, an ipc channel cannot be reached at all (the last check)."""
    use_transport(monkeypatch, transport)
    rng = random.Random(FUZZ_SEED)
    v = victims(gated=True)
    payloads = [rng.randbytes(n) for n in (1, 10, 64, 65, 1000, 100_000)]
    payloads += [greeting()[:i] for i in (1, 9, 10, 11, 12, 32, 63)]
    payloads += [greeting(b"NULL"), greeting(b"PLAIN"), greeting(b"GSSAPI"), greeting(b"\xff" * 20), greeting(major=1)]
    payloads += [greeting() + b"\x04\x05HELLO", greeting() + b"\x04\xff" + rng.randbytes(300)]
    for payload in payloads:
        with raw_connect(v.endpoint) as s:
            with contextlib.suppress(OSError):
                s.sendall(payload)
    # One frame of 1 TiB announced as the CURVE HELLO command.
    with raw_connect(v.endpoint) as s:
        s.settimeout(LOOSE)
        sent = 0
        header = greeting() + b"\x06" + (1 << 40).to_bytes(8, "big")
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            s.sendall(header)
            while sent < 64 << 20:
                sent += s.send(chunk)
        # What the kernel's socket buffers take before libzmq refuses the frame (a few MB on loopback).
        assert sent < 16 << 20, f"the parent read {sent} bytes of an oversized frame"
        assert closed_by_peer(s, LOOSE)
    assert v.child.poll() is None
    v.release()
    v.child.wait_ready(60)
    if transport == "ipc":
        with pytest.raises(FileNotFoundError):
            raw_connect(v.endpoint)
    v.stop_for_real()
    v.check_calm()


@pytest.mark.usefixtures("our_bus_stays_healthy")
def test_a_connection_that_sends_nothing_blocks_nobody_and_is_dropped(victims: Callable[..., Victim]) -> None:
    v = victims(gated=True)
    silent = [raw_connect(v.endpoint) for _ in range(3)]
    v.release()
    v.child.wait_ready(60)  # the child joined while the silent connections were open
    for s in silent:
        # ZMQ_HANDSHAKE_IVL (5 s) ends them; the greeting libzmq sends first is read and discarded.
        assert closed_by_peer(s, _transport.HANDSHAKE_IVL_MS / 1000 + LOOSE)
        s.close()
    v.stop_for_real()
    v.check_calm()


# -- frames that only a key holder can deliver ---------------------------------------------


@pytest.mark.usefixtures("our_bus_stays_healthy")
def test_member_drops_untagged_forged_and_malformed_frames_and_obeys_only_the_real_stop(
    victims: Callable[..., Victim],
) -> None:
    """From the parent's own socket to the joined member: untagged frames
    (random bytes, truncations, stops without a tag or with a random tag), and
    frames with a valid tag whose content is wrong (wrong types, missing and
    extra fields, unknown kinds and versions, wrong direction, bad budgets).
    None of them stops the member; the real stop after them does."""
    rng = random.Random(FUZZ_SEED)
    v = victims()
    v.child.wait_ready(60)
    untagged = garbage_bodies(rng) + BAD_BODIES
    untagged += [body("stop", {"reason": "forged", "budget": 1.0}) + rng.randbytes(32) for _ in range(5)]
    assert send_from_parent(v.child, untagged, tagged=False) == len(untagged)
    assert send_from_parent(v.child, BAD_BODIES, tagged=True) == len(BAD_BODIES)
    assert v.child.poll() is None
    v.stop_for_real()
    warnings = v.warnings()
    assert len(warnings) == 2, warnings  # one per kind: integrity tag, malformed content
    v.check_calm()


@pytest.mark.usefixtures("our_bus_stays_healthy")
def test_parent_decoder_survives_garbage_from_a_key_holder_and_stays_in_step(bus_ctx: _zmq.Context) -> None:
    """A peer with the child's keys (on a spawn whose process never joins) sends
    the parent junk of every kind, an oversized frame (cut by the transport,
    which disconnects it), and then does the handshake properly: the parent
    still completes it, and its later stop and ack verify."""
    rng = random.Random(FUZZ_SEED)
    with reaped(placeholder()) as child:
        first = Impostor(bus_ctx, child)
        assert first.wait_event(zmq.EVENT_HANDSHAKE_SUCCEEDED, LOOSE)
        first.sock.send(b"\0" * (MAX_FRAME_SIZE + _transport.CURVE_OVERHEAD + 1))
        assert first.wait_event(zmq.EVENT_DISCONNECTED, LOOSE), "an oversized frame did not end the connection"
        first.close()
        imp = attach(bus_ctx, child)
        junk = garbage_bodies(rng) + BAD_BODIES + [random_frame(rng) for _ in range(300)]
        junk += [b"\0" * LARGEST, knock(), body("proof", {"proof": b"\0" * 32})]
        for frame in junk:
            imp.sock.send(frame)
        # A hello answered means every frame before it was dropped without harm.
        assert imp.probe(LOOSE) and not child.joined
        imp.sock.send(body("proof", {"proof": rng.randbytes(32)}))  # a wrong proof resets the parent
        imp.handshake()
        assert child._link.joined.wait(LOOSE)
        imp.sock.send(imp.channel.send(Ready()))
        child.wait_ready(LOOSE)
        box: list[shutdownbus.StopReport] = []
        stopper = threading.Thread(target=lambda: box.append(child.stop(reason="real", timeout=10)))
        stopper.start()
        event, _ = imp.channel.receive(imp.recv(LOOSE))
        assert isinstance(event, Stop) and event.reason == "real"
        imp.sock.send(imp.channel.send(Report(())))
        event, _ = imp.channel.receive(imp.recv(LOOSE))
        assert isinstance(event, Ack)
        assert child.stdin is not None
        child.stdin.close()  # the process leaves, as the member would after its cleanup
        stopper.join(60)
        assert box and box[0].ok, box
        imp.close()


def test_a_frame_of_the_largest_size_the_protocol_allows_is_delivered(bus_ctx: _zmq.Context) -> None:
    """The parent's transport takes a frame of MAX_FRAME_SIZE (one of more
    than that plus CURVE's overhead ends the connection: see the test above)."""
    with reaped(placeholder()) as child:
        imp = attach(bus_ctx, child)
        imp.events()  # those of attaching
        imp.sock.send(b"\0" * MAX_FRAME_SIZE)
        # The parent reads a connection's frames in order: a hello answered
        # after the big frame means that frame was read.  Had the transport
        # refused it, the connection would have been dropped first (and our
        # socket would have reconnected to send the hello): the monitor says.
        assert imp.probe(LOOSE), "the parent did not answer a hello sent after the frame"
        assert zmq.EVENT_DISCONNECTED not in imp.events(), "the parent's transport dropped the connection"
        imp.close()


# -- replay --------------------------------------------------------------------------------


ROOT = str(PROGRAMS / "registered_root.py")


def admin_session(ctx: _zmq.Context, entry: _registry.Entry) -> tuple[_zmq.Socket, Channel]:
    """Knock on a registered root's admin channel and complete the handshake, as send-stop does."""
    keys = _transport.ChannelKeys.from_encoded(entry.secret)
    for _attempt in range(10):  # a PAIR socket takes one admin at a time; the last one may still be leaving
        sock, monitor = _transport.connect_child_socket(ctx, keys, entry.endpoint, _admin._FAILED)
        channel = Channel(Role.PARENT, keys.secret)
        try:
            _admin._handshake(sock, monitor, channel)
        except shutdownbus.ChannelError:
            ok = False
        else:
            ok = True
        sock.disable_monitor()
        monitor.close(0)
        if ok:
            return sock, channel
        sock.close(0)
    raise AssertionError("the root never answered a knock")


@pytest.mark.usefixtures("our_bus_stays_healthy")
def test_a_stop_from_one_connection_is_refused_on_the_next(
    bus_ctx: _zmq.Context,
    runtime_dir: str,
    tmp_path: Path,
    victims: Callable[..., Victim],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replay.  A registered root serves every admin with the same credential,
    each on a fresh handshake: the stop frame of one admin session (captured
    from the sans-IO channel exactly as it would go on the wire), replayed in
    the next session at the same position, is refused; so is a spawn's stop
    replayed on another spawn's channel, and a frame sent twice on one
    connection.  The real stop still works afterwards."""
    # A knock that the root's PAIR socket dropped (the last session still
    # leaving) goes unanswered: try again after 1 s rather than 5.
    monkeypatch.setattr(_admin, "HANDSHAKE_TIMEOUT", 1.0)
    err = tmp_path / "root.err"
    with open(err, "wb") as errf:
        root = subprocess.Popen(
            [sys.executable, ROOT, "replayed"], stdout=subprocess.PIPE, stderr=errf, text=True
        )
    with reaped(root):
        assert root.stdout is not None and root.stdout.readline() == "registered\n"
        entry = _registry.read("replayed")
        assert entry is not None
        sock, channel = admin_session(bus_ctx, entry)
        captured = channel.send(Stop("replayed", 5.0))  # what went out on the wire in session 1
        sock.close(0)  # session 1 ends before its stop is delivered: an eavesdropper keeps it
        sock, channel = admin_session(bus_ctx, entry)
        sock.send(captured)  # same position (the first tagged frame after accept), older keys
        sock.send(captured)
        sock.send(channel.send(Stop("real", 5.0)))
        out, _ = root.communicate(timeout=60)
        assert out.splitlines() == ["got stop real"], out
        warnings = [line for line in err.read_text().splitlines() if line.startswith("shutdownbus:")]
        assert len(warnings) == 1 and "integrity tag" in warnings[0], warnings
        assert "Traceback" not in err.read_text()

    x, y = victims(), victims()
    x.child.wait_ready(60)
    y.child.wait_ready(60)
    stolen = on_bus(lambda: copy.deepcopy(x.child._link.channel).send(Stop("stolen", 5.0)))
    sent_twice = on_bus(lambda: copy.deepcopy(y.child._link.channel).send(Stop("twice", 5.0)))
    assert send_from_parent(y.child, [stolen], tagged=False) == 1  # x's stop on y's channel
    y.stop_for_real()
    assert send_from_parent(x.child, [sent_twice], tagged=False) == 1  # y's frame on x
    x.stop_for_real()
    x.check_calm()
    y.check_calm()


# -- the path of an ipc endpoint taken over -------------------------------------------------


@pytest.mark.usefixtures("our_bus_stays_healthy")
@pytest.mark.parametrize("mechanism", ["curve", "null"])
def test_a_child_never_obeys_an_endpoint_taken_over_by_someone_else(
    mechanism: str, victims: Callable[..., Victim], ctx: Any
) -> None:
    """Squatting the other way round.  A process of the same user that can reach
    the private runtime directory binds its own socket on the child's ipc path
    (libzmq replaces the socket file) before the child connects.  The child
    joins nobody: the impostor cannot prove the server key, join fails, and the
    child exits without having heeded anything; the parent still ends it.

    join() usually fails at once (the transport reports the failed handshake),
    but against a NULL server the failure can come before join() has attached
    its monitor to the socket, and is then missed: join() waits out its timeout
    (3 s here, 30 s by default).  See the final report of issue 6."""
    if _transport.use_tcp():
        pytest.skip("needs the ipc transport: a bound tcp port cannot be taken over (libzmq binds it exclusively)")
    v = victims(gated=True, join_timeout=JOIN_TIMEOUT)
    hostile = ctx.socket(zmq.PAIR)
    hostile.setsockopt(zmq.LINGER, 0)
    if mechanism == "curve":
        public, secret = zmq.curve_keypair()
        hostile.curve_server = True
        hostile.curve_publickey, hostile.curve_secretkey = public, secret
    hostile.bind(v.endpoint)
    forged = [body("stop", {"reason": "hostile", "budget": 1.0})]
    try_send(hostile, forged)
    start = time.monotonic()
    v.release()
    try_send(hostile, forged)
    assert v.child.wait(60) != 0
    assert time.monotonic() - start < JOIN_TIMEOUT + LOOSE
    assert "could not join the parent's shutdownbus channel" in v.stderr()
    assert v.child.stdout is not None and "got stop" not in v.child.stdout.read()
    assert hostile.poll(0) == 0  # it got no hello
    report = v.child.stop()
    assert report.entries[0].outcome == "exited", report
    hostile.close(0)


# -- flooding -------------------------------------------------------------------------------


@pytest.mark.usefixtures("our_bus_stays_healthy")
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_floods_leave_the_member_stoppable_by_its_parent_at_once(
    transport: str, monkeypatch: pytest.MonkeyPatch, victims: Callable[..., Victim], ctx: Any
) -> None:
    """Many connections (zmq strangers and raw sockets, opened and closed in a
    loop while the stop runs) and many messages: thousands of stranger frames,
    thousands of bad frames and 20 frames of the maximum size delivered to the
    member.  The member's work per bad frame is bounded (one HMAC), so the real
    stop still ends it quickly."""
    use_transport(monkeypatch, transport)
    rng = random.Random(FUZZ_SEED)
    v = victims()
    v.child.wait_ready(60)
    server_public = v.child._link.keys.server_public
    crowd = [stranger(ctx, v.endpoint, STRANGER_KINDS[i % 5], server_public) for i in range(100)]
    for sock in crowd:
        try_send(sock, forged_stop_frames() * 25)  # 10,000 frames
    stop_churn = threading.Event()
    churned = [0]

    def churn() -> None:
        local: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            while not stop_churn.is_set():
                with contextlib.suppress(OSError), raw_connect(v.endpoint, timeout=1) as s:
                    s.sendall(greeting() + rng.randbytes(64))
                sock = stranger(local, v.endpoint, "curve-wrong-client", server_public)
                try_send(sock, forged_stop_frames())
                sock.close(0)
                churned[0] += 1
        finally:
            local.destroy(linger=0)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        junk = [rng.randbytes(rng.randrange(1, 200)) for _ in range(3000)]
        junk += [rng.randbytes(LARGEST) for _ in range(20)]
        assert send_from_parent(v.child, junk, tagged=False) == len(junk)
        assert send_from_parent(v.child, BAD_BODIES * 50, tagged=True) == len(BAD_BODIES) * 50
        start = time.monotonic()
        report = v.stop_for_real()
        took = time.monotonic() - start
    finally:
        stop_churn.set()
        churner.join(60)
    print(f"flood ({transport}): the stop took {took:.3f} s; {churned[0]} connections churned meanwhile")
    assert took < LOOSE, f"the stop took {took:.2f} s under the flood"
    assert report.entries[0].seconds is not None and report.entries[0].seconds < LOOSE
    assert churned[0] > 0
    v.check_calm()


# -- live fuzzing -----------------------------------------------------------------------------


@pytest.mark.fuzz
@pytest.mark.usefixtures("our_bus_stays_healthy")
def test_live_endpoint_fuzz(victims: Callable[..., Victim], ctx: Any) -> None:
    """A seeded random mix, FUZZ_EXAMPLES attacks: raw bytes (bare or after a
    valid greeting of some mechanism), frames from strangers with no key or a
    wrong CURVE key, and random frames (msgpack values shaped like frames, or
    bytes; tagged validly or not) delivered to the member from its parent's
    socket.  Then the member stops cleanly on its parent's real stop."""
    seed = FUZZ_SEED
    rng = random.Random(seed)
    v = victims()
    v.child.wait_ready(60)
    server_public = v.child._link.keys.server_public
    untagged: list[bytes] = []
    tagged: list[bytes] = []
    counts = dict.fromkeys(("raw", "greeting+raw", "stranger", "untagged", "tagged"), 0)
    for _ in range(FUZZ_EXAMPLES):
        kind = rng.choice(list(counts))
        counts[kind] += 1
        frame = random_frame(rng) if rng.random() < 0.7 else rng.randbytes(rng.randrange(0, 300))
        if kind in ("raw", "greeting+raw"):
            mechanism = rng.choice([b"CURVE", b"NULL", b"PLAIN", rng.randbytes(5)])
            prefix = greeting(mechanism) if kind == "greeting+raw" else b""
            with contextlib.suppress(OSError), raw_connect(v.endpoint, timeout=1) as s:
                s.sendall(prefix + frame)
        elif kind == "stranger":
            sock = stranger(ctx, v.endpoint, rng.choice(STRANGER_KINDS), server_public)
            try_send(sock, [frame])
            sock.close(0)
        elif kind == "untagged":
            untagged.append(frame)
        else:
            tagged.append(frame or b"\x90")
    # The parent's own socket delivers these in order, untagged ones first.
    assert send_from_parent(v.child, untagged, tagged=False) == len(untagged)
    assert send_from_parent(v.child, tagged, tagged=True) == len(tagged)
    assert v.child.poll() is None, f"seed {seed}: {v.stderr()}"
    v.stop_for_real()
    v.check_calm()
    print(f"live fuzz: seed {seed}, {json.dumps(counts)}")
