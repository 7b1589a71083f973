"""The admin side of a registered root's channel: what ``send-stop`` does.

Rules of this module:

* The admin speaks the same protocol as a parent (`Role.PARENT`), with the
  root's admin credential instead of a per-spawn secret, over the same
  CURVE + ZAP transport.  Since the root binds and cannot know when an admin
  connects, the admin opens with a ``knock`` frame; the root then starts the
  handshake as a child would.
* The admin is not the root's parent: it cannot collect the root's exit
  status (a root that knows it reports it: ``shutdownbus run`` does), so it
  watches the tree until every process is gone, and escalates past the
  deadline like a parent would.
* Its report is the truth whatever happens to the root: the tree is taken
  before the stop is sent; a root that dies before its tree is gone is
  ``failed``, and what it left is watched (and escalated at the deadline)
  by the admin, each process that then ends on its own ``lost``.  A
  process not seen ending is never ``stopped``.
* The tree gets the stop's timeout; the root itself gets `ESCALATION_MARGIN`
  more, the time it needs to escalate its own children at their deadline,
  and, once nothing below it runs, `ROOT_EXIT_GRACE` to report and exit,
  before the admin escalates it.  A root that may not be signalled (not
  tied to its channel) gets `UNTIED_ROOT_WAIT` instead, whatever still runs
  below it, before it is reported ``unchecked``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from . import _log, _platform, _progress, _registry, _transport, _zmq
from ._deadlines import ESCALATION_MARGIN
from ._endpoint_owner import holds_endpoint
from ._errors import AuthenticationError, ChannelError, ProtocolError, RegistryError
from ._escalation import escalate
from ._outcome import Outcome
from ._processes import is_running, process, send
from ._protocol import Ack, Channel, Report, Role, Stop, knock
from ._report import ReportEntry, StopReport, merge_entries
from ._tree import Tree

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import psutil

    from ._progress import StopProgress

HANDSHAKE_TIMEOUT = 5.0
_FAILED = (
    _zmq.EVENT_HANDSHAKE_FAILED_AUTH | _zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | _zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def send_stop(
    entry: _registry.Entry,
    *,
    reason: str = "stop",
    timeout: float = 10.0,
    wait: bool = True,
    progress: Callable[[StopProgress], object] | None = None,
) -> StopReport | None:
    """Stop the tree of a registered root.

    Args:
        entry: The root's registry entry.
        reason: Sent with the stop.
        timeout: Seconds before escalation.
        wait: Wait until every process of the tree is gone (else return once the stop was sent).
        progress: Called about four times a second with a `StopProgress` while
            waiting (the processes still running, the slowest first; the time
            left before the root escalates its tree); not when joining a stop
            that another admin leads.

    A stop that another admin leads is joined: its end is waited for, and
    its report returned (see `_registry.begin_stop`).

    Returns:
        The report, or None without ``wait``.

    The stop never depends on the disk: when its record cannot be written
    (a full file system), it is sent and waited for all the same, and a
    warning says that the record could not be kept.

    Raises:
        AuthenticationError: the root refused the credential.
        ChannelError: the root's channel cannot be reached.
        RegistryError: the record of the stop keeps changing under us.
    """
    recorded = True
    try:
        under_way = _registry.begin_stop(entry, timeout)
    except _registry.RecordNotKept as exc:
        _log.warning("shutdownbus: %s", exc)
        under_way, recorded = None, False
    if under_way is not None:
        return _join(entry, under_way) if wait else None
    report = None
    try:
        report = _lead(entry, reason, timeout, wait, progress)
    finally:
        if recorded:
            _registry.finish_stop(entry, None if report is None else report.to_dict())
    return report


def _join(entry: _registry.Entry, under_way: _registry.StopRecord) -> StopReport:
    """Wait for the end of a stop that another admin leads; its report."""
    deadline = time.monotonic() + under_way.timeout + ESCALATION_MARGIN + JOIN_SLACK
    root = process(entry.pid)
    if root is not None:
        watch = _platform.ExitWatch()  # a zombie counts as gone: its parent may be slow to reap it
        watch.add(root.pid, lambda: not is_running(root))
        while watch.watching() and time.monotonic() < deadline:
            watch.wait(deadline - time.monotonic())
        watch.close()
    while True:  # its admin writes the report right after the root's exit
        looked = _registry.read_stop(entry)
        # The leader first, then its report: one it wrote just before it
        # exited is read below, not taken for a leader gone without one.
        running = looked is not None and _registry.leader_running(looked)
        record = _registry.read_stop(entry)
        # A report counts once the root is gone (see `_registry.begin_stop`);
        # our own namespace's init waits for us to leave before it exits.
        if record is not None and record.report is not None and (entry.pid == 1 or entry.alive() is not True):
            return StopReport.from_dict(record.report)
        if not running or time.monotonic() > deadline:
            raise ChannelError(
                f"the stop of {entry.name!r} that another admin led ended without a report"
                " (that admin died or was interrupted); see 'shutdownbus list'"
            )
        time.sleep(0.02)


#: What a root whose tree is gone by the deadline (plus `ESCALATION_MARGIN`)
#: gets to report and exit, before the admin escalates it.
ROOT_EXIT_GRACE = 0.5
#: What a root still at work past the deadline gets to finish when it may not
#: be signalled (its pid cannot be tied to its channel: Windows, say), before
#: it and what runs below it are reported ``unchecked``.
UNTIED_ROOT_WAIT = 2.0


def _only_the_root_is_left(tree: Tree, root: psutil.Process) -> bool:
    tree.refresh()
    return all(m.pid == root.pid for m in tree.alive())


#: How long the admin waits before knocking again on a connection that was dropped as it knocked.
KNOCK_RETRY_MS = 10

#: What a joining admin gives the leading one on top of its stop's deadline.
JOIN_SLACK = 2.0


def _lead(
    entry: _registry.Entry,
    reason: str,
    timeout: float,
    wait: bool,
    watcher: Callable[[StopProgress], object] | None,
) -> StopReport | None:
    keys = _transport.ChannelKeys.from_encoded(entry.secret)
    ctx: _zmq.Context = _zmq.Context()
    try:
        sock, monitor = _transport.connect_child_socket(ctx, keys, entry.endpoint, _FAILED)
        channel = Channel(Role.PARENT, keys.secret)
        _handshake(sock, monitor, channel)
        tied = _the_root_holds_its_channel(entry)
        root = process(entry.pid)
        if root is None:
            raise ChannelError(f"the tree {entry.name!r} exited before it could be stopped")
        t0 = time.monotonic()
        tree = Tree([entry.pid])
        tree.watch.add(root.pid, lambda: not is_running(root))
        sock.send(channel.send(Stop(reason, timeout)))
        sent = round(time.monotonic() - t0, 6)
        progress = None
        if watcher is not None:
            top = (root.pid, entry.name)

            def progress(gone: int, total: int) -> None:
                running = top if is_running(root) else None
                _progress.call(watcher, lambda: _progress.of_tree(tree, running, t0, t0 + timeout))

        if not wait:
            sock.setsockopt(_zmq.LINGER, 1000)  # let the stop leave before we close
            return None
        reported = _wait(sock, channel, root, tree, t0 + timeout + ESCALATION_MARGIN, progress)
        if is_running(root) and not _our_init_is_done(root, reported):
            if _only_the_root_is_left(tree, root):
                # Its tree is gone: the root is sending its report and exiting,
                # which a loaded machine (or wine) may make last past the margin.
                reported += _wait(sock, channel, root, tree, time.monotonic() + ROOT_EXIT_GRACE, progress)
            elif not tied:
                # It may be escalating its tree itself (run does so at the
                # deadline, within the margin, then reports and exits), and we
                # may not signal it: waiting is all we can do before saying so.
                reported += _wait(sock, channel, root, tree, time.monotonic() + UNTIED_ROOT_WAIT, progress)
        head = _RootHead(root)
        outcome = Outcome.STOPPED
        own_word = any(e.pid == entry.pid for e in reported)  # `run` reports its own exit status last
        abandoned_at = None
        if not is_running(root) and not _our_init_is_done(root, reported):
            abandoned_at = _root_left_its_tree(tree, root)
            if abandoned_at is not None:
                # Killed or crashed before its tree was stopped: what it
                # started is watched, and escalated, as the root would have.
                _watch_the_orphans(tree, t0 + timeout + ESCALATION_MARGIN, progress)
                if not own_word:
                    outcome = Outcome.FAILED
        root_left = is_running(root) and not _our_init_is_done(root, reported)
        orphans_left = abandoned_at is not None and any(not m.companion for m in tree.alive())
        if root_left or orphans_left:
            if tied:
                if not root_left:  # companions of the dead end on their own
                    tree.roots = [m.pid for m in tree.alive()]
                escalate([tree], [head], companions=root_left)
                _see_the_killed_end(tree, head, time.monotonic() + KILLED_WAIT)
            else:
                if root_left:
                    outcome = Outcome.UNCHECKED  # still running, and not ours to signal
                _log.warning(
                    "shutdownbus: %s %r is still running past its deadline; pid %d could not be tied to its channel,"
                    " so nothing was signalled",
                    "the root of" if root_left else "the tree of",
                    entry.name,
                    entry.pid,
                )
        end = time.monotonic()
        status = next((e.returncode for e in reported if e.pid == entry.pid), None)
        root_went = tree.watch.exits.get(root.pid)
        own_seconds = round((end if root_went is None else root_went) - t0, 6)
        own = ReportEntry(
            entry.pid, entry.name, head.escalated or outcome, status, own_seconds, True, request="stop", requested=sent
        )
        others = _seen_ending(tree, tree.entries(t0, lost_after=abandoned_at))
        entries = merge_entries([[own], reported, others])
        # Rows that the root timed from a stop it had before ours (ours then
        # joined it) may be longer than ours: the total is never shorter than a row.
        seconds = max([end - t0, *(e.seconds for e in entries if e.seconds is not None)])
        return StopReport(reason, entries, round(seconds, 6), tuple(sorted(tree.unchecked)))
    finally:
        # Each socket's own linger: 0, or the one that lets a stop sent without waiting leave.
        ctx.destroy()


def _see_the_killed_end(tree: Tree, head: _RootHead, until: float) -> None:
    """Wait (up to ``until``) to see the processes that escalation killed end:
    a loaded machine may take longer than `_deadlines.KILL_WAIT` to end a big process,
    and one not seen ending would be reported ``unchecked``.

    Args:
        tree: The escalated tree (the root is watched in its watch too).
        head: The root.
        until: `time.monotonic` to give up at.
    """
    while time.monotonic() < until:
        killed = [m for m in tree.alive() if m.outcome == Outcome.KILLED]
        if not killed and (head.escalated != Outcome.KILLED or head.gone()):
            return
        if tree.watch.watching():
            tree.watch.wait(min(until - time.monotonic(), LOOK_EVERY))
        else:
            time.sleep(0.005)  # nothing to wait on: look again (as `escalate` does)


def _root_left_its_tree(tree: Tree, root: psutil.Process) -> float | None:
    """When the root, seen gone, left processes of its tree running (so it
    was killed or crashed before its stop was done); None if it did not.

    From here on the tree is walked down from those processes, not from the
    root's pid, which may be another process's by now.

    Args:
        tree: The root's tree, taken before the stop was sent.
        root: The root.

    Returns:
        Its exit time (`time.monotonic`; now, if its exit was not seen as it
        happened), or None.
    """
    tree.note_exits()
    left = [m for m in tree.alive() if not m.companion]
    if not left:
        return None
    tree.roots = [m.pid for m in tree.alive()]
    when = tree.watch.exits.get(root.pid)
    return time.monotonic() if when is None else when


def _watch_the_orphans(tree: Tree, deadline: float, progress: Callable[[int, int], None] | None) -> None:
    """Wait until the processes of a root that is gone are gone too, or the
    deadline passed, looking for processes they start meanwhile.

    Args:
        tree: The root's tree (walked down from its members now).
        deadline: When to stop waiting (`time.monotonic`).
        progress: Called with (processes gone, processes in all) now and then.
    """
    looked = 0.0
    while (remaining := deadline - time.monotonic()) > 0:
        if not tree.wait_gone(min(remaining, LOOK_EVERY)):
            break
        if time.monotonic() - looked >= LOOK_EVERY:
            looked = time.monotonic()
            tree.roots = [m.pid for m in tree.alive()]
            tree.refresh()
            if progress is not None:
                total = len(tree.members) + 1
                progress(total - len(tree.alive()), total)


def _seen_ending(tree: Tree, entries: list[ReportEntry]) -> list[ReportEntry]:
    """``entries``, with ``unchecked`` for each process still running: one
    that the admin did not see end is never reported ``stopped``.  A
    companion still running is left out (it ends on its own once its owner
    is gone, as `_tree.OwnDescendants.finish` leaves it out too).

    Args:
        tree: The tree the entries are of.
        entries: `Tree.entries` of it.

    Returns:
        The entries to report.
    """
    running = {m.pid: m.companion for m in tree.alive()}
    out = []
    for e in entries:
        if e.pid not in running:
            out.append(e)
        elif not running[e.pid]:
            out.append(e.replace(outcome=Outcome.UNCHECKED, seconds=None))
    return out


def _the_root_holds_its_channel(entry: _registry.Entry) -> bool:
    """Whether the process at the entry's pid is the one that answered on the
    entry's endpoint, and so may be signalled if it outlives its deadline.

    The handshake proves only that whoever listens there holds the
    credential, which the entry itself carries: a forged entry brings its own
    credential and its own fake root.  Escalation would then signal the
    entry's pid, a process of the forger's choosing.  So a pid that does not
    hold the endpoint is refused before anything is sent; one that cannot be
    checked (its open files are not ours to read, or the system's connection
    table does not name listeners) is sent the stop, which is harmless, but
    never signalled.

    Raises:
        RegistryError: the pid does not hold the endpoint.
    """
    holds = holds_endpoint(entry.pid, entry.endpoint)
    if holds is False:
        raise RegistryError(
            f"refusing to stop {entry.name!r}: pid {entry.pid} does not hold the channel its registry entry names"
            " (a forged or stale entry?); nothing was sent or signalled"
        )
    return holds is True


def _handshake(sock: _zmq.Socket, monitor: _zmq.Socket, channel: Channel) -> None:
    """Knock, then answer the root until the channel is established.

    The knock waits (in the poll, like everything else here) until the
    connection can take it: with a wrong credential the transport's
    handshake never completes, and a blocking send would wait forever where
    the monitor reports the refusal.  A connection that looked writable may
    be dropped before the send (the transport refused it meanwhile): the
    knock is tried again a moment later.
    """
    end = time.monotonic() + HANDSHAKE_TIMEOUT
    poller = _zmq.Poller()
    poller.register(sock, _zmq.POLLIN | _zmq.POLLOUT)
    poller.register(monitor, _zmq.POLLIN)
    knocked = False
    while not channel.established:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise ChannelError("the tree's root did not answer; it may be exiting or hung")
        ready = dict(poller.poll(int(remaining * 1000) + 1))
        if monitor in ready:
            if _transport.monitor_event(monitor.recv_multipart()) & _FAILED:
                raise AuthenticationError("the tree's root refused the admin credential (authentication refused)")
        if not knocked and ready.get(sock, 0) & _zmq.POLLOUT:
            try:
                sock.send(knock(), _zmq.NOBLOCK)
                knocked = True
                poller.modify(sock, _zmq.POLLIN)
            except _zmq.Again:
                monitor.poll(KNOCK_RETRY_MS)  # not a spin: the monitor may report the refusal meanwhile
        if ready.get(sock, 0) & _zmq.POLLIN:
            try:
                _, reply = channel.receive(sock.recv())
            except ProtocolError as exc:
                raise AuthenticationError(f"the tree's root failed the handshake: {exc}") from None
            if reply is not None:
                sock.send(reply)


def _wait(
    sock: _zmq.Socket,
    channel: Channel,
    root: psutil.Process,
    tree: Tree,
    deadline: float,
    progress: Callable[[int, int], None] | None,
) -> list[ReportEntry]:
    """Take reports until the root is gone or the deadline passed.

    The root's exit is seen the moment it happens where a pidfd can say it
    (Linux), else within `LOOK_EVERY`; the tree is looked at again every
    `LOOK_EVERY` (processes started since, the progress line).
    """
    reported: list[ReportEntry] = []
    poller = _zmq.Poller()
    poller.register(sock, _zmq.POLLIN)
    gone_fd = _platform.exit_fd(root.pid)
    if gone_fd is not None:
        poller.register(gone_fd, _zmq.POLLIN)
    try:
        looked = 0.0
        while (remaining := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(int(min(remaining, LOOK_EVERY) * 1000) + 1))
            while sock.poll(0):  # every report that came, also the last ones before the root's exit
                try:
                    event, _ = channel.receive(sock.recv())
                except ProtocolError:
                    continue
                if isinstance(event, Report):
                    reported += [ReportEntry.from_dict(e) for e in event.entries]
                    sock.send(channel.send(Ack()))
            if gone_fd in ready or not is_running(root) or _our_init_is_done(root, reported):
                break
            if time.monotonic() - looked >= LOOK_EVERY:
                looked = time.monotonic()
                tree.refresh()
                if progress is not None:
                    total = len(tree.members) + 1
                    progress(total - len(tree.alive()) - 1, total)
    finally:
        if gone_fd is not None:
            os.close(gone_fd)
    return reported


def _our_init_is_done(root: psutil.Process, reported: list[ReportEntry]) -> bool:
    """Whether the root is the init (pid 1) of our own PID namespace (we run
    inside its container) and has sent its own exit status, its last word.

    Its exit would kill us with every process of the namespace, before we
    could print the report: it waits for us to leave instead (see
    ``shutdownbus run``), so we are done.
    """
    return root.pid == 1 and any(e.pid == root.pid for e in reported)


#: How much longer the admin waits to see killed processes end, before it
#: reports them ``unchecked`` (SIGKILL cannot be ignored, but a process in an
#: uninterruptible wait outlives it; see `_see_the_killed_end`).
KILLED_WAIT = 2.0

#: How often the admin looks at the tree while it waits.
LOOK_EVERY = 0.25


class _RootHead:
    """The registered root, past the deadline (the admin is not its parent)."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.escalated: Outcome | None = None

    def signal(self, outcome: Outcome) -> None:
        if send(self.root, outcome):
            self.escalated = outcome

    def gone(self) -> bool:
        return not is_running(self.root)
