"""The bus thread: one per process, owner of every zmq socket of that process.

Rules of this module:

* zmq sockets are not thread-safe, so exactly one thread (the bus thread)
  touches them after creation.  Other threads hand it work with `Bus.call`,
  which queues a function and wakes the thread through a `WakeChannel`.
* The thread blocks in ``poll()`` with no timeout: no periodic wake-ups.
* It handles, in this order of importance: the upstream channel (our own
  parent), the downstream channels (children we spawned), the ZAP handler that
  admits only each channel's own child, the upstream socket's monitor,
  which tells it when the parent's end went away, descriptors others asked
  it to watch (`watch`), and a registered root's admin-socket monitor, which
  counts connections so that a flood's memory is given back (`_AdminPeers`).
* A bad frame is logged once and dropped; it never ends the thread.
"""

from __future__ import annotations

import collections
import errno
import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator

from . import _log, _platform, _protocol, _transport, _zmq
from ._deadlines import MAX_BUDGET, level_deadline
from ._errors import ChannelError, ProtocolError
from ._protocol import Ack, Channel, Established, Event, Farewell, Ready, Report, Role, Stop, is_knock
from ._threads import NotRun, call_on

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

# Report entries per message.  An entry encodes to at most about 1.3 KB (a
# name is at most MAX_TEXT_LENGTH code points of up to 4 bytes, a request
# MAX_REQUEST_LENGTH), so 48 of them
# fit in MAX_FRAME_SIZE with the frame's envelope and tag
# (tests/test_hardening.py checks it with the largest entries).
REPORT_CHUNK = 48
#: The most entries a parent keeps from one child's reports: a tree of
#: that many processes is far beyond what one stop handles anyway.
MAX_REPORTED = 20_000
#: How long (ms) closing a channel may wait for what is still queued on it
#: after a farewell: ours, to a parent that is there (it is written at once;
#: a farewell lost only makes the parent wait for our exit, as without one),
#: or the parent's last ack to a child that said it.
FAREWELL_LINGER = 50
_MONITORED = (
    _zmq.EVENT_DISCONNECTED
    | _zmq.EVENT_CLOSED
    | _zmq.EVENT_HANDSHAKE_SUCCEEDED
    | _zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | _zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | _zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


#: How many connections a child makes to its parent's endpoint when the
#: transport handshake fails before it ever succeeded: a loaded parent
#: answers a handshake late (its ZAP handler runs on a busy bus thread) and
#: drops it after `_transport.HANDSHAKE_IVL_MS`.  A slow handshake is not a
#: wrong credential; a wrong secret fails as many times, within a second.
#: Only over ``ipc://`` (Linux, macOS) and while the parent is not provably
#: dead: elsewhere a connection to a parent that is gone never fails, it waits.
JOIN_ATTEMPTS = 3

#: What each event of the parent's socket means for a child that joins (a
#: failure is never said to be another: a slow handshake is not a wrong credential).
_JOIN_FAILURES = {
    _zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the parent refused this process's credentials (a secret or endpoint not"
    " from this spawn)",
    _zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the transport handshake with the parent failed: the endpoint does not"
    " speak CURVE as shutdownbus does",
    # What a child sees when the parent's ZAP handler refuses its key: the parent
    # closes the connection (EPIPE), as it does with one that took too long.
    _zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the parent closed the connection during the transport handshake: either"
    " this process's secret is not its spawn's, or it took over"
    f" {_transport.HANDSHAKE_IVL_MS / 1000:g} s to authenticate (a heavily loaded machine)",
    _zmq.EVENT_DISCONNECTED: "the parent's end of the channel closed",
    _zmq.EVENT_CLOSED: "the parent's end of the channel closed",
    # Disconnected before the handshake completed: the parent is gone, or it
    # dropped a connection that had not authenticated within HANDSHAKE_IVL_MS.
    0: "the connection to the parent closed before the handshake completed (the parent exited, or this"
    f" process took over {_transport.HANDSHAKE_IVL_MS / 1000:g} s to authenticate: a heavily loaded machine)",
}


class Link:
    """The parent's end of one child's channel.

    The bus thread owns the socket and the protocol state (``sock``,
    ``channel``).  It alone writes the attributes below after construction;
    other threads read them, each a value replaced whole (a read sees the old
    or the new value, never a mix), and the events order them.

    Attributes:
        keys, endpoint, domain: The channel's keys and address, fixed at construction.
        joined: Set once the handshake completed; ``member_pid`` and
            ``member_name`` (the peer's own claims) are set before it.
        ready: Set when the member called ``ready()``.
        entries: Report entries the member sent up (wire dicts), capped at
            `MAX_REPORTED`; a new tuple is assigned on each report.
        stop_reason, stop_deadline: Set together when a stop is requested
            (``stop_deadline`` may later only move earlier), with
            ``stop_requested_at``; ``stop_sent_at`` once the stop left.
        opened_at: About when the child was spawned (its join grace counts from it).
        closed: The link is closed (its secret overwritten); nothing more will be sent or received.
        farewell_at: When the child said farewell during a stop we asked for
            (`_protocol.Farewell`); ``on_farewell`` is called then, on the bus thread.
    """

    def __init__(self, keys: _transport.ChannelKeys, sock: _zmq.Socket, endpoint: str, domain: bytes) -> None:
        self.keys = keys
        self.sock = sock
        self.endpoint = endpoint
        self.domain = domain
        self.channel = Channel(Role.PARENT, keys.secret)
        self.joined = threading.Event()
        self.ready = threading.Event()
        self.member_pid: int | None = None
        self.member_name: str | None = None
        self.entries: tuple[dict[str, Any], ...] = ()
        self.stop_reason: str | None = None
        self.stop_deadline: float | None = None  # time.monotonic() by which the child must be gone
        self.stop_requested_at: float | None = None
        self.stop_sent_at: float | None = None
        self.opened_at = time.monotonic()  # about when the child was spawned
        self.stop_order = 0  # `spawn`'s stop_order: the lower, the earlier a stop of several children reaches it
        self.closed = False
        #: Called by the bus thread once the child joined (Windows: shares its job with it).
        self.on_joined: Callable[[], None] | None = None
        self.farewell_at: float | None = None
        self.on_farewell: Callable[[], None] | None = None  # wakes the stop's wait (`_stop._run`)

    def __repr__(self) -> str:
        return f"<Link {self.endpoint} joined={self.joined.is_set()} stop={self.stop_reason!r}>"


class Upstream:
    """This process's end of the channel to whoever may stop it.

    For a spawned member, the channel to its parent (connected, monitored so
    that the parent's loss is seen).  For a registered root (``admin``), its
    admin channel (bound; each admin that connects knocks, and the handshake
    starts afresh for it).
    """

    def __init__(
        self,
        keys: _transport.ChannelKeys,
        sock: _zmq.Socket,
        monitor: _zmq.Socket | None,
        pid: int,
        name: str,
        *,
        admin: bool = False,
    ) -> None:
        self.keys = keys
        self.sock = sock
        self.monitor = monitor
        self.admin = admin
        self.pid, self.name = pid, name
        self.channel = Channel(Role.CHILD, keys.secret, pid=pid, name=name)
        self.joined = threading.Event()
        self.acked = threading.Event()  # every report handed to the bus so far was acknowledged
        self.acked.set()  # none yet
        self.unacked = 0  # reports handed to the bus and not yet acknowledged
        self.lock = threading.Lock()
        self.lost = threading.Event()
        self.failure: str | None = None
        self.endpoint = ""  # the parent's, for a spawned member
        self.attempts = 1  # connections made to it (`JOIN_ATTEMPTS`)
        self.handshook = False  # a transport handshake with it succeeded
        self.farewell_sent = False  # then its socket closes with `FAREWELL_LINGER`


class Bus:
    """The process's zmq context, sockets and bus thread.

    Args:
        on_stop: Called on the bus thread when the parent sends a stop:
            ``on_stop(reason, deadline)``, the deadline (`time.monotonic`) being
            the stop's budget from the moment it was read (the one place
            where a budget becomes a deadline on the way in).
        on_parent_lost: Called on the bus thread when the parent's end closed.
    """

    def __init__(self, on_stop: Callable[[str, float], None], on_parent_lost: Callable[[], None]) -> None:
        _protocol.load()  # now, not with a frame that comes while this process exits
        self._on_stop = on_stop
        self._on_parent_lost = on_parent_lost
        self.ctx: _zmq.Context = _zmq.Context()
        self.ctx.setsockopt(_zmq.LINGER, 0)
        try:
            self.runtime = _transport.RuntimeDir()
        except BaseException:
            self.ctx.term()  # its descriptors and threads: `get_bus` may be called again
            raise
        self.links: dict[_zmq.Socket, Link] = {}
        self.upstream: Upstream | None = None
        self._zap: _zmq.Socket | None = None
        self._allowed: dict[bytes, bytes] = {}
        self._domains = itertools.count(1)
        self._commands: collections.deque[Callable[[], object]] = collections.deque()
        self._wake_lock = threading.Lock()
        self._setup_lock = threading.Lock()
        try:
            self._wake = _platform.WakeChannel()
        except BaseException:
            self.runtime.close()
            self.ctx.term()
            raise
        self._poller = _zmq.Poller()
        self._poller.register(self._wake.fileno(), _zmq.POLLIN)
        self._running = True
        self._warned: set[str] = set()
        self._watched: dict[int, Callable[[], None]] = {}  # other descriptors: callback when readable
        self._admin_peers: _AdminPeers | None = None  # a registered root's admin connections
        self.thread = threading.Thread(target=self._run, name="shutdownbus", daemon=True)
        try:
            self.thread.start()
        except BaseException:
            self._wake.close()
            self.runtime.close()
            self.ctx.term()
            raise

    # -- any thread --

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the bus thread, soon; returns at once."""
        self._commands.append(fn)
        with self._wake_lock:
            if self._running:
                self._wake.set()

    def call_and_wait(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the bus thread and return its result.

        Raises:
            ChannelError: the bus thread did not run it in time.
        """
        if threading.current_thread() is self.thread:
            return fn()
        try:
            return call_on(self.call, fn, timeout)
        except NotRun:
            raise ChannelError("the shutdownbus thread did not respond; this is a bug, please report it") from None

    def _bind(
        self, keys: _transport.ChannelKeys, max_frame: int = _protocol.MAX_FRAME_SIZE
    ) -> tuple[_zmq.Socket, str, bytes]:
        """Bind a socket that the ZAP handler opens to ``keys``' client only."""
        self._ensure_zap()
        domain = f"sb{next(self._domains)}".encode()
        self._allowed[domain] = keys.client_public_raw()
        try:
            sock, endpoint = _transport.bind_parent_socket(self.ctx, keys, domain.decode(), self.runtime, max_frame)
        except BaseException:
            self._allowed.pop(domain, None)
            raise
        return sock, endpoint, domain

    def open_link(self) -> Link:
        """Create and bind the parent's end of a new channel (any thread)."""
        keys = _transport.ChannelKeys.generate()
        sock, endpoint, domain = self._bind(keys)
        link = Link(keys, sock, endpoint, domain)

        def adopt() -> None:
            self.links[sock] = link
            self._poller.register(sock, _zmq.POLLIN)

        self.call(adopt)
        return link

    def _ensure_zap(self) -> None:
        with self._setup_lock:
            if self._zap is None:
                # The ZAP handler must be bound before the first CURVE server
                # socket, or libzmq would admit every client.
                zap = _transport.new_socket(self.ctx, _zmq.REP)
                zap.setsockopt(_zmq.LINGER, 0)
                zap.bind(_transport.ZAP_ENDPOINT)
                self._zap = zap
                self.call(lambda: self._poller.register(zap, _zmq.POLLIN))

    def close_link(self, link: Link) -> None:
        """Close a channel whose child is gone (any thread)."""

        def close() -> None:
            if link.closed:
                return
            self._allowed.pop(link.domain, None)
            if self.links.pop(link.sock, None) is not None:
                self._poller.unregister(link.sock)
            # A child that said farewell may still wait for our last ack
            # (it says farewell before it waits): let that ack be written.
            link.sock.close(FAREWELL_LINGER if link.farewell_at is not None else 0)
            _transport.remove_endpoint(link.endpoint)
            _forget_secret(link)
            link.closed = True  # last: whoever sees it closed finds its secret gone

        self.call(close)

    def request_stop(self, link: Link, reason: str, deadline: float) -> None:
        """Send (or queue until the child joins) a stop on ``link`` (any thread)."""
        self.call(lambda: self._request_stop(link, reason, deadline))

    def open_upstream(self, keys: _transport.ChannelKeys, endpoint: str, pid: int, name: str) -> Upstream:
        """Connect to the parent and start the handshake (any thread)."""
        sock, monitor = _transport.connect_child_socket(self.ctx, keys, endpoint, _MONITORED)
        up = Upstream(keys, sock, monitor, pid, name)
        up.endpoint = endpoint

        def adopt() -> None:
            self.upstream = up
            self._poller.register(sock, _zmq.POLLIN)
            self._poller.register(monitor, _zmq.POLLIN)
            self._send(sock, up.channel.start())

        self.call(adopt)
        return up

    def open_admin(self, keys: _transport.ChannelKeys, pid: int, name: str) -> tuple[Upstream, str]:
        """Bind the admin channel of a registered root (any thread).

        Returns:
            The channel and the endpoint admins connect to.
        """
        sock, endpoint, _ = self._bind(keys, _transport.MAX_ADMIN_FRAME_SIZE)
        up = Upstream(keys, sock, None, pid, name, admin=True)
        try:
            # Its connections are counted, so that what a flood of them made
            # the C heap grow by is given back once they are gone (`_AdminPeers`).
            # libzmq drops a monitor event that finds its queue full: with no
            # limit on our side of it, none is lost in a flood (a lost
            # DISCONNECTED kept the count above 0, and the heap untrimmed).
            address = f"inproc://shutdownbus-admin-monitor-{id(sock)}"
            sock.monitor(address, _zmq.EVENT_ACCEPTED | _zmq.EVENT_DISCONNECTED)
            monitor = sock.context.socket(_zmq.PAIR)
            monitor.setsockopt(_zmq.RCVHWM, 0)
            monitor.connect(address)
        except _zmq.ZMQError:
            monitor = None  # no descriptor for it: the channel works, uncounted

        def adopt() -> None:
            self.upstream = up
            self._poller.register(sock, _zmq.POLLIN)
            if monitor is not None:
                self._admin_peers = _AdminPeers(monitor)
                self._poller.register(monitor, _zmq.POLLIN)

        self.call(adopt)
        return up, endpoint

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()`` on the bus thread whenever ``fd`` is readable (any thread)."""

        def adopt() -> None:
            self._watched[fd] = on_readable
            self._poller.register(fd, _zmq.POLLIN)

        self.call(adopt)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (see `watch`); on the bus thread only (from a
        callback of `watch`), before the caller closes it."""
        if self._watched.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def send_upstream(self, event: Ready | Report) -> None:
        """Send ``Ready`` or ``Report`` to the parent (any thread).

        A report is split into several messages when it would not fit in one
        frame; the parent acknowledges each, and `Upstream.acked` is set once
        every report sent so far was acknowledged.
        """

        up = self.upstream
        if up is None:
            return
        chunks = [event] if isinstance(event, Ready) else _chunks(event)
        if isinstance(event, Report):
            # Counted here, before the send is queued, so that a caller that
            # waits for `acked` right after this call cannot see a stale "yes".
            with up.lock:
                up.unacked += len(chunks)
                up.acked.clear()

        def send() -> None:
            for chunk in chunks:
                if up.channel.established and not up.lost.is_set() and self._send(up.sock, up.channel.send(chunk)):
                    continue
                if isinstance(chunk, Report):  # it will never be acknowledged
                    with up.lock:
                        up.unacked = max(0, up.unacked - 1)
                        if up.unacked == 0:
                            up.acked.set()

        self.call(send)

    def send_farewell(self) -> None:
        """Tell the parent that only this process's finalization is left (any thread)."""
        up = self.upstream
        if up is None or up.admin:
            return

        def send() -> None:
            if up.channel.established and not up.lost.is_set() and self._send(up.sock, up.channel.send(Farewell())):
                up.farewell_sent = True

        self.call(send)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread and close every socket and the context."""
        if not self._running:
            return
        self.call(self._quit)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)
        with self._wake_lock:
            self._running = False
        if not self.thread.is_alive():  # else it may still poll them: leave them to the exit
            self._wake.close()
            self.ctx.term()
        self.runtime.close()

    # -- the bus thread --

    def _quit(self) -> None:
        self._running = False
        for link in list(self.links.values()):
            link.sock.close(0)
            _forget_secret(link)
            link.closed = True  # last, as in close_link
        self.links.clear()
        up = self.upstream
        if up is not None:
            if up.monitor is not None:
                up.sock.disable_monitor()
                up.monitor.close(0)
            up.sock.close(FAREWELL_LINGER if up.farewell_sent else 0)
            _forget_secret(up)
        if self._admin_peers is not None:
            self._admin_peers.close()
        if self._zap is not None:
            self._zap.close(0)

    def _run(self) -> None:
        if hasattr(signal, "pthread_sigmask"):
            # Signals belong to the main thread, where Python handles them.
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while self._running:
            try:
                ready = dict(self._poller.poll())
            except _zmq.ZMQError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if self._wake.fileno() in ready:
                self._drain_commands()
                if not self._running:
                    return
            up = self.upstream
            if up is not None:
                if up.sock in ready:
                    self._on_upstream_frames(up)
                if up.monitor is not None and up.monitor in ready:
                    self._on_monitor(up)
            for sock in [s for s in ready if s in self.links]:
                self._on_link_frames(self.links[sock])
            for fd in [fd for fd in ready if fd in self._watched]:
                try:
                    self._watched[fd]()
                except Exception:
                    _log.exception("shutdownbus: internal error in the bus thread")
            if self._admin_peers is not None and self._admin_peers.monitor in ready:
                self._admin_peers.on_events()
            if self._zap is not None and self._zap in ready:
                while self._zap.poll(0):
                    self._zap.send_multipart(_transport.zap_reply(self._zap.recv_multipart(), self._allowed))

    def _drain_commands(self) -> None:
        self._wake.clear()
        while self._commands:
            fn = self._commands.popleft()
            try:
                fn()
            except Exception:
                _log.exception("shutdownbus: internal error in the bus thread")
            if not self._running:
                return

    def _send(self, sock: _zmq.Socket, frame: bytes) -> bool:
        try:
            sock.send(frame, _zmq.NOBLOCK)
        except _zmq.Again:
            # No peer (it is gone: its exit or the monitor tells the rest), or
            # a peer that does not read (its deadline deals with it).  Common
            # at the end of a stop, and nothing to act on here.
            return False
        except _zmq.ZMQError as exc:
            self._warn_once("send", f"shutdownbus: could not send a control message ({exc})")
            return False
        return True

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _log.warning(message)

    def _frames(self, sock: _zmq.Socket) -> list[bytes]:
        frames: list[bytes] = []
        while len(frames) < 100:  # bounded work per wake-up; poll() brings us back
            try:
                frames.append(sock.recv(_zmq.NOBLOCK))
            except _zmq.Again:
                break
        return frames

    def _events(
        self,
        sock: _zmq.Socket,
        channel: Callable[[], Channel],
        peer: str,
        knock: Callable[[], None] | None = None,
    ) -> Iterator[Event]:
        """Feed the waiting frames to ``channel()``, send its replies, yield its events."""
        for frame in self._frames(sock):
            if knock is not None and is_knock(frame):
                knock()
                continue
            try:
                event, reply = channel().receive(frame)
            except ProtocolError as exc:
                self._warn_once(f"{peer}:{type(exc).__name__}", f"shutdownbus: dropped a frame from the {peer}: {exc}")
                continue
            if reply is not None:
                self._send(sock, reply)
            if event is not None:
                yield event

    def _on_upstream_frames(self, up: Upstream) -> None:
        def knock() -> None:  # an admin connected: a fresh handshake for it
            up.channel = Channel(Role.CHILD, up.keys.secret, pid=up.pid, name=up.name)
            self._send(up.sock, up.channel.start())

        for event in self._events(
            up.sock, lambda: up.channel, "admin" if up.admin else "parent", knock if up.admin else None
        ):
            if isinstance(event, Established):
                if not up.admin:
                    _platform.mark_member()  # on this thread: the bus thread takes the name
                up.joined.set()
            elif isinstance(event, Stop):
                self._on_stop(event.reason, time.monotonic() + event.budget)
            elif isinstance(event, Ack):
                with up.lock:
                    up.unacked = max(0, up.unacked - 1)
                    if up.unacked == 0:
                        up.acked.set()

    def forward_stop(self, reason: str, deadline: float) -> None:
        """Bus thread only: hand a stop to every child at once, to be gone by ``deadline`` (`time.monotonic`).

        Where the children were given an order (`Link.stop_order`), only the
        first group gets it now, with its share of the time
        (`_deadlines.level_deadline`): the thread that finishes the stop
        (`_stop.stop_all`) sends the next groups as each one is gone.
        """
        links = [link for link in self.links.values() if not link.closed]
        orders = sorted({link.stop_order for link in links})
        if len(orders) > 1:
            deadline = min(deadline, level_deadline(time.monotonic(), deadline, 0, len(orders)))
            links = [link for link in links if link.stop_order == orders[0]]
        for link in links:
            self._request_stop(link, reason, deadline)

    def _request_stop(self, link: Link, reason: str, deadline: float) -> None:
        if link.closed:
            return
        if link.stop_deadline is not None:
            # Stopping already (the child heeds only its first stop), but an
            # earlier deadline, such as our own parent's, still applies.
            link.stop_deadline = min(link.stop_deadline, deadline)
            return
        link.stop_reason, link.stop_deadline = reason, deadline
        link.stop_requested_at = time.monotonic()
        if link.channel.established:
            self._send_stop(link)

    def _send_stop(self, link: Link) -> None:
        if link.stop_reason is None or link.stop_deadline is None:
            return
        # The one place where a deadline becomes a budget, on the way out.
        budget = min(MAX_BUDGET, max(0.0, link.stop_deadline - time.monotonic()))
        sent_at = time.monotonic()
        # Not sent means the child's end is gone (it exited, or is exiting):
        # its exit, or its deadline, settles its outcome.
        if self._send(link.sock, link.channel.send(Stop(link.stop_reason, budget))):
            link.stop_sent_at = sent_at

    def _on_monitor(self, up: Upstream) -> None:
        monitor = up.monitor
        while monitor is not None:
            try:
                event = _transport.monitor_event(monitor.recv_multipart(_zmq.NOBLOCK))
            except _zmq.Again:
                return
            if event == _zmq.EVENT_HANDSHAKE_SUCCEEDED:
                up.handshook = True
            elif self._may_connect_again(up, event):
                self._connect_again(up)
                return  # the old monitor's events are gone with it
            elif event in (_zmq.EVENT_DISCONNECTED, _zmq.EVENT_CLOSED):
                if not up.lost.is_set():
                    up.lost.set()
                    up.acked.set()  # nobody is left to acknowledge anything
                    up.failure = up.failure or _JOIN_FAILURES[event if up.channel.established else 0]
                    self._on_parent_lost()
            else:
                up.failure = _JOIN_FAILURES.get(event, up.failure)

    def _may_connect_again(self, up: Upstream, event: int) -> bool:
        """Whether a failure of the transport handshake with our parent may
        have been only slow (see `JOIN_ATTEMPTS`)."""
        return (
            event in (_zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, _zmq.EVENT_DISCONNECTED, _zmq.EVENT_CLOSED)
            and not up.handshook
            and not up.channel.established
            and up.attempts < JOIN_ATTEMPTS
            and up.endpoint.startswith("ipc://")
            and not _transport.owner_is_dead(up.endpoint)
        )

    def _connect_again(self, up: Upstream) -> None:
        """Replace the channel to our parent with a fresh connection and
        handshake.  Nothing of the first reached the parent's protocol (its
        transport handshake never succeeded), so the parent still awaits a hello."""
        assert up.monitor is not None
        up.attempts += 1
        for sock in (up.sock, up.monitor):
            self._poller.unregister(sock)
        up.sock.disable_monitor()
        up.monitor.close(0)
        up.sock.close(0)
        try:
            up.sock, up.monitor = _transport.connect_child_socket(self.ctx, up.keys, up.endpoint, _MONITORED)
        except ChannelError as exc:
            up.failure = str(exc)
            up.monitor = None
            return
        up.channel = Channel(Role.CHILD, up.keys.secret, pid=up.pid, name=up.name)
        self._poller.register(up.sock, _zmq.POLLIN)
        self._poller.register(up.monitor, _zmq.POLLIN)
        self._send(up.sock, up.channel.start())

    def _on_link_frames(self, link: Link) -> None:
        for event in self._events(link.sock, lambda: link.channel, "child"):
            if isinstance(event, Established):
                link.member_pid, link.member_name = event.peer_pid, event.peer_name
                _transport.stop_listening(link.endpoint)
                link.joined.set()
                if link.on_joined is not None:
                    link.on_joined()
                if link.stop_deadline is not None:
                    self._send_stop(link)  # a stop issued before the child joined
            elif isinstance(event, Ready):
                link.ready.set()
            elif isinstance(event, Farewell):
                if link.stop_requested_at is not None and link.farewell_at is None:
                    link.farewell_at = time.monotonic()
                    if link.on_farewell is not None:
                        link.on_farewell()
            elif isinstance(event, Report):
                # A member reports each child's subtree as soon as it is
                # stopped, and what is left at its exit: they add up.  Only
                # during a stop we asked for, and bounded: a member is
                # trusted with its own subtree, not with our memory.
                if link.stop_requested_at is None or len(link.entries) >= MAX_REPORTED:
                    self._warn_once("report", "shutdownbus: dropped a report a child sent unasked or past the limit")
                else:
                    link.entries += event.entries[: MAX_REPORTED - len(link.entries)]
                self._send(link.sock, link.channel.send(Ack()))


class _AdminPeers:
    """The connections to a registered root's admin channel, counted from its
    socket's monitor, so that memory a flood of them took is given back.

    Anyone on the machine may connect to a tcp admin port.  libzmq keeps
    each connection (its buffers, and a frame of up to
    `_transport.MAX_ADMIN_FRAME_SIZE`) until it authenticates or the
    handshake interval drops it; the C heap keeps the pages it grew by after
    that.  Once every connection is gone after a burst of at least `FLOOD`
    of them, the heap is trimmed (`_platform.release_free_memory`); during a
    long flood, also every ``4 * FLOOD`` connections.
    """

    FLOOD = 256
    AGAIN = 1.0  # seconds from the trim after a flood to the second one

    def __init__(self, monitor: _zmq.Socket) -> None:
        self.monitor = monitor
        self.open = 0  # connections now
        self.burst = 0  # connections since there were none
        self.since_release = 0  # connections since the heap was last trimmed

    def on_events(self) -> None:
        """Read the monitor's events (bounded work per wake-up; poll() brings us back)."""
        for _ in range(1000):
            try:
                event = _transport.monitor_event(self.monitor.recv_multipart(_zmq.NOBLOCK))
            except _zmq.Again:
                return
            if event == _zmq.EVENT_ACCEPTED:
                self.open += 1
                self.burst += 1
                self.since_release += 1
            elif event == _zmq.EVENT_DISCONNECTED:
                self.open = max(0, self.open - 1)
            if (self.open == 0 and self.burst >= self.FLOOD) or self.since_release >= 4 * self.FLOOD:
                # A trim during the flood does not count as the one after it:
                # what the last connections took is given back when they are gone.
                _platform.release_free_memory()
                self.since_release = 0
                if self.open == 0:
                    # libzmq reports a connection gone before its I/O thread has
                    # freed the connection's buffers: on a loaded machine that can
                    # come after this trim, so trim again a moment later.
                    again = threading.Timer(self.AGAIN, _platform.release_free_memory)
                    again.daemon = True
                    again.start()
            if self.open == 0:
                self.burst = 0

    def close(self) -> None:
        self.monitor.close(0)


def _forget_secret(end: Link | Upstream) -> None:
    """A closed channel's secret is overwritten, its derived keys dropped
    (docs/security.md says what Python cannot overwrite)."""
    end.channel.forget()
    end.keys.wipe()


def _chunks(report: Report) -> list[Report]:
    """Split a report so that each message fits in a frame (one, if it is empty)."""
    entries = report.entries
    return [Report(entries[i : i + REPORT_CHUNK]) for i in range(0, max(len(entries), 1), REPORT_CHUNK)]
