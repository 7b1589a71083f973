"""The parent side: `spawn` and `Child`, a `subprocess.Popen` on the bus.

Stopping a child is `_stop`'s business; a `Child` asks it.  This module
also wires this process's place on the bus (`_member`) to the stopping of
its children (`_stop`), which know nothing of each other: it hands `_stop`
the `_member.Relay`, and installs `_stop`'s functions as `_member`'s hooks.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import subprocess
import threading
import time
from collections.abc import Collection, Sequence
from types import TracebackType

from . import _cpython, _environment, _guard, _log, _member, _platform, _processes, _remains, _stop
from ._deadlines import DEFAULT_STOP_TIMEOUT, MAX_BUDGET
from ._errors import ChildExited
from ._names import describe
from ._policy import StopPolicy

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._progress import StopProgress
    from ._report import StopReport

_subreaper_done = False
# The first spawn's duties, done once whatever the threads; reentrant: a
# signal handler may spawn while they wait for the guard's shell.
_first_spawn = threading.RLock()


def _forget_after_fork() -> None:
    # The subreaper attribute is not inherited across fork (nor is a guard).
    global _subreaper_done, _first_spawn
    _subreaper_done = False
    _first_spawn = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# Popen[Any] would need typing at run time, which a spawning member does without (some 3 ms).
class Child(subprocess.Popen):  # type: ignore[type-arg]
    """A child process started by `spawn`, on this process's control channel.

    Everything `subprocess.Popen` offers works unchanged.  As a context
    manager, its exit stops the child's tree (`stop`) and waits for it.

    Attributes:
        name: The name used in stop reports (the child's own, once it joined).
        stop_timeout: The default timeout of `stop`.
        stop_policy: Whether it joins, and how it is asked to go if it does not
            (`spawn`'s ``joins``, ``stop_signal`` and ``stop_as_group``).
        stop_order: When a stop of several children reaches it: the lower,
            the earlier (`spawn`'s ``stop_order``).
        clean_exits: Exit statuses (128+N for a death by signal N) that count
            as ``stopped`` when the child exits with them after a stop that
            needed no escalation (`spawn`'s ``clean_exits``).
    """

    # Our stop reaches a Child too, so a `Popen.wait` that our own stop
    # interrupts keeps CPython's short wait for it (see `_member`).
    _shutdownbus_hears_stops = True
    # Set (by `_stop`, holding Popen's waitpid lock) once the child said
    # farewell to a stop that this process passes on: its zombie is the
    # stop's top's to reap, for the status it reports, so `poll`, `wait`,
    # CPython's own waits and the garbage collector here look at its exit
    # without reaping it.
    _exit_left_to_the_top = False

    def __init__(
        self,
        args: Any,
        *,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        name: str | None = None,
        stop_policy: StopPolicy | None = None,
        clean_exits: Collection[int] = (),
        stop_order: int = 0,
        **popen_kwargs: Any,
    ) -> None:
        if not (math.isfinite(stop_timeout) and 0 < stop_timeout <= MAX_BUDGET):
            raise ValueError(f"stop_timeout must be a number of seconds in (0, {MAX_BUDGET:g}]")
        self.stop_policy = stop_policy or StopPolicy()
        self.clean_exits = frozenset(clean_exits)
        if type(stop_order) is not int:
            raise ValueError(f"stop_order must be an integer (the lower, the sooner), not {stop_order!r}")
        self.stop_order = stop_order
        with _member.deferred_stop():
            self._start(args, stop_timeout, name, popen_kwargs)

    def _start(self, args: Any, stop_timeout: float, name: str | None, popen_kwargs: dict[str, Any]) -> None:
        global _subreaper_done
        bus = _member.get_bus()
        # A Ctrl-C must reach this process as surely as its children (a no-op
        # after the first time, and off the main thread).
        _member.watch_caught_signals_of_a_parent()
        first = False
        if not _subreaper_done:
            with _first_spawn:  # two threads' first spawns: one does this, the other waits for it
                first = not _subreaper_done
                if first:
                    # Before we become a subreaper, so that the guard is not our child.
                    _guard.start_if_unwatched()  # Linux: ends our children's remains if we are killed
                    # Before the first child starts, so nothing it starts can escape.
                    _platform.make_child_subreaper()
                    _subreaper_done = True
        link = bus.open_link()
        link.stop_order = self.stop_order
        env = popen_kwargs.pop("env", None)
        env = dict(os.environ if env is None else env)
        env[_environment.ENV_ENDPOINT] = link.endpoint
        env[_environment.ENV_SECRET] = link.keys.encoded_secret()
        env[_environment.ENV_STOP_TIMEOUT] = repr(float(stop_timeout))
        env.pop(_environment.ENV_FAREWELLS, None)
        env.pop(_environment.ENV_BELOW, None)  # it carries its own endpoint
        if _platform.orphans_stay_in_the_tree():
            env[_environment.ENV_FAREWELLS] = link.endpoint  # we take its farewell (`_stop._reap`)
        # Set before Popen starts the child, so that stop() and repr work even
        # if the child dies at once.
        self._link = link
        self.stop_timeout = float(stop_timeout)
        self._given_name = name
        policy = self.stop_policy
        # Linux: a child that may not join does not outlive us (its polite
        # request when we die; a member clears it when it joins, and stops on
        # 'parent-lost').  A declared member needs none of it, and keeps
        # CPython's fast start (vfork: see docs/lifecycle.md).
        popen_kwargs["preexec_fn"] = _platform.child_preparation(
            None if policy.joins else policy.request, own_group=policy.group, then=popen_kwargs.get("preexec_fn")
        )
        if flags := _platform.creation_flags(policy.request):
            popen_kwargs["creationflags"] = popen_kwargs.get("creationflags", 0) | flags
        self._job: _platform.ChildJob | None = None
        # Windows: created suspended, so that it is in its job before it runs.
        suspended = _platform.suspended_creation_flag()
        asked_suspended = bool(popen_kwargs.get("creationflags", 0) & suspended)
        if suspended:
            popen_kwargs["creationflags"] = popen_kwargs.get("creationflags", 0) | suspended
        try:
            # From a thread that lives as long as this process: the kernel's
            # parent-death signal follows the thread that started the child.
            start = functools.partial(subprocess.Popen.__init__, self, args, env=env, **popen_kwargs)
            _platform.in_a_lasting_thread(start)
            del start  # holds the environment, and so the secret
        except BaseException:
            bus.close_link(link)
            raise
        finally:
            del env  # holds the secret; drop it as soon as possible
        if not policy.joins:
            _guard.tell(self.pid)  # the kernel asks it to go at our death: the guard does not ask again
        if suspended:
            self._contain(resume=not asked_suspended)  # Windows only
        if policy.request == _platform.CTRL_BREAK:
            # Windows: its process group no longer gets the console's Ctrl-C; we pass ours on.
            _platform.install_ctrl_c_forwarder(_ctrl_break_groups, _not_passed_on)
        _stop.track(self, link, _member.RELAY)
        _remains.watch(self, bus)  # Linux: if it is killed, what it leaves behind is ended
        if first:
            # psutil (some 15 ms to import) is needed once a stop comes: load
            # it now, while the child starts, not on the stop's path, and not
            # on a thread of its own, which could still be importing when the
            # exit path runs (see `_member._at_exit`).
            _processes.load()

    def _contain(self, resume: bool) -> None:
        """Windows: put the child, created suspended, into a Job Object of its
        own, then let it run (see `_platform.contain`).  Once it joins, it
        holds the job too (`_share_job`)."""
        handle = int(vars(self)["_handle"])
        try:
            self._job = _platform.contain(handle, self.pid, resume=False)
        except OSError as e:
            _log.warning("shutdownbus: pid %d is in no job of its own (%s); its tree is walked instead", self.pid, e)
        else:
            self._link.on_joined = self._share_job  # before it runs: it may join at once
        if not resume:
            return
        try:
            _platform.resume_process(handle, self.pid)
        except OSError:
            super().kill()
            super().wait()
            _member.get_bus().close_link(self._link)
            raise

    def _share_job(self) -> None:
        """Windows, on the bus thread, once the child joined: give the member its
        own handle to the job, so that our death lets it stop gracefully
        (``parent-lost``) before the job ends what is left of its subtree."""
        job, member = self._job, self._link.member_pid
        if job is not None and member is not None:
            try:
                job.share_with(member)
            except OSError:
                pass  # then our death ends it at once, as a non-member's

    @property
    def job(self) -> _platform.ChildJob | None:
        """Windows: the child's Job Object (None if it could not be made).
        Elsewhere: None."""
        return self._job

    # -- identity --

    @property
    def name(self) -> str:
        """The child's name: given to `spawn`, else its own (once joined), else
        what ``ps`` users recognise its command by (the script of ``python
        script.py``, the module of ``-m``, else the program)."""
        if self._given_name:
            return self._given_name
        if self._link.member_name:
            return self._link.member_name
        args = self.args
        if isinstance(args, (str, bytes)):  # a command line: name its program
            argv = os.fsdecode(args).split() or [os.fsdecode(args)]
        elif isinstance(args, os.PathLike):
            argv = [os.fsdecode(args)]
        else:
            argv = [os.fsdecode(a) for a in args]
        return describe(argv, os.path.basename(argv[0]) if argv else "?")[0]

    @property
    def joined(self) -> bool:
        """Whether the child has joined the bus (completed the handshake)."""
        return self._link.joined.is_set()

    @property
    def member_pid(self) -> int | None:
        """The pid of the process that joined on this child's channel (the child, or a
        descendant that a wrapper such as ``sh -c`` started), once joined."""
        return self._link.member_pid

    def __repr__(self) -> str:
        return f"<Child pid={self.pid} name={self.name!r} joined={self.joined} returncode={self.returncode}>"

    # -- readiness --

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the child calls `shutdownbus.ready()`.

        Args:
            timeout: Seconds to wait at most; None waits for ever.

        Raises:
            ChildExited: the child exited first (with its return code, and the
                tail of its stderr when it was captured with ``stderr=PIPE``).
            TimeoutError: the child was not ready within ``timeout``.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.05 if end is None else max(0.0, min(0.05, end - time.monotonic()))
            if self._link.ready.wait(step):
                return
            if self.poll() is not None:
                if self._link.ready.is_set():
                    return
                tail = self._stderr_tail()
                msg = f"child {self.name!r} (pid {self.pid}) exited with code {self.returncode} before it was ready"
                if tail:
                    msg += "; the end of its stderr:\n" + tail
                raise ChildExited(msg, pid=self.pid, name=self.name, returncode=self.returncode, stderr_tail=tail)
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(
                    f"child {self.name!r} (pid {self.pid}) did not call shutdownbus.ready() within {timeout:g} s"
                    + ("" if self.joined else "; it never joined the bus (does it call shutdownbus.join()?)")
                )

    def _stderr_tail(self, lines: int = 20) -> str | None:
        """The end of the captured stderr, read for at most a moment: a
        grandchild may hold the pipe open long after the child exited."""
        if self.stderr is None or self.stderr.closed:
            return None
        data = _platform.read_available(self.stderr.fileno(), seconds=0.5)
        text = data.decode(errors="replace")
        return "\n".join(text.rstrip().splitlines()[-lines:]) or None

    # -- stopping --

    def stop(
        self,
        reason: str = "stop",
        timeout: float | None = None,
        progress: Callable[[StopProgress], object] | None = None,
    ) -> StopReport:
        """Stop the child's whole tree and wait until every process of it is gone.

        Sends the authenticated stop; the child forwards it to its own children
        and runs its cleanup.  Past the deadline, the processes still running
        get the polite OS request, then are killed, deepest first.  A child
        that has not joined the bus gets the polite OS request after a short
        join grace.  Calling it again, or while another thread stops the same
        child, returns the same report.

        Linux, in a process that is itself stopping on its parent's stop: a
        member child that said farewell (only its interpreter's shutdown
        left) counts as stopped, with its exit status unknown here, and may
        still be finishing when this returns; the stop's top waits for it,
        reaps it and reports its status (docs/lifecycle.md, "Farewells").

        Args:
            reason: Why; reaches the child as `StopRequested.reason`.
            timeout: Seconds until escalation; None means `stop_timeout`.
            progress: Called about four times a second with a `StopProgress`
                (the processes still running, the slowest first, and the
                time left before escalation) while the tree is stopping, on
                the calling thread; for a harness that shows a long stop.
                Not called when this call joins a stop already under way.
                An exception it raises is logged and the stop goes on.

        Returns:
            What happened to each process of the tree.
        """
        seconds = self.stop_timeout if timeout is None else timeout
        return _stop.stop_children([self], reason, seconds, progress=progress)[0]

    def wait(self, timeout: float | None = None) -> int:
        """`Popen.wait`; while a stop is in progress, it also enforces the stop's deadline."""
        if timeout is None and self.returncode is None and self._link.stop_deadline is not None:
            self.stop()
        rc = super().wait(timeout)  # after a farewell, through `_try_wait`: nothing reaped
        _stop.release_if_done(self)
        return rc

    def poll(self) -> int | None:
        """`Popen.poll`; also frees the channel of a child that exited on its own."""
        if self._exit_left_to_the_top and self.returncode is None:
            self.returncode = _platform.exit_status_unreaped(self.pid)
            return self.returncode
        rc = super().poll()
        if rc is not None:
            _stop.release_if_done(self)
        return rc

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        # CPython's waits (its short one after a KeyboardInterrupt among them) call this.
        if self._exit_left_to_the_top:
            return _cpython.wait_without_reaping(self.pid, wait_flags)
        done: tuple[int, int] = super()._try_wait(wait_flags)  # type: ignore[misc]  # CPython's, not in typeshed
        return done

    def __del__(self) -> None:
        if self._exit_left_to_the_top:
            return  # not reaped here: see `_exit_left_to_the_top`
        super().__del__()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop(reason="stop")
        finally:
            if self._exit_left_to_the_top and self.returncode is None:
                # It said farewell: its exit is the stop's top's to wait for
                # (and to end by its deadline), not this block's.
                for stream in (self.stdout, self.stderr, self.stdin):
                    if stream is not None:
                        with contextlib.suppress(OSError):
                            stream.close()
            else:
                super().__exit__(exc_type, exc, tb)


def _ctrl_break_groups() -> list[int]:
    """Windows: our children still running that lead a process group of their
    own (stop policy ``CTRL_BREAK``), which the console's Ctrl-C does not reach."""
    return [
        c.pid for c in _stop.live_children() if c.stop_policy.request == _platform.CTRL_BREAK and c.returncode is None
    ]


def _not_passed_on(failures: dict[int, OSError]) -> None:
    for pid, error in failures.items():
        _log.warning("shutdownbus: could not pass Ctrl-C on to pid %d as CTRL_BREAK (%s)", pid, error)


def spawn(
    args: str | bytes | os.PathLike[str] | Sequence[str | bytes | os.PathLike[str]],
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ready_timeout: float | None = None,
    name: str | None = None,
    joins: bool | None = None,
    stop_signal: str | int | None = None,
    stop_as_group: bool = False,
    clean_exits: Collection[int] = (),
    stop_order: int = 0,
    **popen_kwargs: Any,
) -> Child:
    """Start a child process on this process's control channel.

    The child joins with `shutdownbus.join()`; a child that does not (nginx,
    a Node server, a shell script, gunicorn) is stopped with its polite OS
    request instead, which ``joins``, ``stop_signal`` and ``stop_as_group``
    say.  Children stay in this process's process group and console, so
    Ctrl-C reaches them natively (but for ``stop_as_group``, and
    ``stop_signal='CTRL_BREAK'`` on Windows, which need a group of their own).

    Per OS, for a child that does not join:

    * Linux: it gets its polite request if this process dies (the kernel's
      parent-death signal; a member clears it when it joins, and stops
      itself on the loss of its parent instead).
    * POSIX: its polite request is a signal: SIGTERM, or ``stop_signal``
      (nginx and unicorn stop gracefully on ``QUIT``, uWSGI on ``INT``).
    * Windows: ``TERMINATE`` (TerminateProcess: no cleanup), or
      ``CTRL_BREAK`` (the child is started in a process group of its own and
      gets the console's Ctrl-Break, which Python turns into ``SIGBREAK``).
    * macOS: nothing ends it if this process is killed (docs/lifecycle.md).

    Args:
        args: As for `subprocess.Popen`.
        stop_timeout: Default seconds `Child.stop` gives the tree before escalating.
        ready_timeout: If set, wait this long for the child's `ready()`; on
            failure the child's tree is stopped and the error raised.
        name: The name used for the child in stop reports.
        joins: True: it joins the bus; None (default): it may, and gets 1 s
            after its spawn (3 s on Windows) to do so before a stop uses its
            polite request; False: it never joins, and its polite request is
            sent the moment a stop starts.
        stop_signal: Its polite request, by name or number (``"QUIT"``,
            ``"SIGINT"``, ``15``; Windows: ``"CTRL_BREAK"`` or ``"TERMINATE"``).
            Naming one declares that it does not join.
        stop_as_group: Send the polite request to the child's whole process
            group (POSIX; the child leads a group of its own, so the
            terminal's Ctrl-C no longer reaches it directly: its parent's stop
            does).  Declares that it does not join.
        clean_exits: Exit statuses that mean "stopped as asked" for this
            child, as a shell writes them (143 for a death by SIGTERM, or a
            JVM's own ``exit(143)``): after a stop that needed no
            escalation, the report counts them ``stopped``, not ``failed``.
        stop_order: When a stop of several of this process's children reaches
            this one (its own stop, its exit, the test harness's teardown):
            the children with the lowest order first, then, once they are all
            gone, the next, each group within an equal share of the time
            (a web server 0, its queue workers 1, a database proxy 2).
            Children of one order are stopped together; all are 0 by default.
        **popen_kwargs: Any `subprocess.Popen` keyword argument.

    Returns:
        The running child.

    Raises:
        ValueError: ``stop_signal`` names no request of this OS, the policy
            contradicts itself (a stop signal for a child that joins), or
            ``stop_order`` is not an integer.
        ChannelError: the control channel could not be set up.
        ChildExited: with ``ready_timeout``, the child exited before it was ready.
        TimeoutError: with ``ready_timeout``, the child was not ready in time.
        OSError: as `subprocess.Popen` raises it (program not found, ...).
    """
    policy = StopPolicy.declare(joins, stop_signal, stop_as_group)
    child = Child(
        args,
        stop_timeout=stop_timeout,
        name=name,
        stop_policy=policy,
        clean_exits=clean_exits,
        stop_order=stop_order,
        **popen_kwargs,
    )
    if ready_timeout is not None:
        try:
            child.wait_ready(ready_timeout)
        except BaseException:
            child.stop(reason="not-ready")
            raise
    return child


def _at_exit(reason: str, deadline: float | None) -> None:
    _stop.at_exit(reason, deadline)
    _remains.at_exit(deadline)


# From now on (the first spawn loads this module), our own stop and our exit
# stop our children too.
_member.set_children_hooks(_stop.stop_all, _at_exit, _stop.unreaped_pids)
_stop.set_remains_hook(_remains.claim)
