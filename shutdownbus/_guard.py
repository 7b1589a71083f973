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
  reaches it.  Its name and command line say what it is (`is_a_guard`):
  the leak checks of `shutdownbus.testing` leave it out.  If this process
  execs another program, the line ends and the guard leaves (the new
  program starts its own at its first spawn).
* It holds nothing of ours but one end of a socket pair (its standard
  input), on which it hears the pids of the children we start with a
  parent-death signal: the kernel asks those to go when we die, and the
  guard does not ask them again, nor what runs below them (it escalates
  them at their deadline).  Its environment has no per-spawn variable (no
  secret, no marker); its signal mask and dispositions are reset.
* It acts only once this process is gone (a pidfd; it reads the line to
  its end first), and only on processes of this user that carry a marker
  whose runtime directory names this very process (pid and start time),
  dead.  A normal exit removes those directories: after one it finds
  nothing and exits at once.
* Linux only (pidfds, /proc, readable environments); elsewhere
  `start_if_unwatched` does nothing: Windows' Job Objects end a dead
  spawner's subtree, macOS offers no way (docs/lifecycle.md).  A guard that
  cannot be started (no ``/bin/sh``, no descriptor left), or is found gone
  when we tell it of a child, is logged once, and the spawn goes on
  without it; a frozen application, or an embedding program whose
  ``sys.executable`` is not the interpreter running it, starts none.
"""

from __future__ import annotations

import os
import sys

from . import _log, _platform
from ._environment import ENV_BELOW, ENV_ENDPOINT, PER_SPAWN_VARIABLES

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import socket

#: The name the guard's ``/bin/sh`` runs it under ($0), and the guard's own
#: process name (its ``comm``, which stays readable while it exits).
GUARD_NAME = "shutdownbus-guard"
_COMM = GUARD_NAME[:15]  # the kernel keeps 15 bytes
_GUARD_MAIN = "from shutdownbus._guard import main"

_line: list[socket.socket] = []  # our end of the guard's line, once started
_tried: list[bool] = []  # a start was tried in this process (once: see the rules)


def start_if_unwatched() -> None:
    """Linux, at this process's first spawn, before it becomes a subreaper:
    start its guard if it is at the top of its tree.  Every other OS:
    nothing (see the module's rules)."""
    # PID 1 (a container's, a namespace's init): the kernel ends every
    # process of its namespace when it dies.
    if not _platform.LINUX or _tried or os.getpid() == 1 or not _runs_python() or not _at_the_top():
        return
    import subprocess

    from ._transport import start_ticks, use_tcp

    if use_tcp():
        return
    _tried.append(True)  # also for a spawn that a signal handler makes meanwhile
    import socket

    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # The interpreter finds its modules as this process did (the same
    # environment, less the per-spawn variables), with the directory of
    # this very package first, and without -c's '' (the working directory).
    code = f"import sys; sys.path[:] = [{top!r}, *filter(None, sys.path)]; {_GUARD_MAIN}; main()"
    # The shell's stdin is the guard's end of the line: it hands it on (a
    # background job's stdin would be /dev/null) and exits at once.  A
    # socket, not a pipe: we send with MSG_NOSIGNAL, so that a guard gone
    # never kills us with SIGPIPE (a program may have its default back).
    script = 'exec 3<&0 0</dev/null; "$@" <&3 3<&- &'
    argv = ["/bin/sh", "-c", script, GUARD_NAME, sys.executable, "-c", code, str(os.getpid())]
    # Nor ENV_BELOW: the guard is no member's to end should one above us die; it ends what we leave.
    env = {k: v for k, v in os.environ.items() if k not in PER_SPAWN_VARIABLES and k != ENV_BELOW}
    ours: socket.socket | None = None
    try:
        argv.append(str(start_ticks(os.getpid())))
        ours, theirs = socket.socketpair()
        with theirs:
            shell = subprocess.Popen(
                argv,
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                env=env,
            )
        if shell.wait() != 0:
            raise OSError(f"/bin/sh exited with status {shell.returncode}")
    except OSError as exc:
        if ours is not None:
            ours.close()
        _log.warning("no guard for this process's children's remains (%s): a kill leaves them to init", exc)
        return
    except BaseException:
        if ours is not None:
            ours.close()
        raise
    ours.setblocking(False)
    _line.append(ours)


def tell(pid: int) -> None:
    """Tell the guard (if any) of a child started with a parent-death signal."""
    if _line:
        import socket  # loaded by the start already

        try:
            _line[0].send(b"%d\n" % pid, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            pass  # a full line (a guard that stopped reading): it asks such a child too, then
        except OSError as exc:
            _line.pop().close()
            _log.warning("the guard of this process is gone (%s): a kill leaves its children's remains to init", exc)


def is_a_guard(name: str, command_line: list[str]) -> bool:
    """Whether a process with this name (its ``comm``) and command line is a
    guard (or the shell that starts one, a moment before its exec).  The
    name answers also while it exits, when its command line reads empty."""
    return name == _COMM or any(_GUARD_MAIN in arg for arg in command_line)


def _runs_python() -> bool:
    """Whether ``sys.executable`` is the interpreter running us: not in a
    frozen application, nor in a program that embeds Python (uWSGI's is
    the program itself; Blender's another Python, without our
    dependencies)."""
    if getattr(sys, "frozen", False) or not sys.executable:
        return False
    try:
        same = os.path.realpath(sys.executable) == os.path.realpath("/proc/self/exe")
    except OSError:
        return False
    return same and "py" in os.path.basename(sys.executable).lower()


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
    while _line:
        _line.pop().close()
    _tried.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- the guard's side ---------------------------------------------------------------


def main() -> None:
    """The guard process: ``python -c ... SPAWNER_PID SPAWNER_START_TICKS``,
    its standard input its end of the line from its spawner."""
    import signal

    # Started from a spawn, maybe while ``run`` held SIGINT and SIGTERM
    # back; and a background job of the shell ignores SIGINT and SIGQUIT.
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    with open("/proc/self/comm", "w") as comm:
        comm.write(_COMM)  # `is_a_guard`, also while we exit
    spawner = (int(sys.argv[1]), int(sys.argv[2]))
    asked = _Asked()
    if _wait_for_the_death_of(spawner, asked):
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
        """Take what the line gave."""
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            if line.isdigit():
                self._started[int(line)] = _ticks(int(line))
        if len(self._started) > self._kept * 2 + 1024:  # a long-lived spawner: forget those gone
            self._started = {pid: t for pid, t in self._started.items() if t is not None and t == _ticks(pid)}
            self._kept = len(self._started)

    _kept = 0  # how many were left by the last forgetting


def _wait_for_the_death_of(spawner: tuple[int, int], asked: _Asked) -> bool:
    """Wait until ``spawner`` (pid, start ticks) is gone, reading on the way
    every pid it tells of (the line ends with it).  True: it died; False:
    it exec'd another program (the line ended while it runs), whose own
    guard, if it spawns, takes over (our list of what the kernel asks is
    no longer its)."""
    import select

    pid, started = spawner
    fd = _platform.exit_fd(pid)
    poller = select.poll()
    poller.register(0, select.POLLIN)
    if fd is not None:
        poller.register(fd, select.POLLIN)
    # Loaded while the spawner lives: at its death every millisecond counts.
    from . import _remains  # noqa: F401
    from ._processes import load

    load()
    # After the pidfd is open: a start time that still matches proves that
    # the pidfd is the spawner's (its pid was not taken by another process).
    while _ticks(pid) == started:
        # Without a pidfd (an old kernel), its start time is looked at now and then.
        events = dict(poller.poll(None if fd is not None else 100))
        if events.get(0) and not _read_into(asked):
            # The end of the line: a death (a dying process closes its
            # descriptors before the kernel counts it gone), or an exec.
            return _gone_within(pid, started, fd, EXEC_OR_DEATH)
        if fd is not None and fd in events:
            break
    while _read_into(asked, timeout=0.5):
        pass  # what it told just before its death
    return True


#: How long a spawner whose end of the line closed may take to be counted
#: gone before it is taken to have exec'd another program (a process is
#: gone a moment after it closed its descriptors; longer on a loaded machine).
EXEC_OR_DEATH = 5.0


def _gone_within(pid: int, started: int, fd: int | None, timeout: float) -> bool:
    """Whether process ``pid`` (with ``started`` start ticks, and pidfd
    ``fd`` if any) is gone within ``timeout`` seconds."""
    import select
    import time

    end = time.monotonic() + timeout
    while _ticks(pid) == started:
        left = end - time.monotonic()
        if left <= 0:
            return False
        if fd is not None:
            select.select([fd], [], [], left)
        else:
            time.sleep(min(0.05, left))
    return True


def _read_into(asked: _Asked, timeout: float = 0.0) -> bool:
    """Read what the line has (waiting up to ``timeout`` for it); False at its end."""
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
