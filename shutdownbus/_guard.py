"""The guard of a spawner that no spawner of ours watches (Linux).

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

* At most one guard per process, started at its first spawn, and only by a
  spawner at the top: one that started with no marker in its environment
  (nothing of ours started it) and has no member among its ancestors.
  Inside a tree of ours, the spawner above takes the remains (`_remains`),
  or the member above ends what it started at its exit; a guard there would
  only be one more process in that tree.  With tcp channels a marker names
  no runtime directory, so nothing could be proven dead: no guard either.
* The guard is nobody's child in the tree: it is started, before this
  process becomes a subreaper, through ``/bin/sh``, which puts it in the
  background and exits at once, so it is re-parented to init (or the
  nearest subreaper above: a service manager, a test harness), in a session
  of its own.  No stop, walk or ``shutdownbus tree`` of this process meets
  it, and no signal to this process's group or terminal reaches it.  Its
  command line says what it is (`is_a_guard`): the leak checks of
  `shutdownbus.testing` leave it out.
* It holds nothing of ours but the read end of one pipe, on which it hears
  the pids of the children we start with a parent-death signal: those the
  kernel asks to go when we die, which it does not ask again (it escalates
  them at their deadline).  Its environment has no per-spawn variable (no
  secret, no marker).
* It acts only once this process is gone (a pidfd), and only on processes
  of this user that carry a marker whose runtime directory names this
  process, provably dead.  A normal exit removes those directories: after
  one it finds nothing and exits at once.
* Linux only (pidfds, /proc, readable environments); elsewhere `start_if_unwatched`
  does nothing: Windows' Job Objects end a dead spawner's subtree, macOS
  offers no way (docs/lifecycle.md).  A guard that cannot be started (no
  ``/bin/sh``, a frozen application, no process to be had) is logged once,
  and the spawn goes on without it.
"""

from __future__ import annotations

import os
import sys

from . import _log, _platform
from ._environment import ENV_ENDPOINT, PER_SPAWN_VARIABLES

#: The name the guard's ``/bin/sh`` runs it under ($0), as ``ps`` shows the shell.
GUARD_NAME = "shutdownbus-guard"

_pipe: list[int] = []  # the write end of the guard's pipe, once started


def start_if_unwatched() -> None:
    """Linux, at this process's first spawn, before it becomes a subreaper:
    start its guard, unless a spawner of ours watches it.  Every other OS:
    nothing (see the module's rules)."""
    # PID 1 (a container's, a namespace's init): the kernel ends every
    # process of its namespace when it dies.
    if not _platform.LINUX or _pipe or os.getpid() == 1 or getattr(sys, "frozen", False) or not _at_the_top():
        return
    import subprocess

    from ._transport import use_tcp

    if use_tcp():
        return

    started = _platform.started_at(os.getpid())
    read_end, write_end = os.pipe()
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"import sys; sys.path[0] = {top!r}; {_GUARD_MAIN}; main()"
    # $@ in the background, its stdin the pipe (a background job's stdin
    # would be /dev/null), and the shell exits: the guard is not our child.
    script = f'"$@" <&{read_end} {read_end}<&- &'
    # The interpreter finds its modules as this process did (the same
    # environment, less the per-spawn variables); -c's '' (the working
    # directory) at the head of sys.path is replaced by where we are.
    argv = ["/bin/sh", "-c", script, GUARD_NAME, sys.executable, "-c", code, str(os.getpid()), repr(started)]
    env = {k: v for k, v in os.environ.items() if k not in PER_SPAWN_VARIABLES}
    try:
        shell = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(read_end,),
            start_new_session=True,
            env=env,
        )
        shell.wait()
    except OSError as exc:
        os.close(write_end)
        _log.warning("no guard for this process's children's remains (%s): a kill leaves them to init", exc)
        return
    finally:
        os.close(read_end)
    os.set_blocking(write_end, False)
    _pipe.append(write_end)


def tell(pid: int) -> None:
    """Tell the guard (if any) of a child started with a parent-death signal."""
    if _pipe:
        try:
            os.write(_pipe[0], b"%d\n" % pid)
        except OSError:
            pass  # a guard gone (or a full pipe): it escalates such a child instead of asking it first


_GUARD_MAIN = "from shutdownbus._guard import main"


def is_a_guard(command_line: list[str]) -> bool:
    """Whether a process with this command line is a guard (or the shell
    that starts one, a moment before its exec)."""
    return any(_GUARD_MAIN in arg for arg in command_line)


def _at_the_top() -> bool:
    """Whether this process started with no marker in its environment and
    has no member among its ancestors (see the module's rules)."""
    try:
        with open(f"/proc/{os.getpid()}/environ", "rb") as f:
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
    if _pipe:
        os.close(_pipe.pop())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- the guard's side ---------------------------------------------------------------


def main() -> None:
    """The guard process: ``python -c ... SPAWNER_PID SPAWNER_START``, its
    standard input the pipe from its spawner."""
    spawner, started = int(sys.argv[1]), float(sys.argv[2])
    asked: dict[int, float | None] = {}
    # Loaded while the spawner lives: at its death every millisecond counts.
    from ._processes import load
    from ._remains import end_what_a_dead_spawner_left

    load()
    _wait_for_the_death_of(spawner, started, asked)

    def was_asked(pid: int) -> bool:
        return pid in asked and asked[pid] == _started(pid)

    end_what_a_dead_spawner_left(spawner, asked=was_asked)


def _wait_for_the_death_of(spawner: int, started: float, asked: dict[int, float | None]) -> None:
    """Return once ``spawner`` is gone, noting the children it tells of meanwhile."""
    import select

    fd = _platform.exit_fd(spawner)
    if _started(spawner) != started:
        return  # gone already (or its pid is another process's now)
    poller = select.poll()
    if fd is not None:
        poller.register(fd, select.POLLIN)
    poller.register(0, select.POLLIN)
    pending = b""
    while True:
        # Without a pidfd (an old kernel), its start time is looked at now and then.
        events = poller.poll(None if fd is not None else 100)
        if fd is None and _started(spawner) != started:
            return
        for ready, _ in events:
            if ready == fd:
                return
            data = os.read(0, 4096)
            if not data:
                poller.unregister(0)  # it exec'd or closed the pipe: it is still watched
                continue
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if line.isdigit():
                    asked[int(line)] = _started(int(line))


def _started(pid: int) -> float | None:
    try:
        return _platform.started_at(pid)
    except OSError:
        return None
