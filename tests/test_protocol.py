"""Tests of the sans-IO wire protocol, `shutdownbus._protocol`.

Everything runs in memory: a parent `Channel` and a child `Channel` hand their
frames to each other directly (`connect`, `Session`).

A few tests reach into a channel's private send key (`forge`) to make frames
whose tag is good but whose content is not.  No well-behaved peer sends such
frames, but the checks behind the tag must hold all the same, and the channel
must stay in step with its peer after refusing one.

The property tests (marked ``fuzz``) run the examples of the hypothesis
profile that tests/conftest.py loads: 100 each, or ``SHUTDOWNBUS_FUZZ_EXAMPLES``
when set (``make fuzz`` sets 20000).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import event as hypothesis_event
from hypothesis import example, given
from hypothesis import strategies as st

from shutdownbus._errors import AuthenticationError, ProtocolError
from shutdownbus._hmac import compare_digest, hmac_sha256
from shutdownbus._protocol import (
    ENTRY_FIELDS,
    MAX_BUDGET,
    MAX_FRAME_SIZE,
    MAX_TEXT_LENGTH,
    NONCE_SIZE,
    OUTCOMES,
    PROTOCOL_VERSION,
    SECRET_SIZE,
    TAG_SIZE,
    Ack,
    Channel,
    Established,
    Farewell,
    Ready,
    Report,
    Role,
    State,
    Stop,
)

SECRET = hashlib.sha256(b"shutdownbus tests: the per-spawn secret").digest()
WRONG_SECRET = hashlib.sha256(b"shutdownbus tests: somebody else's secret").digest()
CHILD_PID = 4242
CHILD_NAME = "worker-1"

ENTRY_A: dict[str, Any] = {
    "pid": 101,
    "name": "db",
    "outcome": "stopped",
    "returncode": 0,
    "seconds": 0.25,
    "member": True,
}
ENTRY_B: dict[str, Any] = {
    "pid": 102,
    "name": "cache",
    "outcome": "killed",
    "returncode": -9,
    "seconds": None,
    "member": False,
}

# -- helpers: secrets ---------------------------------------------------------


def _leak_forms(secret: bytes) -> tuple[str, ...]:
    raw = repr(secret)
    return (secret.hex(), secret.hex().upper(), raw, raw[2:-1])


LEAK_FORMS = (*_leak_forms(SECRET), *_leak_forms(WRONG_SECRET))


def assert_no_secret(text: str) -> None:
    """Fail if ``text`` shows either test secret (hex or bytes repr)."""
    leaked = [form for form in LEAK_FORMS if form in text]
    assert not leaked, "a secret appears in a repr or an error message"


def check_error(exc: BaseException, channel: Channel | None = None) -> None:
    """A refused frame: a ProtocolError whose message and repr hide the secret."""
    assert isinstance(exc, ProtocolError)
    assert str(exc), "errors must say what went wrong"
    assert_no_secret(str(exc))
    assert_no_secret(repr(exc))
    if channel is not None:
        assert_no_secret(repr(channel))
        assert_no_secret(str(channel))


# -- helpers: channels and the in-memory handshake ------------------------------


def make_parent(secret: bytes = SECRET) -> Channel:
    return Channel(Role.PARENT, secret)


def make_child(secret: bytes = SECRET, pid: int = CHILD_PID, name: str = CHILD_NAME) -> Channel:
    return Channel(Role.CHILD, secret, pid=pid, name=name)


STEPS = ("idle", "hello", "challenge", "proof", "accept", "done")


@dataclasses.dataclass
class Session:
    """One handshake between ``parent`` and ``child``, run one frame at a time.

    ``step`` counts the steps taken (an index into `STEPS`); ``frames`` holds
    every handshake frame produced so far, by name.
    """

    parent: Channel
    child: Channel
    frames: dict[str, bytes] = dataclasses.field(default_factory=dict)
    step: int = 0
    established: Established | None = None

    @classmethod
    def new(cls, parent_secret: bytes = SECRET, child_secret: bytes = SECRET) -> Session:
        return cls(make_parent(parent_secret), make_child(child_secret))

    def advance(self, until: str) -> Session:
        """Take handshake steps until ``until`` (a name from `STEPS`) is done."""
        while self.step < STEPS.index(until):
            self._take(STEPS[self.step + 1])
            self.step += 1
        return self

    def _take(self, step: str) -> None:
        if step == "hello":
            self.frames["hello"] = self.child.start()
        elif step == "challenge":
            event, reply = self.parent.receive(self.frames["hello"])
            assert event is None and reply is not None
            self.frames["challenge"] = reply
        elif step == "proof":
            event, reply = self.child.receive(self.frames["challenge"])
            assert event is None and reply is not None
            self.frames["proof"] = reply
        elif step == "accept":
            event, reply = self.parent.receive(self.frames["proof"])
            assert isinstance(event, Established) and reply is not None
            self.established = event
            self.frames["accept"] = reply
        elif step == "done":
            event, reply = self.child.receive(self.frames["accept"])
            assert event == Established() and reply is None


def connect(parent: Channel, child: Channel) -> Established:
    """Run the whole handshake in memory, passing each frame to the other side.

    Returns:
        The `Established` event the parent reported.
    """
    session = Session(parent, child).advance("done")
    assert parent.established and child.established
    assert parent.state is State.ESTABLISHED and child.state is State.ESTABLISHED
    assert session.established is not None
    return session.established


def make_pair() -> tuple[Channel, Channel]:
    parent, child = make_parent(), make_child()
    connect(parent, child)
    return parent, child


def exchange(parent: Channel, child: Channel) -> None:
    """One stop, ready, report and ack across an established pair, arriving unchanged."""
    stop = Stop("check", 2.5)
    assert child.receive(parent.send(stop)) == (stop, None)
    assert parent.receive(child.send(Ready())) == (Ready(), None)
    report = Report((ENTRY_A, ENTRY_B))
    assert parent.receive(child.send(report)) == (report, None)
    assert child.receive(parent.send(Ack())) == (Ack(), None)


def finish(session: Session) -> None:
    """Complete a legitimate handshake from wherever ``session`` is, then use the channel.

    If the parent gave up on this attempt (a refused proof sends it back to
    waiting for a hello), the real child retries with a new channel, as the
    handshake comment in `_protocol` promises it can.
    """
    if session.parent.state is State.AWAIT_HELLO and session.step >= STEPS.index("challenge"):
        session = Session(session.parent, make_child())
    session.advance("done")
    assert session.established == Established(CHILD_PID, CHILD_NAME)
    exchange(session.parent, session.child)


def snapshot(channel: Channel) -> dict[str, Any]:
    """Every field of the channel, private ones included."""
    return dict(vars(channel))


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def forge(sender: Channel, body: bytes) -> bytes:
    """Tag ``body`` as ``sender``'s next frame (the wire format of the handshake comment).

    The sender's sequence number moves on, as if its own code had sent the
    frame, so the pair stays in step whatever the receiver makes of it.
    """
    tag = _mac(sender._send_key, sender._send_seq.to_bytes(8, "big") + body)
    sender._send_seq += 1
    return body + tag


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(frame: bytes) -> Any:
    return msgpack.unpackb(frame, raw=False)


def rejects(
    channel: Channel,
    frame: Any,
    error: type[ProtocolError] = ProtocolError,
    *,
    match: str | None = None,
    authentic: bool = False,
) -> ProtocolError:
    """Feed a bad frame: it must raise ``error`` and leave the channel as it was.

    Args:
        authentic: The frame carries a good tag, so the channel counts it
            (its receive sequence number moves on) though it refuses the content.
    """
    before = snapshot(channel)
    with pytest.raises(error, match=match) as info:
        channel.receive(frame)
    check_error(info.value, channel)
    if authentic:
        before["_recv_seq"] += 1
    assert snapshot(channel) == before
    return info.value


def refuses_send(channel: Channel, call: Callable[[], Any], match: str | None = None) -> ProtocolError:
    """``call`` (a send or start on ``channel``) must raise ProtocolError and change nothing."""
    before = snapshot(channel)
    with pytest.raises(ProtocolError, match=match) as info:
        call()
    check_error(info.value, channel)
    assert snapshot(channel) == before
    return info.value


def feed_any(channel: Channel, frame: bytes, *, authentic: bool = False) -> tuple[Any, Any] | None:
    """Feed arbitrary input: it must either work or raise ProtocolError, with the state rules kept.

    Returns:
        ``(event, reply)`` if the channel accepted the frame, None if it refused it.
    """
    before = snapshot(channel)
    try:
        result = channel.receive(frame)
    except ProtocolError as exc:
        check_error(exc, channel)
        after = snapshot(channel)
        if authentic:
            before["_recv_seq"] += 1
        if before["state"] is State.AWAIT_PROOF and after["state"] is not State.AWAIT_PROOF:
            # The one documented exception: a refused proof sends the parent back to waiting for a hello.
            reset = {"state": State.AWAIT_HELLO, "_nonce_child": b"", "_nonce_parent": b"", "_peer": None}
            assert after == {**before, **reset}
        else:
            assert after == before
        return None
    return result


def envelope_kind(body: bytes) -> str | None:
    """The kind a frame is dispatched on, or None if it fails the ``[1, kind, fields]`` envelope."""
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception:
        return None
    if not (isinstance(obj, list) and len(obj) == 3 and type(obj[0]) is int and obj[0] == PROTOCOL_VERSION):
        return None
    kind, fields = obj[1], obj[2]
    return kind if isinstance(kind, str) and isinstance(fields, dict) else None


# -- the handshake and the established phase -------------------------------------


def test_full_handshake_and_round_trips() -> None:
    parent, child = make_parent(), make_child()
    assert not parent.established and not child.established
    assert parent.state is State.AWAIT_HELLO and child.state is State.IDLE

    established = connect(parent, child)
    assert established == Established(peer_pid=CHILD_PID, peer_name=CHILD_NAME)

    # Parent to child: stop, with its fields as sent.
    event, reply = child.receive(parent.send(Stop("deploy: new version", 12.5)))
    assert reply is None
    assert isinstance(event, Stop)
    assert event.reason == "deploy: new version"
    assert event.budget == 12.5 and type(event.budget) is float

    # Child to parent: ready, then the report.
    assert parent.receive(child.send(Ready())) == (Ready(), None)
    event, reply = parent.receive(child.send(Report((ENTRY_A, ENTRY_B))))
    assert reply is None
    assert isinstance(event, Report)
    assert event.entries == (ENTRY_A, ENTRY_B)
    for entry in event.entries:
        assert isinstance(entry, dict)
        assert tuple(entry) == ENTRY_FIELDS
    assert type(event.entries[0]["seconds"]) is float
    assert event.entries[1]["seconds"] is None
    assert event.entries[1]["returncode"] == -9

    # Parent to child: ack.
    assert child.receive(parent.send(Ack())) == (Ack(), None)

    # Child to parent: farewell, the last word of a stop (only its finalization is left).
    assert parent.receive(child.send(Farewell())) == (Farewell(), None)

    # An empty report, an integer budget and several messages in a row keep working.
    assert parent.receive(child.send(Report())) == (Report(()), None)
    event, _ = child.receive(parent.send(Stop("again", 3)))
    assert event == Stop("again", 3.0)
    assert type(event.budget) is float
    for n in range(5):
        assert child.receive(parent.send(Stop(f"stop {n}", float(n)))) == (Stop(f"stop {n}", float(n)), None)
        assert parent.receive(child.send(Ready())) == (Ready(), None)
    assert parent.established and child.established


def test_child_side_established_event_carries_no_peer() -> None:
    session = Session.new().advance("accept")
    event, reply = session.child.receive(session.frames["accept"])
    assert event == Established(peer_pid=None, peer_name=None)
    assert reply is None


def test_handshake_states_step_by_step() -> None:
    session = Session.new()
    expected = {
        "idle": (State.AWAIT_HELLO, State.IDLE),
        "hello": (State.AWAIT_HELLO, State.AWAIT_CHALLENGE),
        "challenge": (State.AWAIT_PROOF, State.AWAIT_CHALLENGE),
        "proof": (State.AWAIT_PROOF, State.AWAIT_ACCEPT),
        "accept": (State.ESTABLISHED, State.AWAIT_ACCEPT),
        "done": (State.ESTABLISHED, State.ESTABLISHED),
    }
    for step, (parent_state, child_state) in expected.items():
        session.advance(step)
        assert (session.parent.state, session.child.state) == (parent_state, child_state), step


def test_wire_format_follows_the_documented_handshake() -> None:
    """Recompute every MAC from the handshake comment in `_protocol`, independently."""
    session = Session.new().advance("done")
    parent, child = session.parent, session.child

    assert unpack(session.frames["hello"])[:2] == [PROTOCOL_VERSION, "hello"]
    hello = unpack(session.frames["hello"])[2]
    assert set(hello) == {"nonce", "pid", "name"}
    assert (hello["pid"], hello["name"]) == (CHILD_PID, CHILD_NAME)
    nc = hello["nonce"]
    assert isinstance(nc, bytes) and len(nc) == NONCE_SIZE

    version, kind, challenge = unpack(session.frames["challenge"])
    assert (version, kind, set(challenge)) == (PROTOCOL_VERSION, "challenge", {"nonce", "proof"})
    np_ = challenge["nonce"]
    assert len(np_) == NONCE_SIZE and np_ != nc
    assert challenge["proof"] == _mac(SECRET, b"shutdownbus/1 parent" + nc + np_)

    assert unpack(session.frames["proof"]) == [
        PROTOCOL_VERSION,
        "proof",
        {"proof": _mac(SECRET, b"shutdownbus/1 child" + nc + np_)},
    ]

    kpc = _mac(SECRET, b"shutdownbus/1 p2c" + nc + np_)
    kcp = _mac(SECRET, b"shutdownbus/1 c2p" + nc + np_)

    def check_tagged(frame: bytes, key: bytes, seq: int, message: list[Any]) -> None:
        body, tag = frame[:-TAG_SIZE], frame[-TAG_SIZE:]
        assert unpack(body) == message
        assert tag == _mac(key, seq.to_bytes(8, "big") + body)

    check_tagged(session.frames["accept"], kpc, 0, [PROTOCOL_VERSION, "accept", {}])
    check_tagged(parent.send(Stop("r", 1.0)), kpc, 1, [PROTOCOL_VERSION, "stop", {"reason": "r", "budget": 1.0}])
    check_tagged(parent.send(Ack()), kpc, 2, [PROTOCOL_VERSION, "ack", {}])
    check_tagged(child.send(Ready()), kcp, 0, [PROTOCOL_VERSION, "ready", {}])
    check_tagged(child.send(Report((ENTRY_A,))), kcp, 1, [PROTOCOL_VERSION, "report", {"entries": [ENTRY_A]}])
    check_tagged(child.send(Farewell()), kcp, 2, [PROTOCOL_VERSION, "farewell", {}])

    # The secret itself never goes on the wire.
    for frame in session.frames.values():
        assert SECRET not in frame


def test_nonces_are_fresh() -> None:
    first, second = Session.new().advance("challenge"), Session.new().advance("challenge")
    nonces = [
        unpack(first.frames["hello"])[2]["nonce"],
        unpack(second.frames["hello"])[2]["nonce"],
        unpack(first.frames["challenge"])[2]["nonce"],
        unpack(second.frames["challenge"])[2]["nonce"],
    ]
    assert len(set(nonces)) == len(nonces)


def test_long_child_name_is_cut_to_the_limit() -> None:
    name = "n" * (MAX_TEXT_LENGTH + 44)
    child = make_child(name=name)
    assert connect(make_parent(), child) == Established(CHILD_PID, name[:MAX_TEXT_LENGTH])


def test_boundary_values_are_accepted() -> None:
    parent, child = make_parent(), make_child(pid=(1 << 32) - 1, name="x" * MAX_TEXT_LENGTH)
    assert connect(parent, child) == Established((1 << 32) - 1, "x" * MAX_TEXT_LENGTH)
    for budget in (0.0, 0, MAX_BUDGET, 1e-9):
        event, _ = child.receive(parent.send(Stop("r" * MAX_TEXT_LENGTH, budget)))
        assert event == Stop("r" * MAX_TEXT_LENGTH, float(budget))
    for reason in ("", "é ✓ \x00 \n", "\U0001f600" * MAX_TEXT_LENGTH):
        assert child.receive(parent.send(Stop(reason, 1.0)))[0] == Stop(reason, 1.0)
    entries = (
        {**ENTRY_A, "pid": 1, "returncode": -(1 << 31), "seconds": 0},
        {**ENTRY_A, "pid": (1 << 32) - 1, "returncode": (1 << 32) - 1, "seconds": 1e9, "name": ""},
        {**ENTRY_B, "returncode": None, "seconds": None, "name": "y" * MAX_TEXT_LENGTH},
        *({**ENTRY_A, "outcome": outcome} for outcome in OUTCOMES),
    )
    assert parent.receive(child.send(Report(entries))) == (Report(entries), None)


def test_stop_reason_longer_than_the_limit_is_cut_by_the_sender() -> None:
    parent, child = make_pair()
    reason = "r" * (MAX_TEXT_LENGTH + 10)
    assert child.receive(parent.send(Stop(reason, 1.0)))[0] == Stop(reason[:MAX_TEXT_LENGTH], 1.0)


# -- authentication ------------------------------------------------------------


def test_child_with_wrong_secret_is_refused_and_the_real_child_still_joins() -> None:
    parent = make_parent()
    impostor = make_child(WRONG_SECRET, pid=666, name="impostor")
    hello = impostor.start()
    _, challenge = parent.receive(hello)
    assert challenge is not None and parent.state is State.AWAIT_PROOF

    # The impostor notices at once that the parent does not share its secret ...
    rejects(impostor, challenge, AuthenticationError)
    assert impostor.state is State.AWAIT_CHALLENGE

    # ... and if it answers anyway, with the proof its own secret gives, the parent refuses it.
    nc, np_ = unpack(hello)[2]["nonce"], unpack(challenge)[2]["nonce"]
    fake = pack([PROTOCOL_VERSION, "proof", {"proof": _mac(WRONG_SECRET, b"shutdownbus/1 child" + nc + np_)}])
    with pytest.raises(AuthenticationError) as info:
        parent.receive(fake)
    check_error(info.value, parent)
    assert parent.state is State.AWAIT_HELLO
    assert not parent.established

    # The real child, on a new channel, still joins, with its own pid and name.
    child = make_child()
    session = Session(parent, child).advance("challenge")
    assert unpack(session.frames["challenge"])[2]["nonce"] != np_, "a new hello gets a new parent nonce"
    session.advance("done")
    assert session.established == Established(CHILD_PID, CHILD_NAME)
    exchange(parent, child)


def test_parent_with_wrong_secret_is_refused_and_the_real_parent_still_works() -> None:
    child = make_child()
    hello = child.start()
    impostor = make_parent(WRONG_SECRET)
    _, bad_challenge = impostor.receive(hello)
    assert bad_challenge is not None

    rejects(child, bad_challenge, AuthenticationError)
    assert child.state is State.AWAIT_CHALLENGE

    # The challenge from the real parent, for the same hello, still works.
    parent = make_parent()
    _, challenge = parent.receive(hello)
    assert challenge is not None
    event, proof = child.receive(challenge)
    assert event is None and proof is not None
    established, accept = parent.receive(proof)
    assert established == Established(CHILD_PID, CHILD_NAME)
    assert accept is not None
    assert child.receive(accept) == (Established(), None)
    exchange(parent, child)


def test_forged_challenges_and_proofs_are_refused() -> None:
    session = Session.new().advance("challenge")
    challenge = unpack(session.frames["challenge"])[2]
    for fields in (
        {"nonce": challenge["nonce"], "proof": bytes(TAG_SIZE)},
        {"nonce": challenge["nonce"], "proof": bytes([challenge["proof"][0] ^ 1]) + challenge["proof"][1:]},
        {"nonce": bytes(NONCE_SIZE), "proof": challenge["proof"]},  # proof for another nonce
    ):
        rejects(session.child, pack([PROTOCOL_VERSION, "challenge", fields]), AuthenticationError)
    session.advance("proof")

    proof = unpack(session.frames["proof"])[2]["proof"]
    parent = session.parent
    for bad in (bytes(TAG_SIZE), proof[:-1] + bytes([proof[-1] ^ 0x80])):
        with pytest.raises(AuthenticationError) as info:
            parent.receive(pack([PROTOCOL_VERSION, "proof", {"proof": bad}]))
        check_error(info.value, parent)
        assert parent.state is State.AWAIT_HELLO
        # The real child's proof for the abandoned attempt is now out of place; it retries.
        rejects(parent, session.frames["proof"])
        session = Session(parent, make_child()).advance("proof")
        proof = unpack(session.frames["proof"])[2]["proof"]
    finish(session)


def test_new_hello_restarts_a_pending_handshake() -> None:
    """A parent waiting for a proof takes a new hello: a restarted child must not find it stuck."""
    session = Session.new().advance("proof")
    parent = session.parent
    retry = Session(parent, make_child(name="retry")).advance("challenge")
    assert parent.state is State.AWAIT_PROOF
    assert unpack(retry.frames["challenge"])[2]["nonce"] != unpack(session.frames["challenge"])[2]["nonce"]
    # The proof of the abandoned attempt no longer fits ...
    with pytest.raises(AuthenticationError) as info:
        parent.receive(session.frames["proof"])
    check_error(info.value, parent)
    assert parent.state is State.AWAIT_HELLO
    # ... and a new attempt still goes through, restarting twice on the way.
    for _ in range(2):
        Session(parent, make_child()).advance("challenge")
    finish(Session(parent, make_child()))


def test_restarted_handshake_completes_with_the_new_child() -> None:
    session = Session.new().advance("challenge")
    retry = Session(session.parent, make_child(pid=5151, name="retry")).advance("done")
    assert retry.established == Established(5151, "retry")
    # The first attempt's child, answering the stale challenge, gets nowhere: the parent is established.
    session.advance("proof")
    rejects(session.parent, session.frames["proof"], AuthenticationError)
    exchange(retry.parent, retry.child)


# -- replay, reorder, reflection -----------------------------------------------


def test_stop_from_another_connection_is_refused() -> None:
    parent1, child1 = make_pair()
    parent2, child2 = make_pair()  # same secret, its own handshake
    # Both connections are at the same sequence number: only their keys differ.
    assert parent1._send_seq == parent2._send_seq and child1._recv_seq == child2._recv_seq
    stop = parent1.send(Stop("only for child 1", 1.0))
    rejects(child2, stop, AuthenticationError)
    # Connection 2 still works, and the frame still works where it belongs.
    assert child2.receive(parent2.send(Stop("for child 2", 2.0))) == (Stop("for child 2", 2.0), None)
    assert child1.receive(stop) == (Stop("only for child 1", 1.0), None)
    ready = child1.send(Ready())
    rejects(parent2, ready, AuthenticationError)
    assert parent1.receive(ready) == (Ready(), None)


def test_handshake_frames_from_another_connection_are_refused() -> None:
    recorded = Session.new().advance("done")

    # A recorded hello gets a fresh challenge; the recorded proof does not answer it.
    parent = make_parent()
    _, challenge = parent.receive(recorded.frames["hello"])
    assert challenge is not None and challenge != recorded.frames["challenge"]
    with pytest.raises(AuthenticationError) as info:
        parent.receive(recorded.frames["proof"])
    check_error(info.value, parent)
    assert parent.state is State.AWAIT_HELLO

    # A recorded challenge does not answer a new child's hello.
    session = Session.new().advance("hello")
    rejects(session.child, recorded.frames["challenge"], AuthenticationError)
    # A recorded accept does not complete a new child's handshake.
    session.advance("accept")
    rejects(session.child, recorded.frames["accept"], AuthenticationError)
    finish(session)


def test_same_frame_twice_is_refused_the_second_time() -> None:
    parent, child = make_pair()
    stop = parent.send(Stop("once", 1.0))
    assert child.receive(stop) == (Stop("once", 1.0), None)
    rejects(child, stop, AuthenticationError)
    rejects(child, stop, AuthenticationError)
    # The channel still takes the next legitimate frame.
    assert child.receive(parent.send(Ack())) == (Ack(), None)

    report = child.send(Report((ENTRY_A,)))
    assert parent.receive(report) == (Report((ENTRY_A,)), None)
    rejects(parent, report, AuthenticationError)
    assert parent.receive(child.send(Ready())) == (Ready(), None)

    # The accept, replayed once the child is established.
    session = Session.new().advance("done")
    rejects(session.child, session.frames["accept"], AuthenticationError)
    exchange(session.parent, session.child)


def test_reordered_frames_are_refused() -> None:
    parent, child = make_pair()
    first, second, third = (parent.send(Stop(f"stop {n}", float(n))) for n in range(3))
    rejects(child, second, AuthenticationError)
    rejects(child, third, AuthenticationError)
    assert child.receive(first) == (Stop("stop 0", 0.0), None)
    rejects(child, third, AuthenticationError)
    assert child.receive(second) == (Stop("stop 1", 1.0), None)
    assert child.receive(third) == (Stop("stop 2", 2.0), None)

    ready, report = child.send(Ready()), child.send(Report((ENTRY_B,)))
    rejects(parent, report, AuthenticationError)
    assert parent.receive(ready) == (Ready(), None)
    assert parent.receive(report) == (Report((ENTRY_B,)), None)


def test_reflected_frames_are_refused() -> None:
    session = Session.new().advance("hello")
    # The child's own hello, back to the child.
    rejects(session.child, session.frames["hello"], match="hello")
    session.advance("challenge")
    # The parent's own challenge, back to the parent.
    rejects(session.parent, session.frames["challenge"], match="challenge")
    session.advance("proof")
    # The child's own proof, back to the child (it now expects a tagged accept).
    rejects(session.child, session.frames["proof"], AuthenticationError)
    session.advance("accept")
    # The accept, back to the parent.
    rejects(session.parent, session.frames["accept"], AuthenticationError)
    session.advance("done")

    parent, child = session.parent, session.child
    stop = parent.send(Stop("reflect me", 1.0))
    rejects(parent, stop, AuthenticationError)
    assert child.receive(stop) == (Stop("reflect me", 1.0), None)
    ready = child.send(Ready())
    rejects(child, ready, AuthenticationError)
    assert parent.receive(ready) == (Ready(), None)
    ack = parent.send(Ack())
    rejects(parent, ack, AuthenticationError)
    assert child.receive(ack) == (Ack(), None)


def test_parent_proof_reflected_as_child_proof_is_refused() -> None:
    session = Session.new().advance("challenge")
    parent_proof = unpack(session.frames["challenge"])[2]["proof"]
    with pytest.raises(AuthenticationError) as info:
        session.parent.receive(pack([PROTOCOL_VERSION, "proof", {"proof": parent_proof}]))
    check_error(info.value, session.parent)
    assert session.parent.state is State.AWAIT_HELLO
    finish(session)


def test_tampered_tagged_frames_are_refused() -> None:
    session = Session.new().advance("accept")
    accept = session.frames["accept"]
    for i in range(len(accept)):
        rejects(session.child, accept[:i] + bytes([accept[i] ^ 0x01]) + accept[i + 1 :])
    session.advance("done")
    parent, child = session.parent, session.child
    stop = parent.send(Stop("tamper", 4.0))
    for i in range(len(stop)):
        rejects(child, stop[:i] + bytes([stop[i] ^ 0x40]) + stop[i + 1 :], AuthenticationError)
    rejects(child, stop + b"\x00", AuthenticationError)
    rejects(child, b"\x00" + stop, AuthenticationError)
    assert child.receive(stop) == (Stop("tamper", 4.0), None)


# -- malformed input ----------------------------------------------------------

NAN, INF = float("nan"), float("inf")

#: Good field values per kind, to build bad frames from (the real frame's values replace these where they matter).
TEMPLATES: dict[str, dict[str, Any]] = {
    "hello": {"nonce": b"\x01" * NONCE_SIZE, "pid": CHILD_PID, "name": CHILD_NAME},
    "challenge": {"nonce": b"\x02" * NONCE_SIZE, "proof": b"\x03" * TAG_SIZE},
    "proof": {"proof": b"\x04" * TAG_SIZE},
    "stop": {"reason": "r", "budget": 1.0},
    "report": {"entries": [ENTRY_A]},
}

BAD_FIELD_VALUES: dict[str, dict[str, list[Any]]] = {
    "hello": {
        "nonce": [b"", b"n" * (NONCE_SIZE - 1), b"n" * (NONCE_SIZE + 1), "n" * NONCE_SIZE, None, [0] * NONCE_SIZE],
        "pid": [0, -1, -(1 << 63), True, False, "4242", 4242.0, 1 << 32, (1 << 64) - 1, None, [CHILD_PID]],
        "name": ["x" * (MAX_TEXT_LENGTH + 1), b"worker", None, 7, ["worker"]],
    },
    "challenge": {
        "nonce": [b"n" * (NONCE_SIZE - 1), b"n" * (NONCE_SIZE + 1), "n" * NONCE_SIZE, None],
        "proof": [b"", b"p" * (TAG_SIZE - 1), b"p" * (TAG_SIZE + 1), "p" * TAG_SIZE, None],
    },
    "proof": {"proof": [b"", b"p" * (TAG_SIZE - 1), b"p" * (TAG_SIZE + 1), "p" * TAG_SIZE, None, 0]},
    "stop": {
        "reason": ["r" * (MAX_TEXT_LENGTH + 1), b"reason", None, 1, ["r"]],
        "budget": [NAN, INF, -INF, -1.0, -1, -1e-9, MAX_BUDGET * 2, MAX_BUDGET + 1, 1 << 63, True, False, "1.5", None],
    },
    "report": {"entries": [None, {}, "entries", 1, [None], [[]], [ENTRY_A, 1], [list(ENTRY_A.values())]]},
}

BAD_ENTRY_VALUES: dict[str, list[Any]] = {
    "pid": [0, -1, True, "101", 1 << 32, None, 101.0],
    "name": ["n" * (MAX_TEXT_LENGTH + 1), b"db", None, 1],
    "outcome": ["bogus", "Stopped", "stopped ", b"stopped", "", None, 0, ["stopped"]],
    "returncode": [1.5, True, "0", 1 << 32, -(1 << 31) - 1, [0]],
    "seconds": [-1, -0.5, NAN, INF, -INF, "1", True, [1]],
    "member": [1, 0, None, "true", 1.0],
}


def malformed_bodies(kind: str, fields: dict[str, Any]) -> dict[str, bytes]:
    """Bodies that break the protocol in one way each, built around a good ``[1, kind, fields]``."""
    good = pack([PROTOCOL_VERSION, kind, fields])
    bodies: dict[str, bytes] = {
        "empty": b"",
        "nil": pack(None),
        "int": pack(1),
        "string": pack(kind),
        "binary": pack(good),
        "map": pack({"version": PROTOCOL_VERSION, "kind": kind, "fields": fields}),
        "array-0": pack([]),
        "array-1": pack([PROTOCOL_VERSION]),
        "array-2": pack([PROTOCOL_VERSION, kind]),
        "array-4": pack([PROTOCOL_VERSION, kind, fields, {}]),
        "nested": pack([[PROTOCOL_VERSION, kind, fields]]),
        "version-0": pack([0, kind, fields]),
        "version-2": pack([2, kind, fields]),
        "version-negative": pack([-1, kind, fields]),
        "version-huge": pack([(1 << 64) - 1, kind, fields]),
        "version-bool": pack([True, kind, fields]),
        "version-float": pack([1.0, kind, fields]),
        "version-string": pack(["1", kind, fields]),
        "version-nil": pack([None, kind, fields]),
        "version-timestamp": pack([msgpack.Timestamp(1, 0), kind, fields]),
        "kind-bytes": pack([PROTOCOL_VERSION, kind.encode(), fields]),
        "kind-int": pack([PROTOCOL_VERSION, 3, fields]),
        "kind-nil": pack([PROTOCOL_VERSION, None, fields]),
        "kind-unknown": pack([PROTOCOL_VERSION, "shutdown", fields]),
        "kind-uppercase": pack([PROTOCOL_VERSION, kind.upper(), fields]),
        "kind-nul": pack([PROTOCOL_VERSION, kind + "\x00", fields]),
        "kind-long": pack([PROTOCOL_VERSION, kind * 1000, fields]),
        "kind-list": pack([PROTOCOL_VERSION, [kind], fields]),
        "kind-invalid-utf8": b"\x93\x01\xa2\xff\xfe" + pack(fields),
        "fields-array": pack([PROTOCOL_VERSION, kind, list(fields.values())]),
        "fields-nil": pack([PROTOCOL_VERSION, kind, None]),
        "fields-string": pack([PROTOCOL_VERSION, kind, "fields"]),
        "fields-ext": pack([PROTOCOL_VERSION, kind, msgpack.ExtType(7, b"fields")]),
        "fields-bytes-keys": pack([PROTOCOL_VERSION, kind, {k.encode(): v for k, v in fields.items()}]),
        "fields-int-keys": pack([PROTOCOL_VERSION, kind, {**fields, 1: 2}]),
        "fields-extra": pack([PROTOCOL_VERSION, kind, {**fields, "extra": 1}]),
        "fields-extra-nil": pack([PROTOCOL_VERSION, kind, {**fields, "": None}]),
        "fields-empty": pack([PROTOCOL_VERSION, kind, {}]),
        "trailing-byte": good + b"\xc0",
        "twice": good + good,
        "truncated": good[:-1],
        "deeply-nested": b"\x91" * 60_000 + b"\xc0",  # deep, and within MAX_FRAME_SIZE
        "huge-array-header": b"\xdd\xff\xff\xff\xff",
        "huge-map-header": b"\x93\x01" + pack(kind) + b"\xdf\xff\xff\xff\xff",
        "huge-bin-header": b"\x93\x01" + pack(kind) + b"\x81\xa5nonce\xc6\xff\xff\xff\xff",
    }
    for name in fields:
        bodies[f"missing-{name}"] = pack([PROTOCOL_VERSION, kind, {k: v for k, v in fields.items() if k != name}])
    for name, values in BAD_FIELD_VALUES.get(kind, {}).items():
        for i, value in enumerate(values):
            bodies[f"{name}-bad-{i}"] = pack([PROTOCOL_VERSION, kind, {**fields, name: value}])
    if kind == "report":
        for name, values in BAD_ENTRY_VALUES.items():
            for i, value in enumerate(values):
                entry = {**ENTRY_A, name: value}
                bodies[f"entry-{name}-bad-{i}"] = pack([PROTOCOL_VERSION, kind, {"entries": [entry]}])
            partial = {k: v for k, v in ENTRY_A.items() if k != name}
            bodies[f"entry-missing-{name}"] = pack([PROTOCOL_VERSION, kind, {"entries": [partial]}])
        bodies["entry-extra"] = pack([PROTOCOL_VERSION, kind, {"entries": [{**ENTRY_A, "extra": 1}]}])
        bytes_keys = {k.encode(): v for k, v in ENTRY_A.items()}
        bodies["entry-bytes-keys"] = pack([PROTOCOL_VERSION, kind, {"entries": [bytes_keys]}])
        bodies["entry-second-bad"] = pack([PROTOCOL_VERSION, kind, {"entries": [ENTRY_A, {**ENTRY_B, "outcome": "x"}]}])
    for name, body in bodies.items():
        assert body != good, name
    return bodies


#: Per target: the kind of message broken, the channel that takes it, at which
#: handshake step, and who (if anyone) tags the frame.
MALFORMED_TARGETS = {
    "hello": ("hello", "parent", "hello", None),
    "hello-awaiting-proof": ("hello", "parent", "proof", None),
    "challenge": ("challenge", "child", "challenge", None),
    "proof": ("proof", "parent", "proof", None),
    "stop": ("stop", "child", "done", "parent"),
    "report": ("report", "parent", "done", "child"),
}

MALFORMED_CASES = [
    (target, name)
    for target, (kind, *_) in MALFORMED_TARGETS.items()
    for name in malformed_bodies(kind, TEMPLATES[kind])
]


def _base_fields(kind: str, session: Session) -> dict[str, Any]:
    if kind in session.frames:  # the real handshake frame the channel waits for
        fields = unpack(session.frames[kind])[2]
        assert isinstance(fields, dict)
        return fields
    return TEMPLATES[kind]


@pytest.mark.parametrize(("target", "variant"), MALFORMED_CASES, ids=[f"{t}-{v}" for t, v in MALFORMED_CASES])
def test_malformed_frame_is_refused_and_changes_nothing(target: str, variant: str) -> None:
    kind, side, step, tagger = MALFORMED_TARGETS[target]
    session = Session.new().advance(step)
    receiver = getattr(session, side)
    body = malformed_bodies(kind, _base_fields(kind, session))[variant]

    if tagger is not None and body:
        # Good tag, bad content: only the tag check is passed, every other check must hold.
        error = rejects(receiver, forge(getattr(session, tagger), body), authentic=True)
    elif kind == "proof" and envelope_kind(body) == "proof":
        # A proof message that fails its checks sends the parent back to waiting for a hello.
        with pytest.raises(ProtocolError) as info:
            receiver.receive(body)
        error = info.value
        check_error(error, receiver)
        assert receiver.state is State.AWAIT_HELLO
    else:
        error = rejects(receiver, body)

    if variant.startswith("version-"):
        assert "version" in str(error)
    if variant.startswith(("huge-", "deeply-")):
        assert len(str(error)) < 200
    finish(session)


def test_unknown_version_error_names_the_version() -> None:
    parent = make_parent()
    error = rejects(parent, pack([2, "hello", TEMPLATES["hello"]]))
    assert "version" in str(error) and "2" in str(error)
    finish(Session(parent, make_child()))


ALL_STATES = [
    ("parent", "idle", State.AWAIT_HELLO),
    ("parent", "challenge", State.AWAIT_PROOF),
    ("parent", "accept", State.ESTABLISHED),
    ("parent", "done", State.ESTABLISHED),
    ("child", "idle", State.IDLE),
    ("child", "hello", State.AWAIT_CHALLENGE),
    ("child", "challenge", State.AWAIT_CHALLENGE),
    ("child", "proof", State.AWAIT_ACCEPT),
    ("child", "accept", State.AWAIT_ACCEPT),
    ("child", "done", State.ESTABLISHED),
]
STATE_IDS = [f"{side}-{step}" for side, step, _ in ALL_STATES]

RANDOM_JUNK = hashlib.sha512(b"junk").digest() * 5


@pytest.mark.parametrize(("side", "step", "state"), ALL_STATES, ids=STATE_IDS)
def test_junk_is_refused_in_every_state(side: str, step: str, state: State) -> None:
    session = Session.new().advance(step)
    channel = getattr(session, side)
    assert channel.state is state
    junk: list[Any] = [
        b"",
        b"\x00",
        b"\xc1",  # never used in msgpack
        b"\xff" * TAG_SIZE,
        b"\x00" * (TAG_SIZE + 1),
        RANDOM_JUNK,
        RANDOM_JUNK[:TAG_SIZE],
        RANDOM_JUNK[: TAG_SIZE + 1],
        pack([PROTOCOL_VERSION, "accept", {}]),  # an untagged accept
        pack([PROTOCOL_VERSION, "stop", {"reason": "r", "budget": 1.0}]),
        pack([PROTOCOL_VERSION, "ready", {}]) + bytes(TAG_SIZE),  # a zero tag
        b"\x00" * MAX_FRAME_SIZE,  # not too large, just wrong
    ]
    for frame in junk:
        rejects(channel, frame)
    for not_bytes in (None, "hello", 1, [1, "hello", {}]):
        rejects(channel, not_bytes, match="bytes")
    for size in (MAX_FRAME_SIZE + 1, 2 * MAX_FRAME_SIZE):
        rejects(channel, b"\x93" + bytes(size - 1), match="limit")
    # A valid hello padded over the limit is refused for its size, not read.
    padded = pack([PROTOCOL_VERSION, "hello", {**TEMPLATES["hello"], "name": "x" * MAX_FRAME_SIZE}])
    rejects(channel, padded, match="limit")
    finish(session)


def test_every_prefix_of_every_frame_is_refused() -> None:
    session = Session.new().advance("hello")
    hello = session.frames["hello"]
    for i in range(len(hello)):
        rejects(session.parent, hello[:i])
    session.advance("challenge")
    challenge = session.frames["challenge"]
    for i in range(len(challenge)):
        rejects(session.child, challenge[:i])
    session.advance("proof")
    proof = session.frames["proof"]
    for i in range(len(proof)):
        rejects(session.parent, proof[:i])  # never decodes as a proof, so no reset either
    session.advance("accept")
    accept = session.frames["accept"]
    for i in range(len(accept)):
        rejects(session.child, accept[:i])
    session.advance("done")
    stop = session.parent.send(Stop("prefix", 1.0))
    for i in range(len(stop)):
        rejects(session.child, stop[:i])
    assert session.child.receive(stop) == (Stop("prefix", 1.0), None)
    exchange(session.parent, session.child)


@pytest.mark.parametrize("budget", [NAN, INF, -INF, -1.0, -1e-300, MAX_BUDGET * 1.5, 1e308])
def test_bad_budget_is_refused_on_send_and_on_receipt(budget: float) -> None:
    parent, child = make_pair()
    with pytest.raises(ProtocolError, match="budget"):
        parent.send(Stop("bad budget", budget))
    frame = forge(parent, pack([PROTOCOL_VERSION, "stop", {"reason": "bad budget", "budget": budget}]))
    rejects(child, frame, match="budget", authentic=True)
    # The bad stop was counted: the next one is accepted.
    assert child.receive(parent.send(Stop("good budget", 1.0))) == (Stop("good budget", 1.0), None)
    exchange(parent, child)


def test_messages_in_the_wrong_direction_are_refused_on_receipt() -> None:
    parent, child = make_pair()
    for kind, fields in (
        ("ready", {}), ("report", {"entries": []}), ("farewell", {}), ("accept", {}), ("hello", TEMPLATES["hello"])
    ):
        rejects(child, forge(parent, pack([PROTOCOL_VERSION, kind, fields])), match=kind, authentic=True)
    for kind, fields in (("stop", TEMPLATES["stop"]), ("ack", {}), ("accept", {}), ("proof", TEMPLATES["proof"])):
        rejects(parent, forge(child, pack([PROTOCOL_VERSION, kind, fields])), match=kind, authentic=True)
    exchange(parent, child)


def test_child_awaiting_accept_refuses_other_tagged_messages() -> None:
    session = Session.new().advance("accept")
    child, parent = session.child, session.parent
    # A stop in the accept's place (sequence number 0), tagged with the parent's real key.
    parent._send_seq = 0
    rejects(child, forge(parent, pack([PROTOCOL_VERSION, "stop", TEMPLATES["stop"]])), match="accept", authentic=True)
    assert child.state is State.AWAIT_ACCEPT


# -- what each side may do --------------------------------------------------------


def test_each_side_sends_only_its_own_messages() -> None:
    parent, child = make_pair()
    for event in (Ready(), Report(()), Report((ENTRY_A,)), Farewell(), Established()):
        refuses_send(parent, lambda e=event: parent.send(e), match="parent")
    for event in (Stop("x", 1.0), Ack(), Established()):
        refuses_send(child, lambda e=event: child.send(e), match="child")
    for junk in (None, "stop", b"ack", Stop):
        refuses_send(parent, lambda j=junk: parent.send(j))
        refuses_send(child, lambda j=junk: child.send(j))
    exchange(parent, child)


def test_send_before_established_is_refused() -> None:
    session = Session.new()
    events: list[Any] = [Stop("x", 1.0), Ack(), Ready(), Report(()), Farewell()]
    for step in STEPS[:-1]:
        session.advance(step)
        for channel in (session.parent, session.child):
            if channel.established:
                continue
            for event in events:
                refuses_send(channel, lambda c=channel, e=event: c.send(e), match="established")
    finish(session)


def test_start_is_for_a_fresh_child_only() -> None:
    parent = make_parent()
    refuses_send(parent, parent.start)
    session = Session.new().advance("hello")
    refuses_send(session.child, session.child.start)
    session.advance("proof")
    refuses_send(session.child, session.child.start)
    session.advance("done")
    refuses_send(session.child, session.child.start)
    refuses_send(session.parent, session.parent.start)
    exchange(session.parent, session.child)


@pytest.mark.parametrize(
    "entry",
    [
        {**ENTRY_A, "outcome": "bogus"},
        {**ENTRY_A, "outcome": None},
        {**ENTRY_A, "pid": 0},
        {**ENTRY_A, "member": 1},
        {**ENTRY_A, "seconds": NAN},
        {**ENTRY_A, "returncode": 1.0},
        {k: v for k, v in ENTRY_A.items() if k != "member"},
        {**ENTRY_A, "extra": True},
        "not a map",
    ],
    ids=["outcome", "outcome-nil", "pid", "member", "seconds", "returncode", "missing", "extra", "not-a-map"],
)
def test_bad_report_entries_are_refused_on_both_ends(entry: Any) -> None:
    parent, child = make_pair()
    refuses_send(child, lambda: child.send(Report((ENTRY_A, entry))), match="report")
    # Whoever gets a bad entry onto the wire anyway, the parent refuses it.
    body = pack([PROTOCOL_VERSION, "report", {"entries": [ENTRY_A, entry]}])
    rejects(parent, forge(child, body), match="report", authentic=True)
    exchange(parent, child)


def test_secret_must_be_exactly_secret_size_bytes() -> None:
    for role in Role:
        for bad in (SECRET[:-1], SECRET + b"\x00", b"", bytearray(SECRET[:-1]), SECRET.hex(), None):
            with pytest.raises(ValueError) as info:
                Channel(role, bad)  # type: ignore[arg-type]
            assert str(SECRET_SIZE) in str(info.value)
            assert_no_secret(str(info.value))
            assert_no_secret(repr(info.value))


# -- the secret stays secret ---------------------------------------------------


def test_secret_never_in_repr() -> None:
    session = Session.new()
    for step in STEPS:
        session.advance(step)
        for channel in (session.parent, session.child):
            for text in (repr(channel), str(channel)):
                assert_no_secret(text)
                for key in (channel._send_key, channel._recv_key):
                    if key:
                        assert key.hex() not in text and repr(key)[2:-1] not in text
    impostor = make_parent(WRONG_SECRET)
    assert_no_secret(repr(impostor))


# -- properties ---------------------------------------------------------------

#: Where fuzzed frames go: (side, step), with the state the channel is in there.
FUZZ_TARGETS = [(side, step) for side, step, _ in ALL_STATES]


def fuzz_all_states(frame: bytes) -> None:
    """Feed ``frame`` to a channel in every state; a legitimate handshake must still complete after."""
    for side, step in FUZZ_TARGETS:
        session = Session.new().advance(step)
        channel = getattr(session, side)
        state = channel.state
        result = feed_any(channel, frame)
        if result is None:
            finish(session)
            continue
        # Nothing passes the MAC checks without the secret, so the only frame
        # that can work is a well-formed hello (which is not authenticated) ...
        assert state in (State.AWAIT_HELLO, State.AWAIT_PROOF) and channel.state is State.AWAIT_PROOF
        assert result[0] is None and envelope_kind(result[1]) == "challenge"
        hypothesis_event("a fuzzed frame was a well-formed hello")
        # ... which the real child overrides with its own.
        finish(Session(channel, make_child()))


def fuzz_established(body: bytes) -> None:
    """Feed ``body``, tagged by the real peer, to both established ends; the pair must stay usable."""
    for side, peer, step, allowed in (
        ("child", "parent", "done", (Stop, Ack)),
        ("parent", "child", "done", (Ready, Report)),
        ("parent", "child", "accept", (Ready, Report)),
    ):
        session = Session.new().advance(step)
        result = feed_any(getattr(session, side), forge(getattr(session, peer), body), authentic=True)
        if result is not None:
            assert isinstance(result[0], allowed) and result[1] is None
            hypothesis_event(f"a fuzzed {type(result[0]).__name__} was accepted")
        finish(session)


_PREFIXES = [b"\x93\x01" + pack(kind) + bytes([0x80 | n]) for kind, n in (("hello", 3), ("challenge", 2), ("proof", 1))]
fuzz_bytes = st.binary(max_size=400) | st.builds(bytes.__add__, st.sampled_from(_PREFIXES), st.binary(max_size=120))


@pytest.mark.fuzz
@given(frame=fuzz_bytes)
def test_property_arbitrary_bytes_only_raise_protocol_error(frame: bytes) -> None:
    fuzz_all_states(frame)


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
msgpack_values = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_plausible = (
    st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE)
    | st.integers(min_value=-1, max_value=(1 << 32) + 1)
    | st.sampled_from(OUTCOMES)
    | st.floats(min_value=-1, max_value=2 * MAX_BUDGET)
    | st.text(min_size=MAX_TEXT_LENGTH - 1, max_size=MAX_TEXT_LENGTH + 1)
)
_field_values = msgpack_values | _plausible
_entries = st.lists(
    st.dictionaries(st.sampled_from(ENTRY_FIELDS) | st.text(max_size=4), _field_values, max_size=7) | _field_values,
    max_size=3,
)
_kinds = st.sampled_from(["hello", "challenge", "proof", "accept", "stop", "ack", "ready", "report"]) | st.text(
    max_size=8
)
_field_names = st.sampled_from(["nonce", "pid", "name", "proof", "reason", "budget", "entries"]) | st.text(max_size=6)
shaped_messages = st.tuples(
    st.sampled_from([PROTOCOL_VERSION] * 6 + [0, 2, True, 1.0, "1", None]),
    _kinds,
    st.dictionaries(_field_names, _field_values | _entries, max_size=4) | msgpack_values,
).map(list)
msgpack_objects = msgpack_values | shaped_messages


@pytest.mark.fuzz
@given(obj=msgpack_objects)
def test_property_arbitrary_msgpack_only_raises_protocol_error(obj: Any) -> None:
    body = pack(obj)
    fuzz_all_states(body)
    fuzz_established(body)


@pytest.mark.fuzz
@given(reason=st.text(max_size=MAX_TEXT_LENGTH), budget=st.floats(min_value=0, max_value=1e5))
def test_property_stop_round_trip(reason: str, budget: float) -> None:
    parent, child = make_pair()
    event, reply = child.receive(parent.send(Stop(reason, budget)))
    assert reply is None
    assert isinstance(event, Stop)
    assert event.reason == reason
    assert event.budget == budget and type(event.budget) is float


valid_entries = st.fixed_dictionaries(
    {
        "pid": st.integers(min_value=1, max_value=(1 << 32) - 1),
        "name": st.text(max_size=MAX_TEXT_LENGTH),
        "outcome": st.sampled_from(OUTCOMES),
        "returncode": st.none() | st.integers(min_value=-(1 << 31), max_value=(1 << 32) - 1),
        "seconds": st.none()
        | st.floats(min_value=0, allow_infinity=False, allow_nan=False)
        | st.integers(min_value=0, max_value=(1 << 64) - 1),
        "member": st.booleans(),
    }
)


@pytest.mark.fuzz
@given(entries=st.lists(valid_entries, max_size=5))
def test_property_report_round_trip(entries: list[dict[str, Any]]) -> None:
    parent, child = make_pair()
    event, reply = parent.receive(child.send(Report(tuple(entries))))
    assert reply is None
    assert event == Report(tuple(entries))


@pytest.mark.fuzz
@given(
    script=st.lists(
        st.sampled_from(["stop", "ack", "ready", "report", "farewell", "junk-parent", "junk-child"]), max_size=30
    )
)
def test_property_interleaved_messages_stay_in_step(script: list[str]) -> None:
    parent, child = make_pair()
    for n, action in enumerate(script):
        if action == "stop":
            assert child.receive(parent.send(Stop(str(n), float(n)))) == (Stop(str(n), float(n)), None)
        elif action == "ack":
            assert child.receive(parent.send(Ack())) == (Ack(), None)
        elif action == "ready":
            assert parent.receive(child.send(Ready())) == (Ready(), None)
        elif action == "report":
            report = Report(({**ENTRY_A, "pid": n + 1},))
            assert parent.receive(child.send(report)) == (report, None)
        elif action == "farewell":
            assert parent.receive(child.send(Farewell())) == (Farewell(), None)
        elif action == "junk-parent":
            rejects(parent, RANDOM_JUNK[: n + 1])
        else:
            rejects(child, RANDOM_JUNK[: n + 1])
    exchange(parent, child)


# -- the digest ----------------------------------------------------------------


@pytest.mark.fuzz
@given(key=st.binary(max_size=200), message=st.binary(max_size=5000))
@example(key=b"", message=b"")
@example(key=b"k" * 63, message=b"m")
@example(key=b"k" * 64, message=b"m")  # exactly SHA-256's block
@example(key=b"k" * 65, message=b"m")  # longer: hashed first
def test_hmac_without_openssl_matches_the_standard_library(key: bytes, message: bytes) -> None:
    assert hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("key", "message", "expected"),
    [
        (  # RFC 4231, test case 2
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (  # RFC 4231, test case 6: a key longer than the block
            b"\xaa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ],
)
def test_hmac_known_answers(key: bytes, message: bytes, expected: str) -> None:
    assert hmac_sha256(key, message) == bytes.fromhex(expected)


def test_compare_digest() -> None:
    tag = hmac_sha256(b"key", b"message")
    assert compare_digest(tag, bytes(tag))
    assert not compare_digest(tag, tag[:-1] + bytes([tag[-1] ^ 1]))
    assert not compare_digest(tag, tag[:-1])
