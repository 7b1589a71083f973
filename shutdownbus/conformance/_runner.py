"""The conformance runner: plays the parent to a member program, case by case.

Rules of this module:

* Each case starts the program afresh on a fresh channel (a new secret, a new
  socket), as ``spawn`` would, and ends with no process of its tree left:
  this process is a subreaper (Linux), and kills every descendant it still
  has when a case ends.
* The handshake and whatever the member sends are checked by the reference
  code (`_protocol.Channel`, parent side).  The frames the runner sends once
  established (good and hostile) are built here with the formulas of
  docs/protocol.md, so that a hostile frame can carry a good tag.
* "Refused without acting" is seen on the wire, with no waiting: after each
  hostile frame the runner sends the genuine stop, and the member must act
  on that one (its first ``stop`` line names the genuine reason).
* The runner waits for events with timeouts, never for a fixed time.
* The channel's secret goes only into the member's environment: never into
  the output, which is a table of cases.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable

import msgpack
import psutil

from .. import _deadlines, _platform, _protocol, _transport, _zmq
from .._environment import ENV_ENDPOINT, ENV_SECRET, ENV_STOP_TIMEOUT
from .._errors import ProtocolError
from .._hmac import hmac_sha256
from .._protocol import Channel, Established, Ready, Report, Role
from .member import ENV_CHILD, ENV_EVENTS

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

LABEL = b"shutdownbus/1 "
JOIN_TIMEOUT = 15.0  # a member's start (an interpreter, zeromq) on a busy machine
GENUINE = "conformance"  # the reason of the runner's genuine stops
HOSTILE = "hostile"  # the reason of every hostile stop
STOP_BUDGET = 3.0  # the stop of the "stop" case
PROBE_BUDGET = 2.0  # the genuine stop after a hostile input
LOST_BUDGET = 2.0  # SHUTDOWNBUS_STOP_TIMEOUT in the parent-lost case
SLACK = 0.15  # what the runner allows for its own observation of an exit
BUDGET_SLACK = 0.5  # how much less than sent a child's budget may be (the time its parent took to forward)


def children_budget(budget: float) -> float:
    """The budget a member that got ``budget`` hands its children (protocol.md 7.1), forwarding at once."""
    return _deadlines.children_deadline(budget, 0.0)


class CaseFailed(Exception):
    """A check of a case failed; the message says which and why."""


def _mac(key: bytes | bytearray, *parts: bytes) -> bytes:
    return hmac_sha256(key, b"".join(parts))


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _stop(reason: str, budget: Any, version: Any = 1, **extra: Any) -> bytes:
    return _pack([version, "stop", {"reason": reason, "budget": budget, **extra}])


class Session:
    """One spawn of the member program on one fresh channel."""

    def __init__(self, runner: Runner, *, child: bool = False, stop_timeout: float = 10.0) -> None:
        self.runner = runner
        self.keys = _transport.ChannelKeys.generate()
        runner.domains += 1
        # A context of its own, with its own ZAP handler: the "parent-lost"
        # case ends it.  (With a ZAP handler in the context, closing a CURVE
        # server socket alone does not end the connection: libzmq 4.3.5 keeps
        # it until the context ends, and the member would see nothing.)
        self.ctx: _zmq.Context = _zmq.Context()
        self.ctx.setsockopt(_zmq.LINGER, 0)
        try:
            self.zap = self.ctx.socket(_zmq.REP)
            self.zap.bind(_transport.ZAP_ENDPOINT)
            self.domain = b"sb1"
            self.allowed = {self.domain: self.keys.client_public_raw()}
            self.sock, self.endpoint = _transport.bind_parent_socket(
                self.ctx, self.keys, self.domain.decode(), runner.runtime
            )
            self.channel = Channel(Role.PARENT, self.keys.secret)
            self.events_path = os.path.join(runner.tmp, f"events-{runner.domains}")
            self.stderr_path = os.path.join(runner.tmp, f"stderr-{runner.domains}")
            env = dict(os.environ)
            env.update({
                ENV_ENDPOINT: self.endpoint,
                ENV_SECRET: self.keys.encoded_secret(),
                ENV_STOP_TIMEOUT: repr(float(stop_timeout)),
                ENV_EVENTS: self.events_path,
                ENV_CHILD: "1" if child else "0",
            })
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(runner.command, env=env, stdin=subprocess.DEVNULL, stderr=err)
            del env
        except BaseException:
            self.ctx.destroy(0)  # its descriptors and threads: the runner goes on to the next case
            raise
        self.nc = self.np = b""
        self.kpc = self.kcp = b""
        self.seq = 0  # the next p2c sequence number
        self.reports: list[dict[str, Any]] = []
        self.readies = 0
        self.exited_at: float | None = None
        self.hello: dict[str, Any] = {}
        self.accept = b""

    # -- frames --

    def recv(self, timeout: float) -> bytes | None:
        """The next frame from the member, or None on timeout or when it exited."""
        end = time.monotonic() + timeout
        poller = _zmq.Poller()
        poller.register(self.sock, _zmq.POLLIN)
        poller.register(self.zap, _zmq.POLLIN)
        while True:
            self.serve_zap()
            try:
                return self.sock.recv(_zmq.NOBLOCK)
            except _zmq.Again:
                pass
            if self.poll_exit() is not None:
                return None
            left = end - time.monotonic()
            if left <= 0:
                return None
            poller.poll(max(1, int(min(left, 0.005) * 1000)))

    def serve_zap(self) -> None:
        while self.zap.poll(0):
            self.zap.send_multipart(_transport.zap_reply(self.zap.recv_multipart(), self.allowed))

    def end_parent(self) -> None:
        """The parent's end goes away, as when the parent dies: every socket and the context end."""
        if not self.sock.closed:
            self.sock.close(0)
            self.zap.close(0)
            self.ctx.term()

    def send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame, _zmq.NOBLOCK)
        except _zmq.Again:
            pass  # the member is gone: its exit settles the case

    def tagged(self, body: bytes, *, key: bytes | None = None, seq: int | None = None) -> bytes:
        """``body || tag``; by default with Kpc and the next sequence number (which then counts)."""
        if seq is None:
            seq = self.seq
            self.seq += 1
        return body + _mac(self.kpc if key is None else key, seq.to_bytes(8, "big"), body)

    def poll_exit(self) -> int | None:
        rc = self.proc.poll()
        if rc is not None and self.exited_at is None:
            self.exited_at = time.monotonic()
        return rc

    # -- steps --

    def await_hello(self) -> None:
        frame = self.recv(JOIN_TIMEOUT)
        if frame is None:
            raise CaseFailed(self._why(f"no hello within {JOIN_TIMEOUT:g} s"))
        try:
            obj = msgpack.unpackb(frame, raw=False)
            self.hello = obj[2]
            self.nc = self.hello["nonce"]
        except Exception:  # any malformed hello
            raise CaseFailed("the first frame is not a hello [1, 'hello', {nonce, pid, name}]") from None
        pid = self.hello.get("pid")
        if pid != self.proc.pid and pid not in self._descendants():
            raise CaseFailed(f"hello's pid {pid!r} is neither the spawned process nor one of its descendants")

    def challenge(self) -> bytes:
        """Feed the hello to the reference channel; return its challenge (not sent)."""
        try:
            _, reply = self.channel.receive(_pack([1, "hello", self.hello]))
        except ProtocolError as exc:
            raise CaseFailed(f"the hello was refused by the reference code: {exc}") from None
        assert reply is not None
        self.np = msgpack.unpackb(reply, raw=False)[2]["nonce"]
        nonces = (self.nc, self.np)
        self.kpc = _mac(self.keys.secret, LABEL + b"p2c", *nonces)
        self.kcp = _mac(self.keys.secret, LABEL + b"c2p", *nonces)
        return reply

    def await_proof(self) -> None:
        """Receive the proof; the reference code checks it (and answers with accept, kept here)."""
        frame = self.recv(JOIN_TIMEOUT)
        if frame is None:
            raise CaseFailed(self._why("no proof after the challenge"))
        try:
            event, accept = self.channel.receive(frame)
        except ProtocolError as exc:
            raise CaseFailed(f"the proof was refused: {exc}") from None
        if not isinstance(event, Established) or accept is None:
            raise CaseFailed("the handshake did not complete after the proof")
        self.accept = accept
        self.seq = 1

    def join(self) -> None:
        """The whole handshake, as a parent does it."""
        self.await_hello()
        self.send(self.challenge())
        self.await_proof()
        self.send(self.accept)

    def await_ready(self) -> None:
        end = time.monotonic() + JOIN_TIMEOUT
        while self.readies == 0:
            frame = self.recv(max(0.0, end - time.monotonic()))
            if frame is None:
                raise CaseFailed(self._why(f"no ready within {JOIN_TIMEOUT:g} s of the accept"))
            self.take(frame)

    def take(self, frame: bytes) -> None:
        """A tagged frame from the member: checked by the reference code; a report is acknowledged."""
        try:
            event, _ = self.channel.receive(frame)
        except ProtocolError as exc:
            raise CaseFailed(f"the member sent a frame the reference code refuses: {exc}") from None
        if isinstance(event, Ready):
            self.readies += 1
        elif isinstance(event, Report):
            self.reports.extend(event.entries)
            self.send(self.tagged(_pack([1, "ack", {}])))

    def wait_exit(self, deadline: float, what: str) -> int:
        """Take frames until the member exits; fail if it outlives ``deadline`` (+ `SLACK`)."""
        while self.poll_exit() is None:
            left = deadline + SLACK - time.monotonic()
            if left <= 0:
                raise CaseFailed(f"still running {SLACK:g} s after its deadline ({what})")
            frame = self.recv(left)
            if frame is not None:
                self.take(frame)
        while (frame := self.recv(0)) is not None:  # what it sent before it exited
            self.take(frame)
        rc = self.proc.returncode
        assert rc is not None
        return rc

    def events(self) -> list[tuple[int, str, list[str]]]:
        """``(pid, event, args)`` of each line of the events file."""
        try:
            with open(self.events_path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            pid, _, rest = line.partition(" ")
            event, _, args = rest.partition(" ")
            if pid.isdigit():
                out.append((int(pid), event, args.split(" ", 1) if args else []))
        return out

    def stops(self, pid: int) -> list[tuple[float, str]]:
        """``(budget, reason)`` of each ``stop`` line of ``pid``."""
        found = []
        for p, event, args in self.events():
            if p == pid and event == "stop" and len(args) == 2:
                try:
                    found.append((float(args[0]), args[1]))
                except ValueError:
                    raise CaseFailed(f"bad stop line from {pid}: budget {args[0]!r}") from None
        return found

    def member_pid(self) -> int:
        pid = self.hello.get("pid")
        return pid if isinstance(pid, int) else self.proc.pid

    def spawned(self) -> int | None:
        for pid, event, args in self.events():
            if pid == self.member_pid() and event == "spawned" and args and args[0].isdigit():
                return int(args[0])
        return None

    def _descendants(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def _why(self, what: str) -> str:
        rc = self.poll_exit()
        if rc is None:
            return what
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                last = [line for line in f.read().splitlines() if line.strip()][-1:]
        except OSError:
            last = []
        return f"{what}: it exited with status {rc}" + (f" ({last[0].strip()[:120]})" if last else "")

    def close(self) -> None:
        """End the session: the socket closes, and no process of the case is left."""
        self.end_parent()
        _transport.remove_endpoint(self.endpoint)
        self.keys.wipe()
        self.channel.forget()
        self.runner.kill_leftovers(self.proc)


class Runner:
    """Runs the cases against one member command.

    Args:
        command: The member program and its arguments.
        children: Whether to ask the program for a child (the forwarding checks).
    """

    def __init__(self, command: list[str], *, children: bool = True) -> None:
        self.command = command
        self.children = children
        self.domains = 0
        self.runtime = _transport.RuntimeDir()
        self.tmp = tempfile.mkdtemp(prefix="sbc-")
        _platform.make_child_subreaper()

    def kill_leftovers(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill whatever the case left: the member and every descendant of this process."""
        procs = []
        try:
            procs = psutil.Process().children(recursive=True)
        except psutil.Error:
            pass
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        psutil.wait_procs(procs, timeout=5)

    def close(self) -> None:
        import shutil

        self.runtime.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, case: Callable[[Runner], str]) -> tuple[bool, str]:
        """One case: ``(passed, detail)``."""
        try:
            return True, case(self)
        except CaseFailed as exc:
            return False, str(exc)

    def session(self, **kwargs: Any) -> Session:
        return Session(self, **kwargs)


# -- the cases ----------------------------------------------------------------


def _genuine_stop(s: Session) -> str:
    """Send the genuine stop (`PROBE_BUDGET`) and check what the member did with it (`_check_genuine_stop`)."""
    sent_at = time.monotonic()
    s.send(s.tagged(_stop(GENUINE, PROBE_BUDGET)))
    return _check_genuine_stop(s, PROBE_BUDGET, sent_at)


def _check_genuine_stop(s: Session, budget: float, sent_at: float) -> str:
    """After hostile input: the member acts on the genuine stop only, and exits by its deadline."""
    rc = s.wait_exit(sent_at + budget, f"a stop of {budget:g} s")
    stops = s.stops(s.member_pid())
    if not stops:
        raise CaseFailed(s._why("it exited without logging a stop"))
    got_budget, reason = stops[0]
    if reason != GENUINE:
        raise CaseFailed(f"it acted on the hostile input: its stop has reason {reason!r} (budget {got_budget:g})")
    if not budget - BUDGET_SLACK <= got_budget <= budget + 0.002:
        raise CaseFailed(f"it logged budget {got_budget:g} for a stop of {budget:g}")
    if rc != 0:
        raise CaseFailed(f"it exited with status {rc} after a stop")
    return f"exit {(s.exited_at or sent_at) - sent_at:.2f} s after the genuine stop"


def _established(runner: Runner, **kwargs: Any) -> Session:
    s = runner.session(**kwargs)
    s.join()
    s.await_ready()
    return s


def _hostile_established(frames: Callable[[Session], list[bytes]]) -> Callable[[Runner], str]:
    def case(runner: Runner) -> str:
        s = _established(runner)
        try:
            for frame in frames(s):
                s.send(frame)
            return "refused; " + _genuine_stop(s)
        finally:
            s.close()

    return case


def case_handshake(runner: Runner) -> str:
    """hello, challenge, proof, accept, ready; then a stop to a member with no child: no report, exit 0."""
    s = runner.session()
    try:
        started = time.monotonic()
        s.join()
        s.await_ready()
        ready_in = time.monotonic() - started
        sent_at = time.monotonic()
        s.send(s.tagged(_stop(GENUINE, PROBE_BUDGET)))
        detail = _check_genuine_stop(s, PROBE_BUDGET, sent_at)
        if s.reports:
            raise CaseFailed(f"a member with no child reported {len(s.reports)} entries")
        return f"pid {s.member_pid()}, name {s.hello.get('name')!r}, ready in {ready_in:.2f} s, {detail}"
    finally:
        s.close()


def case_stop_forwarded(runner: Runner) -> str:
    """A stop with a budget: forwarded to the member's child with the child's budget, reported, exit by the deadline."""
    s = runner.session(child=True)
    try:
        s.join()
        s.await_ready()
        child = s.spawned()
        if child is None:
            raise CaseFailed(f"no 'spawned' line: the program did not start a child ({ENV_CHILD}=1)")
        sent_at = time.monotonic()
        s.send(s.tagged(_stop(GENUINE, STOP_BUDGET)))
        rc = s.wait_exit(sent_at + STOP_BUDGET, f"a stop of {STOP_BUDGET:g} s")
        took = (s.exited_at or sent_at) - sent_at
        _check_stop_lines(s, s.member_pid(), GENUINE, STOP_BUDGET, "the member")
        _check_stop_lines(s, child, GENUINE, children_budget(STOP_BUDGET), "its child")
        cleanups = {pid for pid, event, _ in s.events() if event == "cleanup"}
        if not {s.member_pid(), child} <= cleanups:
            raise CaseFailed("a cleanup did not run: " + ", ".join(
                str(p) for p in (s.member_pid(), child) if p not in cleanups))
        rows = [e for e in s.reports if e["pid"] == child]
        if len(rows) != 1:
            raise CaseFailed(f"the report has {len(rows)} entries for the child {child} (want 1): {s.reports!r}")
        row = rows[0]
        if row["outcome"] != "stopped" or row["member"] is not True or row["returncode"] not in (0, None):
            raise CaseFailed(f"the child's report entry is wrong: {row!r}")
        if row["seconds"] is not None and not 0 <= row["seconds"] <= STOP_BUDGET:
            raise CaseFailed(f"the child's report entry has seconds {row['seconds']!r}")
        if row.get("request") not in (None, "stop"):  # optional (6.5): a member is asked with the stop
            raise CaseFailed(f"the child's report entry says it was asked with {row['request']!r}, not 'stop'")
        if rc != 0:
            raise CaseFailed(f"it exited with status {rc} after a stop")
        return f"forwarded, reported ({len(s.reports)} report entries), exit in {took:.2f} s"
    finally:
        s.close()


def _check_stop_lines(s: Session, pid: int, reason: str, budget: float, who: str) -> None:
    stops = s.stops(pid)
    if len(stops) != 1:
        raise CaseFailed(f"{who} ({pid}) logged {len(stops)} stops, not 1: {stops!r}")
    got, got_reason = stops[0]
    if got_reason != reason:
        raise CaseFailed(f"{who} got reason {got_reason!r}, not {reason!r}")
    if not budget - BUDGET_SLACK <= got <= budget + 0.002:
        raise CaseFailed(f"{who} got budget {got:g}, want about {budget:.3g} (at most)")


def case_parent_lost(runner: Runner) -> str:
    """The parent's end goes away: the member stops itself with 'parent-lost' and SHUTDOWNBUS_STOP_TIMEOUT."""
    s = runner.session(child=True, stop_timeout=LOST_BUDGET)
    try:
        s.join()
        s.await_ready()
        child = s.spawned()
        s.end_parent()
        lost_at = time.monotonic()
        try:
            s.proc.wait(LOST_BUDGET + 0.5)
        except subprocess.TimeoutExpired:
            raise CaseFailed(f"still running {LOST_BUDGET + 0.5:g} s after its parent's end closed") from None
        s.poll_exit()
        took = (s.exited_at or lost_at) - lost_at
        _check_stop_lines(s, s.member_pid(), "parent-lost", LOST_BUDGET, "the member")
        if child is not None:
            _check_stop_lines(s, child, "parent-lost", children_budget(LOST_BUDGET), "its child")
        elif runner.children:
            raise CaseFailed(f"no 'spawned' line: the program did not start a child ({ENV_CHILD}=1)")
        return f"stopped itself ('parent-lost'), forwarded, exit in {took:.2f} s"
    finally:
        s.close()


def case_bad_challenge(runner: Runner) -> str:
    """A challenge whose proof P1 was not made with K is ignored: the member answers the genuine one only."""
    s = runner.session()
    try:
        s.await_hello()
        genuine = s.challenge()
        forged = _pack([1, "challenge", {"nonce": b"\xcc" * 32, "proof": _mac(b"\x55" * 32, b"forged")}])
        s.send(forged)
        s.send(genuine)
        try:
            s.await_proof()  # a proof for the forged challenge fails here
        except CaseFailed as exc:
            raise CaseFailed(f"it answered a challenge whose proof was forged ({exc})") from None
        s.send(s.accept)
        s.await_ready()
        return _genuine_stop(s)
    finally:
        s.close()


def case_stop_before_handshake(runner: Runner) -> str:
    """A stop (untagged, then tagged) before the challenge is dropped."""
    s = runner.session()
    try:
        s.await_hello()
        genuine = s.challenge()
        s.send(_stop(HOSTILE, 0.5))
        s.send(_stop(HOSTILE, 0.5) + _mac(s.kpc, bytes(8), _stop(HOSTILE, 0.5)))
        s.send(genuine)
        s.await_proof()
        s.send(s.accept)
        s.await_ready()
        return _genuine_stop(s)
    finally:
        s.close()


def case_stop_instead_of_accept(runner: Runner) -> str:
    """A tagged stop where the accept belongs (p2c seq 0) is dropped but counted: accept then comes as seq 1."""
    s = runner.session()
    try:
        s.await_hello()
        s.send(s.challenge())
        s.await_proof()
        s.seq = 0
        s.send(s.tagged(_stop(HOSTILE, 0.5)))
        s.send(s.tagged(_pack([1, "accept", {}])))
        s.await_ready()
        return _genuine_stop(s)
    finally:
        s.close()


def _wrong_key(s: Session) -> list[bytes]:
    return [s.tagged(_stop(HOSTILE, 0.5), key=b"\x55" * 32, seq=1)]


def _replay(s: Session) -> list[bytes]:
    return [s.accept, s.tagged(_stop(HOSTILE, 0.5), seq=0)]


def _reflected(s: Session) -> list[bytes]:
    return [s.tagged(_stop(HOSTILE, 0.5), key=s.kcp, seq=1)]


def _untagged(s: Session) -> list[bytes]:
    return [_stop(HOSTILE, 0.5)]


def _oversized(s: Session) -> list[bytes]:
    # A good tag for the next number, but one byte over the limit: refused before the tag, so not counted.
    n = _protocol.MAX_FRAME_SIZE
    while len(_stop("x" * n, 0.5)) + _protocol.TAG_SIZE > _protocol.MAX_FRAME_SIZE + 1:
        n -= 1
    frame = s.tagged(_stop("x" * n, 0.5), seq=s.seq)
    assert len(frame) == _protocol.MAX_FRAME_SIZE + 1
    return [frame]


def _budgets(s: Session) -> list[bytes]:
    bad = [-1.0, _deadlines.MAX_BUDGET + 0.5, math.nan, math.inf, True, "1"]
    return [s.tagged(_stop(HOSTILE, b)) for b in bad]


def _bad_fields(s: Session) -> list[bytes]:
    return [
        s.tagged(_stop(HOSTILE, 0.5, version=2)),
        s.tagged(_stop(HOSTILE, 0.5, extra=1)),
        s.tagged(_stop("r" * (_protocol.MAX_TEXT_LENGTH + 1), 0.5)),
        s.tagged(_stop(HOSTILE, 0.5) + b"\xc0"),
        s.tagged(_pack([1, "accept", {}])),
    ]


#: name, what it checks, the case.
CASES: list[tuple[str, Callable[[Runner], str]]] = [
    ("handshake", case_handshake),
    ("stop-forwarded", case_stop_forwarded),
    ("parent-lost", case_parent_lost),
    ("bad-challenge-proof", case_bad_challenge),
    ("frame-before-handshake", case_stop_before_handshake),
    ("stop-instead-of-accept", case_stop_instead_of_accept),
    ("bad-tag", _hostile_established(_wrong_key)),
    ("replay", _hostile_established(_replay)),
    ("reflected", _hostile_established(_reflected)),
    ("untagged-stop", _hostile_established(_untagged)),
    ("oversized-frame", _hostile_established(_oversized)),
    ("budget-out-of-range", _hostile_established(_budgets)),
    ("bad-fields", _hostile_established(_bad_fields)),
]


def run(command: list[str], *, only: list[str] | None = None, out: Callable[[str], None] = print) -> bool:
    """Run the cases against ``command``; print the table with ``out``.

    Args:
        command: The member program and its arguments.
        only: Names of the cases to run (default: all).
        out: Where the table's lines go.

    Returns:
        Whether every case passed.
    """
    runner = Runner(command)
    ok = True
    width = max(len(name) for name, _ in CASES)
    out(f"{'case':<{width}}  result  detail")
    try:
        joins = True
        for name, case in CASES:
            if only and name not in only:
                continue
            if not joins:
                out(f"{name:<{width}}  {'SKIP':<6}  not run: the handshake case failed")
                continue
            passed, detail = runner.run(case)
            ok = ok and passed
            joins = passed or name != "handshake"
            out(f"{name:<{width}}  {'PASS' if passed else 'FAIL':<6}  {detail}")
    finally:
        runner.close()
    return ok
