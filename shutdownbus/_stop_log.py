"""The stop log: one line per event of a stop, for an operator to read after the fact.

Each process logs the events of the stops it takes part in, on the
``shutdownbus.stop`` logger at INFO: its own stop received, the stop sent to
its children, each child's exit with its status, each escalation (which
request, to which processes), each child's stop done, and its own exit.
Which process held a stop up is the one whose child exited last, or was
escalated.

Rules of this module:

* It never imports ``logging`` (`_log.info` writes only if the program
  loaded it and enabled INFO on this logger): nothing is printed unless the
  program configured logging to show it.
* It imports nothing once loaded: it is called on the exit path (see
  `_member._at_exit`).  Its callers format nothing: each event is one call.
"""

from __future__ import annotations

import signal

from . import _log
from ._outcome import Outcome
from ._platform import WINDOWS
from ._text import printable

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._report import StopReport

#: The logger of the stop log.
LOGGER = "shutdownbus.stop"


def _status(returncode: int | None) -> str:
    """An exit status as a shell shows it, and the signal's name when one ended the process."""
    if returncode is None:
        return "an unknown status"
    if returncode >= 0:
        return f"status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"status {128 - returncode} ({name})"


def _processes(pids_and_names: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"pid {pid} ({printable(name)})" for pid, name in pids_and_names) or "none"


def received(reason: str, budget: float, name: str) -> None:
    """This process's own stop arrived (from its parent or an admin)."""
    _log.info(LOGGER, "%s received stop %r: %.3g s before its parent escalates", printable(name), reason, budget)


def sent(reason: str, children: Iterable[tuple[int, str]], timeout: float) -> None:
    """A stop was sent to (or forwarded to) these children of ours."""
    children = list(children)
    _log.info(
        LOGGER,
        "stop %r sent to %d child(ren): %s; escalation in %.3g s",
        reason,
        len(children),
        _processes(children),
        timeout,
    )


def child_exited(pid: int, name: str, returncode: int | None, seconds: float) -> None:
    """A child of ours that was being stopped exited."""
    _log.info(
        LOGGER, "child pid %d (%s) exited with %s after %.3f s", pid, printable(name), _status(returncode), seconds
    )


def child_said_farewell(pid: int, name: str, seconds: float) -> None:
    """A child of ours that was being stopped said farewell (only its finalization is left)."""
    _log.info(
        LOGGER, "child pid %d (%s) said farewell after %.3f s; its exit is left to the stop's top",
        pid, printable(name), seconds,
    )


def deadline_passed(children: Iterable[tuple[int, str]]) -> None:
    """These children of ours were still running at their stop's deadline."""
    _log.info(LOGGER, "deadline passed, escalating: %s", _processes(children))


def escalated(outcome: Outcome, processes: Iterable[tuple[int, str]]) -> None:
    """Escalation sent ``outcome``'s request to these processes."""
    processes = list(processes)
    if not processes:
        return
    if outcome == Outcome.KILLED:
        request = "kill (TerminateProcess)" if WINDOWS else "kill (SIGKILL)"
    else:
        request = "terminate (TerminateProcess)" if WINDOWS else "terminate (SIGTERM)"
    _log.info(LOGGER, "escalation: %s sent to %s", request, _processes(processes))


def child_done(report: StopReport) -> None:
    """The stop of one child of ours is over: its report."""
    own = report.entries[0]
    others = len(report.entries) - 1
    _log.info(
        LOGGER,
        "stop of pid %d (%s) done in %.3f s: %s, %d process(es) below it, %s",
        own.pid,
        printable(own.name),
        report.seconds,
        own.outcome,
        others,
        "ok" if report.ok else "NOT ok",
    )


def done(reason: str, name: str, seconds: float) -> None:
    """This process's own stop is over: it exits."""
    _log.info(LOGGER, "%s done with stop %r after %.3f s; exiting", printable(name), reason, seconds)
