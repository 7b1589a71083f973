"""The protocol's test vectors as data, generated from the reference code.

Rules of this module:

* Every value in the vectors comes out of the reference implementation
  (`_protocol.Channel`, `_transport.ChannelKeys`, `_deadlines`) fed with fixed
  inputs; the only values computed here are the frames a well-behaved peer
  never sends (the hostile ones), built with the formulas of docs/protocol.md.
* The generator asserts what it records: a hostile frame that the reference
  code accepted, or a probe it refused, stops the generation (it would record
  a bug as the rule).
* The output is deterministic: the same code gives the same bytes, so
  ``tests/test_conformance.py`` regenerates the file and compares.
* Bytes are lower-case hex strings; msgpack values are shown as JSON, with
  ``{"bin": HEX}`` for msgpack bin.
* No secret of a real channel is involved: the secrets are fixed, public test values.
"""

from __future__ import annotations

import contextlib
import json
import math
import types
from collections.abc import Callable, Iterator

import msgpack

from .. import _deadlines, _environment, _protocol
from .._errors import ProtocolError
from .._hmac import hmac_sha256
from .._outcome import OUTCOMES
from .._protocol import Ack, Channel, Farewell, Ready, Report, Role, State, Stop

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

#: The inputs of docs/protocol.md's examples (sections 3.3 and 5.5).
SECRET = bytes(range(32))
CHILD_NONCE = b"\xaa" * 32
PARENT_NONCE = b"\xbb" * 32
CHILD_PID = 4242
CHILD_NAME = "worker-1"
#: A secret nobody in the session holds, for forged proofs and tags.
WRONG_KEY = b"\x55" * 32
LABEL = b"shutdownbus/1 "

ENTRY: dict[str, Any] = {
    "pid": 4243,
    "name": "worker-1.0",
    "outcome": "stopped",
    "returncode": 0,
    "seconds": 0.25,
    "member": True,
}


@contextlib.contextmanager
def _nonce(value: bytes) -> Iterator[None]:
    """Make the reference code draw ``value`` as its next nonces (it draws them with ``os.urandom``)."""
    real = _protocol.os  # type: ignore[attr-defined]
    _protocol.os = types.SimpleNamespace(urandom=lambda n: value[:n])  # type: ignore[attr-defined,assignment]
    try:
        yield
    finally:
        _protocol.os = real  # type: ignore[attr-defined]


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac_sha256(key, b"".join(parts))


def _tag(key: bytes, seq: int, body: bytes) -> bytes:
    return body + _mac(key, seq.to_bytes(8, "big"), body)


def _json_value(obj: Any) -> Any:
    """A msgpack value as JSON: bin as ``{"bin": HEX}``, floats kept apart from integers."""
    if isinstance(obj, bytes):
        return {"bin": obj.hex()}
    if isinstance(obj, dict):
        return {str(k): _json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_value(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"float": repr(obj)}
    return obj


class _Keys:
    """The session's keys, computed with the spec's formulas (5.3)."""

    def __init__(self, secret: bytes, nc: bytes, np_: bytes) -> None:
        self.p1 = _mac(secret, LABEL + b"parent", nc, np_)
        self.p2 = _mac(secret, LABEL + b"child", nc, np_)
        self.kpc = _mac(secret, LABEL + b"p2c", nc, np_)
        self.kcp = _mac(secret, LABEL + b"c2p", nc, np_)


KEYS = _Keys(SECRET, CHILD_NONCE, PARENT_NONCE)

#: Where a refusal case starts: the receiver, after the fixed handshake's steps up to this state.
STARTS = ("await-hello", "await-proof", "await-challenge", "await-accept", "established")


def _session() -> dict[str, Any]:
    """Run the fixed handshake through the reference code; return its frames and channels."""
    child = Channel(Role.CHILD, SECRET, pid=CHILD_PID, name=CHILD_NAME)
    parent = Channel(Role.PARENT, SECRET)
    with _nonce(CHILD_NONCE):
        hello = child.start()
    with _nonce(PARENT_NONCE):
        event, challenge = parent.receive(hello)
    assert event is None and challenge is not None
    event, proof = child.receive(challenge)
    assert event is None and proof is not None
    established, accept = parent.receive(proof)
    assert established is not None and accept is not None
    child_event, reply = child.receive(accept)
    assert child_event is not None and reply is None
    assert parent.established and child.established
    return {"hello": hello, "challenge": challenge, "proof": proof, "accept": accept, "parent": parent, "child": child}


def _receiver(side: str, start: str) -> Channel:
    """A fresh reference channel on ``side``, in state ``start`` of the fixed handshake."""
    frames = _session()
    if side == "parent":
        parent = Channel(Role.PARENT, SECRET)
        if start == "await-hello":
            return parent
        with _nonce(PARENT_NONCE):
            parent.receive(frames["hello"])
        if start == "await-proof":
            return parent
        parent.receive(frames["proof"])
        assert start == "established"
        return parent
    child = Channel(Role.CHILD, SECRET, pid=CHILD_PID, name=CHILD_NAME)
    with _nonce(CHILD_NONCE):
        child.start()
    if start == "await-challenge":
        return child
    child.receive(frames["challenge"])
    if start == "await-accept":
        return child
    child.receive(frames["accept"])
    assert start == "established"
    return child


def _event_name(event: Any) -> str | None:
    return None if event is None else type(event).__name__.lower()


def _feed(channel: Channel, frame: bytes) -> dict[str, Any]:
    """What the reference channel does with ``frame``."""
    try:
        event, reply = channel.receive(frame)
    except ProtocolError as exc:
        return {"result": "refused", "error": type(exc).__name__, "message": str(exc), "state": channel.state.value}
    out: dict[str, Any] = {"result": "accepted", "event": _event_name(event), "state": channel.state.value}
    if reply is not None:
        out["reply"] = reply.hex()
    if event is not None and isinstance(event, Stop):
        out["fields"] = {"reason": event.reason, "budget": event.budget}
    return out


class _Case:
    def __init__(self, name: str, side: str, start: str, rule: str, why: str, steps: list[tuple[str, bytes]]) -> None:
        self.name, self.side, self.start, self.rule, self.why, self.steps = name, side, start, rule, why, steps


def _stop_body(reason: Any = "stop", budget: Any = 5.0, version: Any = 1, **extra: Any) -> bytes:
    return _pack([version, "stop", {"reason": reason, "budget": budget, **extra}])


def _cases() -> list[_Case]:
    """The refused frames, each with the probe that shows what the refusal left behind."""
    k = KEYS
    frames = _session()
    good_stop = _stop_body()
    cases: list[_Case] = []

    def add(name: str, side: str, start: str, rule: str, why: str, *steps: tuple[str, bytes]) -> None:
        cases.append(_Case(name, side, start, rule, why, list(steps)))

    # The child (a member): the handshake.
    good_challenge = frames["challenge"]
    challenge_fields = {"nonce": PARENT_NONCE, "proof": k.p1}

    def challenge(**fields: Any) -> bytes:
        return _pack([1, "challenge", {**challenge_fields, **fields}])

    bad_challenges = {
        "challenge-bad-proof": ("8.3.8", "P1 made with a key other than K", challenge(proof=_mac(WRONG_KEY, b"x"))),
        "challenge-reflected-proof": ("9.3", "P1 made with the child's label", challenge(proof=k.p2)),
        "challenge-other-nonce": ("8.3.8", "P1 does not cover this Np", challenge(nonce=b"\xcc" * 32)),
        "challenge-short-nonce": ("8.3.8", "nonce of 31 bytes", challenge(nonce=PARENT_NONCE[:31])),
        "challenge-nonce-str": ("4.2", "nonce as str, not bin", challenge(nonce="b" * 32)),
        "challenge-extra-field": ("8.3.6", "a field too many", challenge(extra=1)),
        "challenge-version-2": ("8.3.3", "version 2", _pack([2, "challenge", challenge_fields])),
        "challenge-version-bool": ("8.3.3", "version true", _pack([True, "challenge", challenge_fields])),
        "challenge-trailing-byte": ("4.2", "one byte after the value", good_challenge + b"\xc0"),
        "challenge-as-map": ("8.3.2", "a map, not an array", _pack({"kind": "challenge", **challenge_fields})),
        "stop-before-handshake": ("8.3.5", "a stop, untagged, before the handshake", good_stop),
        "stop-tagged-before-handshake": ("8.3.1", "a tagged stop before the handshake", _tag(k.kpc, 0, good_stop)),
        "oversized-frame": ("8.2", "one byte over MAX_FRAME_SIZE", good_challenge.ljust(65537, b"\x00")),
    }
    for name, (rule, why, frame) in bad_challenges.items():
        add(name, "child", "await-challenge", rule, why, ("hostile", frame), ("probe", good_challenge))

    add(
        "stop-instead-of-accept",
        "child",
        "await-accept",
        "5.4",
        "a stop as the first tagged frame: dropped, but counted",
        ("hostile", _tag(k.kpc, 0, good_stop)),
        ("probe", _tag(k.kpc, 1, _pack([1, "accept", {}]))),
    )
    add(
        "accept-bad-tag",
        "child",
        "await-accept",
        "8.4.2",
        "accept tagged with another key: dropped, not counted",
        ("hostile", _tag(WRONG_KEY, 0, _pack([1, "accept", {}]))),
        ("probe", frames["accept"]),
    )

    # The child, established: p2c seq 0 was the accept, the next good frame is seq 1.
    def est(name: str, rule: str, why: str, hostile: list[bytes], probe_seq: int) -> None:
        add(name, "child", "established", rule, why, *[("hostile", h) for h in hostile],
            ("probe", _tag(k.kpc, probe_seq, good_stop)))

    est("stop-bad-tag", "8.4.2", "a stop tagged with another key", [_tag(WRONG_KEY, 1, good_stop)], 1)
    est("stop-replayed-seq", "9.3", "a stop tagged with seq 0, already used", [_tag(k.kpc, 0, good_stop)], 1)
    est("stop-skipped-seq", "9.3", "a stop tagged with seq 2, one ahead", [_tag(k.kpc, 2, good_stop)], 1)
    est("stop-reflected", "9.3", "a stop tagged with the child's own key Kcp", [_tag(k.kcp, 1, good_stop)], 1)
    est("stop-tag-flipped", "8.4.2", "last bit of the tag flipped",
        [(lambda f: f[:-1] + bytes([f[-1] ^ 1]))(_tag(k.kpc, 1, good_stop))], 1)
    est("stop-untagged", "8.4.2", "a stop without a tag", [good_stop], 1)
    est("frame-too-short", "8.4.1", "32 bytes: no room for a body", [_mac(k.kpc, b"x")], 1)
    est("knock-on-spawn-channel", "7.8", "an admin's knock", [_protocol.knock()], 1)
    est("oversized-tagged-frame", "8.2", "a good tag, but one byte over MAX_FRAME_SIZE: not counted",
        [_tag(k.kpc, 1, _stop_body(reason="x" * (65537 - 32 - len(_stop_body(reason="")))))], 1)
    counted = {
        "budget-negative": ("6.2", "budget -1", _stop_body(budget=-1.0)),
        "budget-over-max": ("6.2", "budget 604800.5", _stop_body(budget=604800.5)),
        "budget-nan": ("6.2", "budget NaN", _stop_body(budget=math.nan)),
        "budget-infinite": ("6.2", "budget +inf", _stop_body(budget=math.inf)),
        "budget-bool": ("6.2", "budget true", _stop_body(budget=True)),
        "budget-str": ("6.2", "budget as str", _stop_body(budget="5")),
        "budget-nil": ("6.2", "budget nil", _stop_body(budget=None)),
        "reason-too-long": ("6.2", "reason of 257 code points", _stop_body(reason="r" * 257)),
        "reason-bin": ("4.2", "reason as bin", _stop_body(reason=b"stop")),
        "stop-missing-budget": ("8.4.5", "no budget", _pack([1, "stop", {"reason": "stop"}])),
        "stop-extra-field": ("8.4.5", "a field too many", _stop_body(extra=1)),
        "stop-version-2": ("8.4.4", "version 2", _stop_body(version=2)),
        "accept-again": ("8.4.6", "accept once established", _pack([1, "accept", {}])),
        "ready-from-parent": ("8.4.5", "a child's kind from the parent", _pack([1, "ready", {}])),
        "farewell-from-parent": ("8.4.5", "a child's kind from the parent", _pack([1, "farewell", {}])),
        "unknown-kind": ("8.4.5", "a kind nobody sends", _pack([1, "shutdown", {}])),
        "stop-trailing-byte": ("4.2", "one byte after the value", good_stop + b"\xc0"),
    }
    for name, (rule, why, body) in counted.items():
        est(name, rule, f"{why}: a good tag, so it is counted", [_tag(k.kpc, 1, body)], 2)
    est("budget-out-of-range-then-more", "8.4.3", "three bad stops in a row, each counted",
        [_tag(k.kpc, 1, _stop_body(budget=-1.0)), _tag(k.kpc, 2, _stop_body(budget=1e9)),
         _tag(k.kpc, 3, _stop_body(reason="r" * 300))], 4)

    # The parent (a member's own end for its children).
    hello_fields = {"nonce": CHILD_NONCE, "pid": CHILD_PID, "name": CHILD_NAME}

    def hello(**fields: Any) -> bytes:
        return _pack([1, "hello", {**hello_fields, **fields}])

    bad_hellos = {
        "hello-short-nonce": ("8.3.7", "nonce of 31 bytes", hello(nonce=CHILD_NONCE[:31])),
        "hello-pid-zero": ("8.3.7", "pid 0", hello(pid=0)),
        "hello-pid-too-big": ("8.3.7", "pid 2^32", hello(pid=1 << 32)),
        "hello-pid-bool": ("8.3.7", "pid true", hello(pid=True)),
        "hello-name-too-long": ("8.3.7", "name of 257 code points", hello(name="n" * 257)),
        "hello-missing-name": ("8.3.6", "no name", _pack([1, "hello", {"nonce": CHILD_NONCE, "pid": CHILD_PID}])),
        "hello-version-2": ("8.3.3", "version 2", _pack([2, "hello", hello_fields])),
        "proof-before-hello": ("8.3.5", "a proof in await-hello", frames["proof"]),
        "junk": ("8.3.1", "not msgpack", b"\xc1"),
    }
    for name, (rule, why, frame) in bad_hellos.items():
        add(name, "parent", "await-hello", rule, why, ("hostile", frame), ("probe", frames["hello"]))
    add("proof-bad", "parent", "await-proof", "5.4", "a wrong proof: the parent forgets the handshake",
        ("hostile", _pack([1, "proof", {"proof": k.p1}])), ("probe", frames["hello"]), ("probe", frames["proof"]))
    add("proof-short", "parent", "await-proof", "5.4", "a proof of 31 bytes: the parent forgets the handshake",
        ("hostile", _pack([1, "proof", {"proof": k.p2[:31]}])), ("probe", frames["hello"]))
    entry_bad = {
        "report-request-empty": {**ENTRY, "request": ""},
        "report-request-too-long": {**ENTRY, "request": "S" * (_protocol.MAX_REQUEST_LENGTH + 1)},
        "report-request-int": {**ENTRY, "request": 15},
        "report-requested-negative": {**ENTRY, "request": "SIGTERM", "requested": -0.1},
        "report-requested-str": {**ENTRY, "request": "SIGTERM", "requested": "0.1"},
        "report-extra-field": {**ENTRY, "signal": "SIGTERM"},
        "report-outcome-unknown": {**ENTRY, "outcome": "vanished"},
        "report-pid-zero": {**ENTRY, "pid": 0},
        "report-returncode-too-big": {**ENTRY, "returncode": 1 << 32},
        "report-seconds-negative": {**ENTRY, "seconds": -0.5},
        "report-member-int": {**ENTRY, "member": 1},
        "report-missing-field": {k_: v for k_, v in ENTRY.items() if k_ != "seconds"},
    }
    good_report = _pack([1, "report", {"entries": [ENTRY]}])
    for name, entry in entry_bad.items():
        add(name, "parent", "established", "6.5", "a bad entry: a good tag, so it is counted",
            ("hostile", _tag(k.kcp, 0, _pack([1, "report", {"entries": [entry]}]))),
            ("probe", _tag(k.kcp, 1, good_report)))
    add("farewell-with-a-field", "parent", "established", "8.4.5", "a farewell carries no field: counted",
        ("hostile", _tag(k.kcp, 0, _pack([1, "farewell", {"pid": CHILD_PID}]))),
        ("probe", _tag(k.kcp, 1, _pack([1, "farewell", {}]))))
    add("stop-from-child", "parent", "established", "8.4.5", "a parent's kind from the child: counted",
        ("hostile", _tag(k.kcp, 0, good_stop)), ("probe", _tag(k.kcp, 1, _pack([1, "ready", {}]))))
    add("ready-reflected", "parent", "established", "9.3", "tagged with Kpc, the parent's own key",
        ("hostile", _tag(k.kpc, 0, _pack([1, "ready", {}]))), ("probe", _tag(k.kcp, 0, _pack([1, "ready", {}]))))
    return cases


def _run_case(case: _Case) -> dict[str, Any]:
    channel = _receiver(case.side, case.start)
    steps = []
    for role, frame in case.steps:
        before = channel.state
        with _nonce(PARENT_NONCE):  # a parent draws Np again for a hello
            outcome = _feed(channel, frame)
        if role == "hostile":
            assert outcome["result"] == "refused", (case.name, outcome)
            assert channel.state is (State.AWAIT_HELLO if case.start == "await-proof" else before), case.name
        else:
            assert outcome["result"] == "accepted", (case.name, outcome)
        step: dict[str, Any] = {"role": role, **_frame_json(frame)}
        steps.append({**step, **outcome})
    return {
        "name": case.name,
        "receiver": case.side,
        "start": case.start,
        "rule": case.rule,
        "why": case.why,
        "steps": steps,
    }


def _frame_json(frame: bytes) -> dict[str, Any]:
    """A frame as hex; a long one as its longest run of one byte between a head and a tail."""
    if len(frame) <= 4096:
        return {"frame": frame.hex()}
    best = (0, 0)  # start, length
    i = 0
    while i < len(frame):
        j = i
        while j < len(frame) and frame[j] == frame[i]:
            j += 1
        if j - i > best[1]:
            best = (i, j - i)
        i = j
    start, count = best
    return {
        "frame_repeat": {
            "head": frame[:start].hex(),
            "byte": frame[start : start + 1].hex(),
            "count": count,
            "tail": frame[start + count :].hex(),
        },
        "frame_length": len(frame),
    }


def _messages() -> list[dict[str, Any]]:
    """Every established-phase message of the fixed session, as the reference code sends it."""
    frames = _session()
    parent, child = frames["parent"], frames["child"]
    out: list[dict[str, Any]] = []

    def record(name: str, sender: str, seq: int, key: str, frame: bytes, receiver: Channel) -> None:
        body = frame[:-32]
        value = msgpack.unpackb(body, raw=False)
        outcome = _feed(receiver, frame)
        assert outcome["result"] == "accepted", (name, outcome)
        out.append({
            "name": name,
            "sender": sender,
            "key": key,
            "seq": seq,
            "value": _json_value(value),
            "body": body.hex(),
            "tag": frame[-32:].hex(),
            "frame": frame.hex(),
            "event": outcome["event"],
        })

    record("accept", "parent", 0, "kpc", frames["accept"], _receiver("child", "await-accept"))
    record("ready", "child", 0, "kcp", child.send(Ready()), parent)
    record("stop", "parent", 1, "kpc", parent.send(Stop("deploy", 5.0)), child)
    record("report", "child", 1, "kcp", child.send(Report((ENTRY,))), parent)
    record("ack", "parent", 2, "kpc", parent.send(Ack()), child)
    record("report-empty", "child", 2, "kcp", child.send(Report(())), parent)
    record("ack-2", "parent", 3, "kpc", parent.send(Ack()), child)
    entry = {**ENTRY, "request": "stop", "requested": 0.001}
    record("report-with-request", "child", 3, "kcp", child.send(Report((entry,))), parent)
    record("ack-3", "parent", 4, "kpc", parent.send(Ack()), child)
    record("farewell", "child", 4, "kcp", child.send(Farewell()), parent)
    return out


def _boundaries() -> list[dict[str, Any]]:
    """Stops at the edges of what is valid, each accepted by a fresh established child."""
    out = []
    cases: list[tuple[str, Callable[[], bytes]]] = [
        ("budget-zero-int", lambda: _stop_body(budget=0)),
        ("budget-max", lambda: _stop_body(budget=_deadlines.MAX_BUDGET)),
        ("budget-float32", lambda: b"\x93\x01\xa4stop\x82\xa6reason\xa4stop\xa6budget\xca\x40\xa0\x00\x00"),
        ("budget-uint64-form", lambda: b"\x93\x01\xa4stop\x82\xa6reason\xa4stop\xa6budget\xcf" + bytes(7) + b"\x07"),
        ("reason-256-four-byte-code-points", lambda: _stop_body(reason="\U0001f600" * 256)),
        ("reason-empty", lambda: _stop_body(reason="")),
        ("fields-reordered", lambda: _pack([1, "stop", {"budget": 1.5, "reason": "stop"}])),
        # A repeated key counts once, with its last value (protocol.md 4.2).
        ("key-repeated", lambda: b"\x93\x01\xa4stop\x83\xa6reason\xa1x\xa6reason\xa4stop\xa6budget\x01"),
    ]
    for name, build in cases:
        child = _receiver("child", "established")
        frame = _tag(KEYS.kpc, 1, build())
        outcome = _feed(child, frame)
        assert outcome["result"] == "accepted", (name, outcome)
        out.append({"name": name, "receiver": "child", "start": "established", "frame": frame.hex(), **outcome})
    return out


def _entry_edges() -> list[dict[str, Any]]:
    """Report entries at the edges of what is valid (6.5), each accepted by a fresh established parent."""
    out = []
    edges: list[tuple[str, dict[str, Any]]] = [
        ("entry-optional-fields", {**ENTRY, "request": "stop", "requested": 0.001}),
        ("entry-optional-nil", {**ENTRY, "request": None, "requested": None}),
        ("entry-request-only", {**ENTRY, "request": "SIGTERM"}),
        ("entry-request-32-code-points", {**ENTRY, "request": "\U0001f600" * _protocol.MAX_REQUEST_LENGTH}),
        ("entry-nil-returncode-and-seconds", {**ENTRY, "returncode": None, "seconds": None, "member": False}),
        ("entry-returncode-extremes", {**ENTRY, "returncode": -(1 << 31), "outcome": "killed"}),
        ("entry-seconds-int", {**ENTRY, "seconds": 3}),
    ]
    for name, entry in edges:
        parent = _receiver("parent", "established")
        frame = _tag(KEYS.kcp, 0, _pack([1, "report", {"entries": [entry]}]))
        outcome = _feed(parent, frame)
        assert outcome["result"] == "accepted", (name, outcome)
        out.append({
            "name": name, "receiver": "parent", "start": "established", "frame": frame.hex(),
            "entries": _json_value([entry]), **outcome,
        })
    return out


def generate() -> dict[str, Any]:
    """The test vectors of protocol version 1.

    Returns:
        A JSON-ready dict; `dumps` gives the committed file's text.
    """
    from .. import _zmq
    from .._transport import ChannelKeys

    keys = ChannelKeys.derive(SECRET)
    session = _session()
    with _nonce(CHILD_NONCE):
        assert Channel(Role.CHILD, SECRET, pid=CHILD_PID, name=CHILD_NAME).start() == session["hello"]
    budgets = [604800.0, 100.0, 20.0, 10.0, 5.0, 3.0, 1.0, 0.5, 0.4, 0.0]
    return {
        "about": (
            "Test vectors of the shutdownbus protocol, version 1 (docs/protocol.md). Generated by"
            " `python -m shutdownbus.conformance.vectors` from the reference implementation; do not edit."
            " Bytes are lower-case hex. In 'value', msgpack bin is {\"bin\": HEX}."
        ),
        "protocol_version": _protocol.PROTOCOL_VERSION,
        "constants": {
            "label": LABEL.hex(),
            "secret_size": _protocol.SECRET_SIZE,
            "nonce_size": _protocol.NONCE_SIZE,
            "tag_size": _protocol.TAG_SIZE,
            "max_frame_size": _protocol.MAX_FRAME_SIZE,
            "max_text_length": _protocol.MAX_TEXT_LENGTH,
            "max_budget": _deadlines.MAX_BUDGET,
            "level_share": _deadlines.LEVEL_SHARE,
            "escalation_margin": _deadlines.ESCALATION_MARGIN,
            "term_grace": _deadlines.TERM_GRACE,
            "kill_wait": _deadlines.KILL_WAIT,
            "default_stop_timeout": 10.0,
            "outcomes": list(OUTCOMES),
            "entry_fields": list(_protocol.ENTRY_FIELDS),
            "optional_entry_fields": list(_protocol.OPTIONAL_ENTRY_FIELDS),
            "max_request_length": _protocol.MAX_REQUEST_LENGTH,
            "environment": {
                "endpoint": _environment.ENV_ENDPOINT,
                "secret": _environment.ENV_SECRET,
                "stop_timeout": _environment.ENV_STOP_TIMEOUT,
                "transport": _environment.ENV_TRANSPORT,
                "runtime_dir": _environment.ENV_RUNTIME_DIR,
            },
            "knock": _protocol.knock().hex(),
        },
        "curve": {
            "secret": SECRET.hex(),
            "secret_env": keys.encoded_secret(),
            "server_secret_raw": _zmq.z85_decode(keys.server_secret).hex(),
            "server_public_raw": _zmq.z85_decode(keys.server_public).hex(),
            "client_secret_raw": _zmq.z85_decode(keys.client_secret).hex(),
            "client_public_raw": keys.client_public_raw().hex(),
            "server_secret_z85": keys.server_secret.decode(),
            "server_public_z85": keys.server_public.decode(),
            "client_secret_z85": keys.client_secret.decode(),
            "client_public_z85": keys.client_public.decode(),
        },
        "handshake": {
            "secret": SECRET.hex(),
            "child_nonce": CHILD_NONCE.hex(),
            "parent_nonce": PARENT_NONCE.hex(),
            "child_pid": CHILD_PID,
            "child_name": CHILD_NAME,
            "p1": KEYS.p1.hex(),
            "p2": KEYS.p2.hex(),
            "kpc": KEYS.kpc.hex(),
            "kcp": KEYS.kcp.hex(),
            "frames": {
                step: {"frame": session[step].hex(), "value": _json_value(msgpack.unpackb(
                    session[step][:-32] if step == "accept" else session[step], raw=False))}
                for step in ("hello", "challenge", "proof", "accept")
            },
        },
        "messages": _messages(),
        # A stop of budget B, arriving at time 0: the deadline D = B, and the children's deadline (7.1).
        "children_budgets": [{"budget": b, "children_budget": _deadlines.children_deadline(b, 0.0)} for b in budgets],
        # A child whose deadline passed: by when its escalation is over (7.4), with and without an own deadline.
        "escalation_ends": [
            {"deadline": d, "own_deadline": own, "escalation_end": _deadlines.escalation_end(d, own)}
            for d, own in ((10.0, None), (10.0, 10.2), (10.0, 10.4), (10.0, 11.0), (10.0, 9.0))
        ],
        "accepted_edges": _boundaries(),
        "accepted_entries": _entry_edges(),
        "refusals": [_run_case(case) for case in _cases()],
        "states": [*STARTS, State.IDLE.value],
    }


def dumps(vectors: dict[str, Any]) -> str:
    """The vectors as the committed file's text (sorted keys, two-space indent, final newline)."""
    return json.dumps(vectors, indent=1, sort_keys=True, ensure_ascii=True) + "\n"
