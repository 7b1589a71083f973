"""The guard of a spawner at the top of its tree (Linux).

A child of ours that is killed leaves its remains to us (`_remains`): they
are re-parented to us, a subreaper, and carry its markers.  A spawner with
no spawner of ours above it (pytest killed by a CI timeout, a script started
from a shell, ``run`` under systemd) has nobody to do that for it: its
children that may not join get their parent-death signal from the kernel,
but *their* children (a shell's jobs, a server's workers) are re-parented to
init and serve on.  The guard is a small process that outlives its spawner,
waits for its death, and then ends what carries its markers as `_remains`
does (`_remains.end_what_a_dead_spawner_left`).

Rules of this module:

* At most one guard per process, started at its first spawn (`_child` holds
  a lock around it), and only by a spawner at the top: one that started
  with no marker in its environment (nothing of ours started it) and has no
  member among its ancestors.  Inside a tree of ours, the spawner above
  takes the remains (`_remains`), or the member above ends what it started
  at its exit; a guard there would only be one more process in that tree.
  With tcp channels a marker names no runtime directory, so nothing could
  be proven dead: no guard either.
* The guard is nobody's child in the tree: it is started, before this
  process becomes a subreaper, through ``/bin/sh``, which puts it in the
  background and exits at once, so it is re-parented to init (or the
  nearest subreaper above: a service manager, a test harness), in a session
  of its own, in ``/``.  No stop, walk or ``shutdownbus tree`` of this
  process meets it, and no signal to this process's group or terminal
  reaches it.  Its command line says what it is (`is_a_guard`): the leak
  checks of `shutdownbus.testing` leave it out.
* It holds nothing of ours but the read end of one pipe (its standard
  input), on which it hears the pids of the children we start with a
  parent-death signal: the kernel asks those to go when we die, and the
  guard does not ask them again, nor what runs below them (it escalates
  them at their deadline).  Its environment has no per-spawn variable (no
  secret, no marker); its signal mask and dispositions are reset.
* It acts only once this process is gone (a pidfd; it reads the pipe to
  its end first), and only on processes of this user that carry a marker
  whose runtime directory names this very process (pid and start time),
  dead.  A normal exit removes those directories: after one it finds
  nothing and exits at once.
* Linux only (pidfds, /proc, readable environments); elsewhere
  `start_if_unwatched` does nothing: Windows' Job Objects end a dead
  spawner's subtree, macOS offers no way (docs/lifecycle.md).  A guard that
  cannot be started (no ``/bin/sh``, no descriptor left) is logged once, and
  the spawn goes on without it; a frozen application, or an embedding
  program whose ``sys.executable`` is not a Python, starts none.
"""

from __future__ import annotations

import os
import sys

from . import _log, _platform
from ._environment import ENV_ENDPOINT, PER_SPAWN_VARIABLES

#: The name the guard's ``/bin/sh`` runs it under ($0), as ``ps`` shows the shell.
GUARD_NAME = "shutdownbus-guard"
_GUARD_MAIN = "from shutdownbus._guard import main"

_pipe: list[int] = []  # the write end of the guard's pipe, once started


def start_if_unwatched() -> None:
    """Linux, at this process's first spawn, before it becomes a subreaper:
    start its guard if it is at the top of its tree.  Every other OS:
    nothing (see the module's rules)."""
    # PID 1 (a container's, a namespace's init): the kernel ends every
    # process of its namespace when it dies.
    if not _platform.LINUX or _pipe or os.getpid() == 1 or not _runs_python() or not _at_the_top():
        return
    import subprocess

    from ._transport import start_ticks, use_tcp

    if use_tcp():
        return
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # The interpreter finds its modules as this process did (the same
    # environment, less the per-spawn variables), with the directory of
    # this very package first, and without -c's '' (the working directory).
    code = f"import sys; sys.path[:] = [{top!r}, *filter(None, sys.path)]; {_GUARD_MAIN}; main()"
    # The shell's stdin is the pipe: it hands it on as the guard's (a
    # background job's stdin would be /dev/null) and exits at once.
    script = 'exec 3<&0 0</dev/null; "$@" <&3 3<&- &'
    argv = ["/bin/sh", "-c", script, GUARD_NAME, sys.executable, "-c", code, str(os.getpid())]
    env = {k: v for k, v in os.environ.items() if k not in PER_SPAWN_VARIABLES}
    write_end = -1
    try:
        argv.append(str(start_ticks(os.getpid())))
        read_end, write_end = os.pipe()
        try:
            shell = subprocess.Popen(
                argv,
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                env=env,
            )
        finally:
            os.close(read_end)
        if shell.wait() != 0:
            raise OSError(f"/bin/sh exited with status {shell.returncode}")
    except OSError as exc:
        if write_end >= 0:
            os.close(write_end)
        _log.warning("no guard for this process's children's remains (%s): a kill leaves them to init", exc)
        return
    except BaseException:
        if write_end >= 0:
            os.close(write_end)
        raise
    os.set_blocking(write_end, False)
    _pipe.append(write_end)


def tell(pid: int) -> None:
    """Tell the guard (if any) of a child started with a parent-death signal."""
    if _pipe:
        try:
            os.write(_pipe[0], b"%d\n" % pid)
        except OSError:
            pass  # a guard gone (or a full pipe): it asks such a child too, then


def is_a_guard(command_line: list[str]) -> bool:
    """Whether a process with this command line is a guard (or the shell
    that starts one, a moment before its exec)."""
    return any(_GUARD_MAIN in arg for arg in command_line)


def _runs_python() -> bool:
    """Whether ``sys.executable`` can run the guard: not in a frozen
    application, nor in a program that embeds Python (uWSGI's is itself)."""
    name = os.path.basename(sys.executable or "").lower()
    return not getattr(sys, "frozen", False) and ("python" in name or "pypy" in name)


def _at_the_top() -> bool:
    """Whether this process started with no marker in its environment and
    has no member among its ancestors (see the module's rules)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            if any(v.startswith(ENV_ENDPOINT.encode() + b"=") for v in f.read().split(b"\0")):
                return False
        ancestor = os.getppid()
        for _ in range(64):  # a loop in the parent links would be a kernel bug; a bound all the same
            if ancestor <= 1:
                return True
            if _platform.joined_the_bus(ancestor):
                return False
            ancestor = _platform.parent_of(ancestor) or 0
    except OSError:
        pass
    return False  # cannot tell: no guard (a guard inside a tree would be one more process in it)


def _forget_after_fork() -> None:
    # A forked child is another process: its guard is its own business.
    while _pipe:
        os.close(_pipe.pop())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- the guard's side ---------------------------------------------------------------


def main() -> None:
    """The guard process: ``python -c ... SPAWNER_PID SPAWNER_START_TICKS``,
    its standard input the pipe from its spawner."""
    import signal

    # Started from a spawn, maybe while ``run`` held SIGINT and SIGTERM
    # back; and a background job of the shell ignores SIGINT and SIGQUIT.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    spawner = (int(sys.argv[1]), int(sys.argv[2]))
    asked = _Asked()
    _wait_for_the_death_of(spawner, asked)
    from ._remains import end_what_a_dead_spawner_left

    end_what_a_dead_spawner_left(spawner, asked=asked.__contains__)


class _Asked:
    """The children the spawner told of, each with its start time (a pid
    that another process took since is not one of them)."""

    def __init__(self) -> None:
        self._started: dict[int, int | None] = {}
        self._pending = b""

    def __contains__(self, pid: int) -> bool:
        return pid in self._started and self._started[pid] == _ticks(pid)

    def read(self, data: bytes) -> None:
        """Take what the pipe gave."""
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            if line.isdigit():
                self._started[int(line)] = _ticks(int(line))
        if len(self._started) > 1024:  # a long-lived spawner: forget those gone
            self._started = {pid: t for pid, t in self._started.items() if t is not None and t == _ticks(pid)}


def _wait_for_the_death_of(spawner: tuple[int, int], asked: _Asked) -> None:
    """Return once ``spawner`` (pid, start ticks) is gone, having read on
    the way every pid it told of (the pipe ends with it)."""
    import select

    pid, started = spawner
    fd = _platform.exit_fd(pid)
    poller = select.poll()
    poller.register(0, select.POLLIN)
    if fd is not None:
        poller.register(fd, select.POLLIN)
    # Loaded while the spawner lives: at its death every millisecond counts.
    from ._processes import load

    load()
    # After the pidfd is open: a start time that still matches proves that
    # the pidfd is the spawner's (its pid was not taken by another process).
    while _ticks(pid) == started:
        # Without a pidfd (an old kernel), its start time is looked at now and then.
        events = dict(poller.poll(None if fd is not None else 100))
        if events.get(0) and not _read_into(asked):
            poller.unregister(0)  # the pipe's end: it died, or it exec'd (and is still watched)
        if fd is not None and fd in events:
            break
    while _read_into(asked, timeout=0.5):
        pass  # what it told just before its death


def _read_into(asked: _Asked, timeout: float = 0.0) -> bool:
    """Read what the pipe has (waiting up to ``timeout`` for it); False at its end."""
    import select

    try:
        if not select.select([0], [], [], timeout)[0]:
            return False
        data = os.read(0, 4096)
    except OSError:
        return False
    asked.read(data)
    return bool(data)


def _ticks(pid: int) -> int | None:
    from ._transport import start_ticks

    try:
        return start_ticks(pid)
    except OSError:
        return None
