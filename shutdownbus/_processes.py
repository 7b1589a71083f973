"""One process at a time, through psutil: looking at it, naming it, asking it to go.

Rules of this module:

* psutil is imported by the functions, and only when they run, so that a
  member that merely joins the bus never pays for it; `load` imports it
  ahead of a stop's path.
* Processes are held as ``psutil.Process`` objects, which check the process
  creation time before sending a signal: a pid reused by an unrelated process
  is never signalled.
* Failing to read a process's state is never taken for its exit (fail
  closed): `is_running` answers True when it cannot tell.
"""

from __future__ import annotations

from . import _platform
from ._environment import ENV_ENDPOINT
from ._names import describe
from ._outcome import Outcome

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    import psutil


def load() -> None:
    """Load what a stop of a tree needs now, rather than on the stop's path:
    psutil (some 15 ms) and the report (`Tree.entries`), which ``list`` does
    without."""
    import psutil  # noqa: F401

    from . import _report  # noqa: F401


def process(pid: int) -> psutil.Process | None:
    """The process ``pid``, held so that a later signal cannot reach a process
    that reused its pid; None if there is none."""
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def started(pid: int | None = None) -> float:
    """When process ``pid`` (default: this one) started, on psutil's clock.

    Raises:
        ProcessLookupError: it is gone.
    """
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        raise ProcessLookupError(pid) from None


def still(pid: int, since: float) -> bool:
    """Whether ``pid`` still runs as the process that started at ``since`` (a zombie counts as gone).

    On Linux it reads /proc without psutil, whose import (some 10 ms) would
    be most of ``shutdownbus list``'s own start-up.
    """
    if _platform.LINUX:
        try:
            born = _platform.started_at(pid)
        except OSError:
            pass  # psutil tells, or fails closed
        else:
            return born is not None and abs(born - since) < 1.0
    proc = process(pid)
    return proc is not None and abs(proc.create_time() - since) < 1.0 and is_running(proc)


def send(proc: psutil.Process, outcome: Outcome) -> bool:
    """Send ``proc`` the kill (outcome ``killed``) or the polite request; False if it is gone."""
    import psutil

    try:
        proc.kill() if outcome == Outcome.KILLED else proc.terminate()
    except psutil.Error:
        return False
    return True


def runs(pid: int) -> bool:
    """Whether a process with pid ``pid`` runs now (a zombie counts as gone)."""
    import psutil

    try:
        return is_running(psutil.Process(pid))
    except psutil.Error:
        return False


def is_running(proc: psutil.Process) -> bool:
    """Whether ``proc`` runs (a zombie counts as gone).

    Fails closed: if its state cannot be read (no descriptor left, say), it
    counts as running.
    """
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
    except OSError:
        return True


def display_name(proc: psutil.Process) -> str:
    """`describe`'s name of a running process (``?`` if it is gone)."""
    return describe_process(proc)[0]


def describe_process(proc: psutil.Process, args: list[str] | None = None) -> tuple[str, bool]:
    """`_names.describe` of a process (a zombie keeps its name, not its command line).

    Args:
        proc: The process.
        args: Its command line, if the caller read it already.
    """
    import psutil

    if args is None:
        args = cmdline(proc)  # a zombie has no command line left, but still its name
    if args and args[0]:
        return describe(args, "?")  # the OS's name is not needed: not read (a stop names every process it meets)
    try:
        fallback = str(proc.name())
    except (psutil.Error, OSError):
        fallback = "?"
    return describe(args, fallback)


def parent_pid(proc: psutil.Process) -> int | None:
    """The pid of ``proc``'s parent now; None if it is gone."""
    import psutil

    try:
        return int(proc.ppid())
    except psutil.Error:
        return None


def cmdline(proc: psutil.Process) -> list[str]:
    """The command line of ``proc``; empty for a zombie, or when it cannot be read."""
    import psutil

    try:
        return list(proc.cmdline())
    except (psutil.Error, OSError):
        return []


def marker_of(proc: psutil.Process) -> str | None:
    """The ``SHUTDOWNBUS_ENDPOINT`` that ``proc`` started with (None: none, or unreadable)."""
    return environment_of(proc).get(ENV_ENDPOINT)


def environment_of(proc: psutil.Process) -> dict[str, str]:
    """The environment ``proc`` started with; empty if it cannot be read now
    (another user's process, a zombie, a process in the middle of its exec)."""
    import psutil

    try:
        return {str(k): str(v) for k, v in proc.environ().items()}
    except (psutil.Error, OSError):
        return {}
