"""This process's place on the bus: joining, stopping, and the exit path.

Rules of this module:

* One `_State` per process.  Its fields are written under its lock; a
  reader that needs one field only (the bus, the upstream, the stop's
  reason) may read it without the lock, once, into a local: each such field
  is a reference replaced whole, never changed in place, and the stop's
  reason is set once.  The bus thread reports stops here; the main thread
  learns of them through `StopRequested`.
* A stop is handled once: a second stop is ignored, and a stop that arrives
  while the main thread is already handling a KeyboardInterrupt (Ctrl-C) is
  forwarded to the children but raises nothing, so no second cleanup starts.
* While a stop from the parent runs, each child's report is sent up as soon
  as that child is stopped, so the parent learns what happened even if this
  process is killed later.  The exit path (an atexit hook) stops the children
  still running, sweeps the other descendants, sends what is left (if
  anything), says farewell to a parent that spawned it (`_says_farewell`),
  waits for the parent's acknowledgements (bounded), and tears the bus down.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from . import _cpython, _environment, _log, _platform, _stop_log, _transport, _zmq
from ._bus import Bus, Upstream
from ._deadlines import DEFAULT_STOP_TIMEOUT, ESCALATION_MARGIN, children_deadline, stop_timeout_from
from ._errors import ChannelError, ShutdownBusError
from ._outcome import Outcome
from ._protocol import Ready, Report

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any

    from ._escalation import OwnDescendants
    from ._registry import Entry
    from ._report import StopReport


# A member's exit path imports nothing (see `_at_exit`): what it needs of the
# OS layer is loaded now.
_platform.load_all()

ACK_WAIT = 1.0  # longest the exit path waits for the parent to take the report


class StopRequested(KeyboardInterrupt, SystemExit):
    """Raised in the main thread when the parent asks this process to stop.

    It is a `KeyboardInterrupt`, so code written for Ctrl-C (``except
    KeyboardInterrupt:`` and ``finally:`` blocks) cleans up unchanged.  It is
    also a `SystemExit` with code 0, so a program that does not catch it exits
    with status 0 and no traceback, as a service that was asked to stop should.

    Attributes:
        reason: The reason the stop carried (``"stop"``, ``"parent-lost"``, ...).
    """

    def __init__(self, reason: str = "stop") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = None  # SystemExit's exit status: None means 0


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.bus: Bus | None = None
        self.upstream: Upstream | None = None
        self.name = ""
        self.stop_timeout = DEFAULT_STOP_TIMEOUT
        self.stop_reason: str | None = None
        self.stop_deadline: float | None = None
        self.children_deadline: float | None = None  # what our children get of it (`_deadlines.children_deadline`)
        self.stopped = threading.Event()
        self.callbacks: list[Callable[[str], None]] = []
        self.interrupt_main = False
        self.interruptible = False
        self.raised = False
        self.pending_ran = False  # the main thread ran _raise_pending since the stop came
        self.caught: _platform.CaughtSignals | None = None
        self.parent_watches = False  # watch_caught_signals_of_a_parent ran on the main thread
        self.exiting = False
        self.deferring = 0  # > 0 while the main thread must not be interrupted
        self.handlers = 0  # > 0 while the program handles stops itself (aio.stopped)
        self.exit_hook = False
        self.stop_received_at: float | None = None
        self.registered: Entry | None = None
        self.unregister: Callable[[str, int], None] | None = None
        self.fast_exit = True
        # `shutdownbus run`: a root with no work of its own hands its command
        # its whole deadline (see `_deadlines.children_deadline`).
        self.wrapper = False
        self.own_marker: str | None = None  # the endpoint this process started with
        self.parent_takes_farewells = False  # its spawner said so (`_environment.ENV_FAREWELLS`)
        # This process's descendants that cannot hear the bus, looked at when
        # our stop arrived (if some child was not on the bus; else at the
        # exit), and the thread that watches them go.
        self.own: OwnDescendants | None = None
        self.own_descendants: type[OwnDescendants] | None = None  # loaded with our stop, for the exit path
        self.own_watcher: threading.Thread | None = None
        self.own_watch_done = threading.Event()
        # The pids our children's stop reports listed: the exit path's sweep leaves them out (a bus
        # child that just exited is a zombie whose environment, the mark of a bus child, cannot be read).
        self.reported: set[int] = set()


_state = _State()


def _start_afresh_after_fork() -> None:
    """A forked child has neither the bus thread nor usable sockets, and is
    not a member: its parent's channel belongs to its parent."""
    global _state
    if _state.caught is not None:
        _state.caught.forget_after_fork()
    hooked = _state.exit_hook
    _state = _State()
    _state.exit_hook = hooked  # the atexit hook was inherited with the rest


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh_after_fork)


def get_bus() -> Bus:
    """This process's bus, started on first use.

    Raises:
        ChannelError: it cannot be started (no file descriptor left, say).
    """
    with _state.lock:
        if _state.bus is None:
            try:
                _state.bus = Bus(on_stop=_on_stop, on_parent_lost=_on_parent_lost)
            except (_zmq.ZMQError, OSError) as exc:
                why = f"cannot start shutdownbus's thread ({exc}); is the process out of file descriptors?"
                raise ChannelError(why) from None
        if not _state.exit_hook:
            _state.exit_hook = True
            atexit.register(_at_exit)
        return _state.bus


def _default_name() -> str:
    arg0 = sys.argv[0] if sys.argv else ""
    if arg0 in ("", "-c", "-m"):
        return os.path.basename(sys.executable) or "python"
    return os.path.basename(arg0)


def join(
    *, name: str | None = None, interrupt_main: bool = True, timeout: float = 30.0, fast_exit: bool = True
) -> bool:
    """Join the control channel of the parent that spawned this process.

    Call it early in a program started by `shutdownbus.spawn`.  It removes the
    per-spawn ``SHUTDOWNBUS_*`` variables from `os.environ` (user settings such
    as ``SHUTDOWNBUS_TRANSPORT`` stay), so processes started later by other
    means never inherit them.  It sets ``SHUTDOWNBUS_BELOW`` to the endpoint
    it joined (not a secret): should this process be killed, its parent
    tells by it what this process started, and ends it.  Calling it again
    does nothing.

    Args:
        name: The name this process gives itself in stop reports
            (default: the basename of ``sys.argv[0]``).
        interrupt_main: Raise `StopRequested` in the main thread when a stop
            arrives (the default).  With False, the program learns of stops
            only through `on_stop`, `stop_requested` and `wait_for_stop`.
        timeout: Seconds to wait for the parent to complete the handshake.
        fast_exit: When this process exits because of a stop, spare the
            interpreter's final garbage collections the objects that exist
            at that point (`gc.freeze`); see docs/lifecycle.md.  With False,
            the exit after a stop collects reference cycles as usual.

    Returns:
        True once joined; False if this process was not started by `spawn`.

    Raises:
        ChannelError: started by `spawn`, but the channel could not be joined
            (the parent is gone, or the variables were altered).
    """
    with _state.lock:
        if _state.upstream is not None:
            return True
        endpoint = os.environ.pop(_environment.ENV_ENDPOINT, None)
        encoded = os.environ.pop(_environment.ENV_SECRET, None)
        stop_timeout = os.environ.pop(_environment.ENV_STOP_TIMEOUT, None)
        farewells = os.environ.pop(_environment.ENV_FAREWELLS, None)
        if endpoint is None and encoded is None:
            return False
        if not endpoint or not encoded:
            raise ChannelError(
                "only part of the shutdownbus variables are set; start this process with shutdownbus.spawn()"
            )
        keys = _transport.ChannelKeys.from_encoded(encoded)
        os.environ[_environment.ENV_BELOW] = endpoint  # what we start by other means is told by it
        _state.own_marker = endpoint
        _state.parent_takes_farewells = farewells == endpoint
        _state.stop_timeout = stop_timeout_from(stop_timeout)
        _state.name = (name or _default_name())[:256]
        _state.interrupt_main = interrupt_main
        _state.fast_exit = fast_exit
        if interrupt_main:
            _install_main_thread_waker()
        bus = get_bus()
        up = bus.open_upstream(keys, endpoint, os.getpid(), _state.name)
        _state.upstream = up
        # While the handshake runs: keep descendants that double-fork in our
        # tree (Linux), so that our stop can reach them.
        subreaper = threading.Event()

        def become_subreaper() -> None:
            _platform.make_child_subreaper()
            subreaper.set()

        bus.call(become_subreaper)
    end = time.monotonic() + timeout
    while not up.joined.wait(0.05):
        if up.lost.is_set() or up.failure or time.monotonic() > end:
            why = up.failure or f"no answer from the parent within {timeout:g} s"
            with _state.lock:
                _state.upstream = None
            raise ChannelError(f"could not join the parent's shutdownbus channel: {why}")
    subreaper.wait(max(0.0, end - time.monotonic()))
    # Joined: the loss of our parent is now a stop ('parent-lost'), with our
    # cleanup, not the parent-death signal spawn set (Linux).  Only now: a
    # process that failed to join keeps it, and dies with its parent.  The
    # setting is the main thread's (the one that exec'd), which only it can clear.
    if threading.current_thread() is threading.main_thread():
        _platform.clear_parent_death_signal()
    elif _platform.LINUX:
        _log.warning(
            "shutdownbus: join() ran outside the main thread, which alone can clear the parent-death signal"
            " set at spawn: if the parent dies, this process gets its polite request instead of stopping with"
            " 'parent-lost'; call join() from the main thread"
        )
    return True



def register(name: str | None = None, *, fast_exit: bool = True) -> str:
    """Make this process the root of a named tree that an operator can stop.

    ``shutdownbus send-stop NAME`` (or the pid) then stops this process and its
    whole tree, exactly as a parent's stop would: `StopRequested` in the main
    thread, the stop forwarded to every child, the report sent to the admin.
    The entry is removed when this process exits; an entry left by a process
    that died is pruned by the next ``list`` or ``send-stop``.

    Args:
        name: The name to register (default: the basename of ``sys.argv[0]``).
        fast_exit: As for `join`.

    Returns:
        The registered name.

    Raises:
        RegistryError: the name is invalid or taken by a live root, or the
            registry directory is unsafe or unusable.
        ShutdownBusError: this process is a member of its parent's tree (stop
            it through its parent) or is registered already.
    """
    return _register(name, fast_exit=fast_exit, wrapper=False)


def _register(
    name: str | None, *, fast_exit: bool, wrapper: bool, stop_timeout: float = DEFAULT_STOP_TIMEOUT, policy: str = ""
) -> str:
    """`register`; with ``wrapper``, for ``shutdownbus run``, whose command gets its whole deadline
    (whoever stops it gives it `ESCALATION_MARGIN` on top to escalate the command, see `_admin`)."""
    from . import _registry

    name = _registry.check_name(name or _default_name())
    with _state.lock:
        if _state.upstream is not None:
            what = "is registered already" if _state.registered else "is a member of its parent's tree"
            raise ShutdownBusError(f"this process {what}; it cannot be registered as a root")
        from . import _processes

        keys = _transport.ChannelKeys.generate()
        _state.name = name
        _state.fast_exit = fast_exit
        _state.wrapper = wrapper
        # A wrapper's main thread only waits for its command, which the stop
        # reaches through the bus: nothing to interrupt there.
        _state.interrupt_main = not wrapper
        if not wrapper:
            _install_main_thread_waker()
        bus = get_bus()
        up, endpoint = bus.open_admin(keys, os.getpid(), name)
        entry = _registry.Entry(
            name=name,
            pid=os.getpid(),
            started=_processes.started(),
            endpoint=endpoint,
            secret=keys.encoded_secret(),
            argv=tuple(getattr(sys, "orig_argv", sys.argv)),
            pid_namespace=_platform.pid_namespace(),
            stop_timeout=stop_timeout,
            policy=policy,
        )
        _registry.write(entry)
        _state.upstream = up
        _state.registered = entry
        # For the exit path, which imports nothing.
        _state.unregister = functools.partial(_registry.remove, folder=_registry.directory())
    return name


def joined() -> bool:
    """Whether this process has joined its parent's channel."""
    up = _state.upstream
    return up is not None and not up.admin and up.joined.is_set()


def ready() -> bool:
    """Tell the parent that this process is ready (see `Child.wait_ready`).

    Returns:
        True if the message was handed to the bus; False when this process is
        not a member (so a program can call it unconditionally).
    """
    bus, up = _state.bus, _state.upstream
    if bus is None or up is None or up.admin or not up.joined.is_set():
        return False
    bus.send_upstream(Ready())
    return True


def on_stop(callback: Callable[[str], None]) -> None:
    """Register ``callback(reason)`` to run when a stop arrives.

    It runs on the bus thread, after the stop was forwarded to the children,
    before `wait_for_stop` returns and `StopRequested` is raised in the main
    thread; keep it short
    (set an event, schedule work).  An exception in it is logged.  If a stop
    has already arrived, it runs at once, in the calling thread.

    Args:
        callback: Called with the stop's reason.
    """
    with _state.lock:
        reason = _state.stop_reason
        if reason is None:
            _state.callbacks.append(callback)
            return
    _run_callback(callback, reason)


def stop_requested() -> bool:
    """Whether a stop (from the parent, or the loss of the parent) has arrived.

    True from the moment it arrives, while it is still being forwarded and
    its ``on_stop`` callbacks have yet to run (`wait_for_stop` waits for
    those): a child that exits because of it cannot be seen gone before
    this is true.
    """
    return _state.stop_reason is not None


def wait_for_stop(timeout: float | None = None) -> bool:
    """Block until a stop arrives.

    Args:
        timeout: Seconds to wait at most; None waits for ever.

    Returns:
        True if a stop arrived, False on timeout.
    """
    return _state.stopped.wait(timeout)


def stop_reason() -> str | None:
    """The reason of the stop that arrived, or None."""
    return _state.stop_reason


def report_own_exit(returncode: int) -> bool:
    """Tell whoever stopped this process the status it is about to exit with.

    Only its parent could learn it otherwise; a registered root's admin is
    not its parent (``shutdownbus run`` reports its command's status so).

    Returns:
        True if it was sent (a stop came from upstream, which is still there).
    """
    entry = {"pid": os.getpid(), "name": _state.name, "outcome": Outcome.STOPPED, "returncode": returncode,
             "seconds": None, "member": True}
    return _send_up((entry,))


def record_reports(reports: list[StopReport]) -> None:
    """Send the stop reports of children up at once, if our parent asked us to stop."""
    entries = tuple(e.to_wire() for report in reports for e in report.entries)
    _state.reported.update(e["pid"] for e in entries)
    _send_up(entries)


def _send_up(entries: tuple[dict[str, Any], ...]) -> bool:
    """The one way reports go up: ``entries`` (as the wire carries them) to
    whoever stopped us, if a stop came from upstream and it is still there.

    Returns:
        Whether they were handed to the bus.
    """
    up, bus = _state.upstream, _state.bus
    if not entries or _state.stop_reason is None or up is None or bus is None:
        return False
    if not up.joined.is_set() or up.lost.is_set():
        return False
    bus.send_upstream(Report(entries))
    return True


def _says_farewell() -> bool:
    """Whether this process ends its stop with a farewell to its parent
    (`_protocol.Farewell`): where what outlives its parent stays in the tree,
    for the stop's top to wait for and reap (Linux); on a stop from the
    parent that spawned it (not an admin), which is still there to hear it
    and said, when it spawned us, that it takes farewells (a parent in
    another language, or of an older version, would not wait for what we
    leave finishing)."""
    up = _state.upstream
    return (
        _platform.orphans_stay_in_the_tree()
        and _state.parent_takes_farewells
        and _state.stop_reason is not None
        and up is not None
        and not up.admin
        and up.joined.is_set()
        and not up.lost.is_set()
    )


# -- bus thread -----------------------------------------------------------------


def _on_stop(reason: str, deadline: float) -> None:
    """Our own stop arrived (the bus thread), to be gone by ``deadline`` (`time.monotonic`).

    In this order: the stop goes to every child on the bus; a thread of its
    own enforces the children's deadlines; if this process has children,
    what the exit path will need is loaded (it imports nothing: see
    `_at_exit`) and, if some child is not on the bus, another thread watches
    the descendants that cannot hear the bus; ``on_stop`` callbacks run;
    `wait_for_stop` returns; the main thread is interrupted, unless the
    program handles stops itself.
    """
    with _state.lock:
        if _state.stop_reason is not None:
            return
        _state.stop_reason = reason
        _state.stop_received_at = now = time.monotonic()
        if _state.wrapper:
            # ``shutdownbus run`` hands its command the whole budget: its
            # stopper gives it ESCALATION_MARGIN on top, to escalate it (`_admin`).
            _state.stop_deadline, _state.children_deadline = deadline + ESCALATION_MARGIN, deadline
        else:
            _state.stop_deadline, _state.children_deadline = deadline, children_deadline(deadline, now)
        theirs = _state.children_deadline
        callbacks = list(_state.callbacks)
        _state.callbacks.clear()
        interrupting = _state.interrupt_main and not _state.exiting and not _state.handlers
    _stop_log.received(reason, deadline - now, _state.name)
    bus = _state.bus
    if bus is not None:
        bus.forward_stop(reason, theirs)
    _enforce_children_deadlines(reason, theirs)
    if _platform.has_children():
        # Loaded here, before the main thread can finish: psutil's import
        # (some 15 ms, once) runs exec(), see `_at_exit`.
        from . import _escalation, _processes

        _processes.load()
        _state.own_descendants = _escalation.OwnDescendants
        # A member whose children are all on the bus (a chain, a tree of
        # members) has no one else to watch while it cleans up: that thread
        # and its look at the children cost a few percent of a chain's stop.
        # What its cleanup starts is looked at on the exit path.
        if _has_own_children():
            _watch_own_descendants(_escalation.OwnDescendants)
    for cb in callbacks:
        _run_callback(cb, reason)
    _state.stopped.set()  # after the callbacks: whoever waits for the stop finds them done
    if interrupting:
        if _state.interruptible:
            _wake_for_the_stop()
            # The wake-up may land just before the main thread enters a
            # blocking call, and then waits with it (see CaughtSignals): again
            # a moment later, until the main thread took it.
            _nudge_main_thread(_wake_for_the_stop, lambda: _state.pending_ran, (0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0))
        else:
            _raise_from_afar()


#: What `_child` installs when it is first imported (by the first spawn):
#: until then this process has no children on the bus to stop.  Hooks, not
#: imports: this module knows nothing of `_stop`, which gets what it needs
#: of ours handed to it (`Relay`), so that calls run one way, as imports do.
#: ``stop(reason, deadline)`` stops every live child (deadline None: each
#: child's own stop timeout from now); ``at_exit(reason, deadline)`` does
#: that, then ends what is left of the trees of children that exited on
#: their own; ``pids()`` are the pids of the children it knows (spawned on
#: the bus, and not reaped yet).
_children_stopper: Callable[[str, float | None], object] | None = None
_children_at_exit: Callable[[str, float | None], object] | None = None
_children_pids: Callable[[], set[int]] | None = None


def set_children_hooks(
    stop: Callable[[str, float | None], object],
    at_exit: Callable[[str, float | None], object],
    pids: Callable[[], set[int]],
) -> None:
    """Install the functions that stop this process's children (called by `_child`)."""
    global _children_stopper, _children_at_exit, _children_pids
    _children_stopper, _children_at_exit, _children_pids = stop, at_exit, pids


def _has_own_children() -> bool:
    """Whether some child of this process was not spawned on the bus: one
    that `OwnDescendants` must look after.  Linux: the kernel's list of our
    children against the unreaped children that `_child` knows; elsewhere,
    or when the list cannot be read, True (so the caller looks closer)."""
    known = _children_pids
    if known is None or not _platform.KERNEL_LISTS_CHILDREN:
        return _platform.has_children()
    try:
        return not set(_platform.child_pids(os.getpid())) <= known()
    except OSError:
        return True


class Relay:
    """What stopping our children needs of this process's place on the bus.

    Handed to `_stop` (by `_child`, with each child it tracks), so that
    `_stop` never calls into this module: the bus, our own stop (if one
    came), where the children's reports go, and the way to hold our own
    stop back while a report is built.
    """

    __slots__ = ()

    def bus(self) -> Bus:
        """This process's bus (`get_bus`)."""
        return get_bus()

    def own_stop(self) -> tuple[str, float, float] | None:
        """Once our own stop arrived: its reason, our deadline and our children's."""
        with _state.lock:
            reason, ours, theirs = _state.stop_reason, _state.stop_deadline, _state.children_deadline
        return None if reason is None or ours is None or theirs is None else (reason, ours, theirs)

    def passes_farewells(self) -> bool:
        """Whether this process will say farewell to its parent (`_says_farewell`)."""
        return _says_farewell()

    def send_reports(self, reports: list[StopReport]) -> None:
        """Send children's reports up (`record_reports`)."""
        record_reports(reports)

    def deferred_stop(self) -> contextlib.AbstractContextManager[None]:
        """`deferred_stop`."""
        return deferred_stop()


#: The one `Relay` of this process.
RELAY = Relay()


def _enforce_children_deadlines(reason: str, deadline: float) -> None:
    """Finish the children's stops on a thread of their own.

    Their deadlines, escalation and reports must not depend on our main
    thread, which may be busy with its cleanup, stuck, or ignoring the stop.
    Whoever else waits for those children (``Child.wait``, ``Child.stop``,
    the exit path) joins the same stops.
    """
    stop = _children_stopper
    if stop is not None:
        args = (reason, deadline)  # also for children not reached by forwarding
        threading.Thread(target=stop, args=args, name="shutdownbus-stop", daemon=True).start()


def _watch_own_descendants(own_descendants: type[OwnDescendants]) -> None:
    """Look at our descendants that cannot hear the bus, and watch them go, on
    a thread of their own (so that each exit time is known), until the exit
    path takes over.

    They are the program's own business until it exits: its cleanup ends
    them as it would after Ctrl-C (``Pool.terminate()`` takes the pool's
    locks before it signals a worker; a signal from outside could kill a
    worker that holds one, and the pool would hang).  The one thing Ctrl-C
    does that the program's cleanup cannot, interrupting the tasks that a
    ``ProcessPoolExecutor``'s shutdown waits for, is done when the stop
    interrupts the main thread (`_raise_pending`).
    """

    def watch() -> None:
        _state.own = own = own_descendants(_state.own_marker)
        own.wait(_state.own_watch_done)

    # Started, then published, under the lock the exit path takes first: the
    # exit path either finds a started thread to join, or no thread at all
    # (found in a full suite: it once joined a thread not yet started).
    with _state.lock:
        if _state.exiting:
            return
        watcher = threading.Thread(target=watch, name="shutdownbus-own", daemon=True)
        watcher.start()
        _state.own_watcher = watcher


def _on_parent_lost() -> None:
    up = _state.upstream
    if up is None or not up.joined.is_set():
        return  # never joined: join() reports the failure
    if _state.stop_reason is not None:
        # Our stop is under way (a stop is handled once): nothing changes, and
        # a parent that took our farewell may well have exited before us.
        return
    _log.warning("shutdownbus: the parent is gone; stopping this process's tree (reason 'parent-lost')")
    _on_stop("parent-lost", time.monotonic() + _state.stop_timeout)


def _run_callback(cb: Callable[[str], None], reason: str) -> None:
    try:
        cb(reason)
    except Exception:
        _log.exception("shutdownbus: an on_stop callback failed")


# -- main thread ------------------------------------------------------------------


def _install_main_thread_waker() -> None:
    """Main thread, at join() or register(): the wake signal's handler, the
    descriptor of caught signals, and the quiet exit after a stop."""
    _state.interruptible = _platform.install_main_thread_waker(_raise_pending)
    _quiet_after_a_stop()
    if _state.interruptible:
        _watch_caught_signals()


def watch_caught_signals_of_a_parent() -> None:
    """Main thread, at a spawn: the wake signal's handler and the descriptor
    of caught signals, also in a process that did not join (a root).

    A Ctrl-C reaches the parent with its children, and the parent must take
    it too: caught by its main thread just before that thread blocks
    (``time.sleep``, a read, a wait), its handler would wait for the call to
    return, as in a member (see `_platform.CaughtSignals`).  Seen as a root
    that slept out its ``time.sleep(60)`` after Ctrl-C while its children
    had long cleaned up (issue 22, item 7).  The waker's handler raises only
    in a process that asked stops to interrupt it (`_stop_to_raise`).
    Elsewhere than POSIX: nothing (no `CaughtSignals` there).
    """
    if _state.parent_watches or _platform.WINDOWS or threading.current_thread() is not threading.main_thread():
        return
    _state.parent_watches = True  # once: `CaughtSignals.start` swaps the program's own descriptor for a moment
    if _platform.install_main_thread_waker(_raise_pending):
        _watch_caught_signals()


def _watch_caught_signals() -> None:
    """Main thread, once a waker is installed: have the bus thread nudge the
    main thread when a Python handler caught a signal (`_on_caught_signals`)."""
    if _state.caught is None:
        caught = _platform.CaughtSignals.start()
        if caught is not None:
            _state.caught = caught
            get_bus().watch(caught.fileno(), functools.partial(_on_caught_signals, caught))


def _wake_for_the_stop() -> None:
    """The bus thread (or a nudge): make the main thread run `_raise_pending`
    at once, if the stop is to be raised now.

    Not otherwise: on Windows a wake-up ends waits that then return as if
    they were done, unless the handler raises (see `_platform.wake_main_thread`).
    If the program has replaced the wake signal's handler since it joined,
    its handler must not run for a stop: the fallback raises it from afar.
    """
    with _state.lock:
        if _stop_to_raise(in_the_main_thread=False) is None:
            return
        # Under asyncio.run the stop cancels the main task: nothing is raised.
        raising = _cpython.asyncio_runner_handler() is None
        if _platform.wake_main_thread(raising=raising):
            return
    _raise_from_afar()


def _on_caught_signals(caught: _platform.CaughtSignals) -> None:
    """The bus thread: a Python handler caught a signal (Ctrl-C's SIGINT, say).

    If it came just before the main thread entered a blocking call, its
    handler waits for that call to return; a nudge a moment later makes the
    call fail with EINTR, and the handler runs.  The wake signal's own
    handler does nothing when no stop came, so a needless nudge is harmless.
    """
    if any(signum != _platform.wake_signal() for signum in caught.read()):
        _nudge_main_thread(_platform.wake_main_thread, lambda: False, (0.005, 0.05))


def _nudge_main_thread(wake: Callable[[], object], done: Callable[[], bool], delays: tuple[float, ...]) -> None:
    """Call ``wake`` after each of ``delays`` (a thread of its own, started
    from the bus thread, so it blocks every signal too), until ``done()`` or
    the process exits."""

    def nudge() -> None:
        for delay in delays:
            time.sleep(delay)
            if done() or _state.exiting:
                return
            wake()

    threading.Thread(target=nudge, name="shutdownbus-nudge", daemon=True).start()


def _stop_to_raise(*, in_the_main_thread: bool) -> str | None:
    """The reason of the stop to raise in the main thread now, or None if it
    must not be (called under `_state.lock`).

    The one set of guards, wherever the stop is raised from: not before a
    stop came, not twice, not while the process exits, not inside a
    `deferred_stop` block (which raises it when it ends), not in a process
    whose stops must not interrupt its main thread (``join(interrupt_main=False)``,
    ``run``: its waker runs for the nudges after caught signals); and not in the
    middle of a Ctrl-C's cleanup, which a second interruption would cut
    short: a KeyboardInterrupt being handled (seen from the main thread
    itself, or in its frames from another thread), or ``asyncio.run``
    handling one.
    """
    reason = _state.stop_reason
    if _state.raised or _state.exiting or _state.deferring or reason is None:
        return None
    if not _state.interrupt_main:
        return None  # the program handles stops itself; the waker ran for a caught signal's nudge
    if in_the_main_thread:
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return None
    elif _cpython.handling_keyboard_interrupt(threading.main_thread()):
        return None
    runner = _cpython.asyncio_runner_handler()
    return reason if runner is None or not _cpython.interrupts_seen(runner) else None


def _raise_pending() -> None:
    """Raise StopRequested here (the main thread) unless it must not be."""
    if _state.stop_reason is not None:
        _state.pending_ran = True
    with _state.lock:
        reason = _stop_to_raise(in_the_main_thread=True)
        if reason is None:
            return
        runner = _cpython.asyncio_runner_handler()
        _state.raised = True
    # As Ctrl-C would, interrupt the tasks of our process pools' workers
    # (only now: before the main thread is interrupted, a task's failure
    # would be the first thing the program saw).
    _cpython.terminate_process_pool_workers()
    if runner is not None:
        runner(signal.SIGINT, None)  # cancel the main task, as Ctrl-C does under asyncio.run
        return
    _cpython.skip_popen_sigint_wait(sys._getframe(1))
    raise StopRequested(reason)


def _quiet_after_a_stop() -> None:
    """Print no traceback for a KeyboardInterrupt that our stop raised and
    nobody caught.

    `StopRequested` is a SystemExit too, so uncaught it exits quietly; but
    under ``asyncio.run`` a stop cancels the main task, as Ctrl-C does, and
    ``asyncio.run`` then raises a plain KeyboardInterrupt, whose traceback
    (and the CancelledError's under it) would tell whoever reads the log that
    something went wrong.  The process still dies of SIGINT, as after Ctrl-C
    (the stop report counts that as ``stopped``).  A KeyboardInterrupt that no
    stop raised (Ctrl-C) is shown as always.  The program's own hook, if it
    set one before, is kept for everything else.
    """
    previous = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if _state.raised and issubclass(exc_type, KeyboardInterrupt):
            return
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


@contextlib.contextmanager
def handled_elsewhere() -> Iterator[None]:
    """While the block runs, a stop interrupts nobody: the program handles it."""
    with _state.lock:
        _state.handlers += 1
    try:
        yield
    finally:
        with _state.lock:
            _state.handlers -= 1


def _raise_from_afar() -> None:
    """The fallback of the wake signal: an asynchronous exception, scheduled
    from the bus thread with the same guards `_raise_pending` applies."""
    with _state.lock:
        found = _stop_to_raise(in_the_main_thread=False)
        if found is None:
            return
        _state.raised = True
    reason: str = found

    class _Stop(StopRequested):  # raised by class, with no arguments: carry the reason
        def __init__(self) -> None:
            super().__init__(reason)

    _Stop.__name__ = _Stop.__qualname__ = "StopRequested"
    _platform.raise_in_main_thread(_Stop)
    _cpython.terminate_process_pool_workers()


@contextlib.contextmanager
def deferred_stop() -> Iterator[None]:
    """Hold `StopRequested` back while the block runs (for example while a
    child is being started and registered, so that it cannot be lost); raise
    it at the end of the block if a stop arrived meanwhile."""
    main = threading.current_thread() is threading.main_thread()
    if main:
        with _state.lock:
            _state.deferring += 1
    try:
        yield
    finally:
        if main:
            with _state.lock:
                _state.deferring -= 1
            if _state.interrupt_main and _state.stop_reason is not None and sys.exc_info()[1] is None:
                _raise_pending()


def _at_exit() -> None:
    """Stop the children still running, report up, close the bus.

    It imports nothing: what it needs was loaded when our stop arrived, or
    by the first spawn.  An import here could run exec() (class creation by
    dataclasses and namedtuple does), and any exec() after an uncaught
    KeyboardInterrupt makes CPython forget it, so the process would exit with
    status 1 instead of dying of SIGINT (as asyncio.run does on a stop).
    `tests/test_structure.py` checks that this function and those it calls
    hold no import statement, and the tests of the exit path check that no
    module is loaded while it runs.
    """
    at_exit = _children_at_exit
    with _state.lock:
        _state.exiting = True
        bus, up = _state.bus, _state.upstream
    if bus is None:
        return
    try:
        reason = _state.stop_reason or "parent-exit"
        if at_exit is not None:
            at_exit(reason, _state.children_deadline)
        if _state.stop_deadline is None or _state.stop_received_at is None:
            return
        swept = []
        if _state.own_watcher is not None:
            _state.own_watch_done.set()
            _state.own_watcher.join()
        elif _state.own_descendants is not None and _has_own_children():
            _state.own = _state.own_descendants(_state.own_marker)  # started by the cleanup
        if _state.own is not None:
            swept = [e for e in _state.own.finish(_state.stop_received_at, _state.stop_deadline)
                     if e.pid not in _state.reported]  # each process once in one stop's reports (protocol 6.5)
        _stop_log.done(reason, _state.name, time.monotonic() - _state.stop_received_at)
        if up is not None and up.joined.is_set() and not up.lost.is_set():
            _send_up(tuple(e.to_wire() for e in swept))
            if _says_farewell() and _state.reported:
                # Only a process that stopped children of its own: a leaf's
                # parent sees its exit a few ms later, and a parent of many
                # leaves (a pool) waits for all of them anyway, so their
                # farewells would cost it a message and a wake-up each
                # (the 111-process tree of `make bench` was 8 % slower).
                # Behind the reports on the same channel, so the parent has
                # them first; it need not wait for our wait for its acks.
                bus.send_farewell()
            # The sockets close with linger 0 (a farewell's gets `FAREWELL_LINGER`
            # only to write it), dropping what the parent has not taken: wait
            # (bounded) until it acknowledged every report.  A leaf
            # sent none, and its parent learns its outcome from its exit.
            left = _state.stop_deadline - time.monotonic()
            up.acked.wait(min(ACK_WAIT, max(left, 0.1)))
    finally:
        if _state.registered is not None and _state.unregister is not None:
            _state.unregister(_state.registered.name, _state.registered.pid)
        bus.close()
        if _state.stop_reason is not None and _state.fast_exit:
            # Most of a stopped member's exit is the interpreter's last garbage
            # collections walking every object of pyzmq, msgpack and the rest
            # (5 ms of 9 for a leaf); the signal-stopped baseline has little to
            # walk.  Frozen objects are skipped by those collections: atexit
            # handlers, flushing and module teardown still run, but reference
            # cycles alive now are not collected, so their __del__ methods do
            # not run (CPython does not promise that they would at exit).
            gc.freeze()
