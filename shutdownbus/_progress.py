"""A stop in progress: what it still waits for, and the line a terminal shows of it.

Rules of this module:

* `StopProgress` is what a long stop's watcher gets now and then: the
  processes still running, the slowest first, and the time left before
  escalation.  `Child.stop(progress=...)` and ``send-stop`` (through
  `_admin.send_stop`) hand it out; `line` renders it as systemd's "A stop job
  is running for X (5s / 1min 30s)" does.
* It imports only `_log`, `_values` and `_text` (``send-stop`` loads it), and a
  watcher's failure never fails the stop (`call`).
"""

from __future__ import annotations

import time

from . import _log
from ._text import printable
from ._values import FrozenValue

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ._stop import StopState
    from ._tree import Tree


class StopProgress(FrozenValue):
    """A stop in progress, as a watcher sees it (`Child.stop`'s ``progress``).

    Attributes:
        remaining: ``(pid, name)`` of each process still running, the slowest
            first: the deepest in the tree first (a parent waits for its
            children), then by pid.
        total: How many processes the stop has seen in all (those gone too).
        elapsed: Seconds since the stop began.
        escalation_in: Seconds left before the processes still running are
            escalated (0 once that began); None when no deadline applies.

    Immutable, equal to another with the same fields, and hashable.
    """

    __slots__ = ("remaining", "total", "elapsed", "escalation_in")
    remaining: tuple[tuple[int, str], ...]
    total: int
    elapsed: float
    escalation_in: float | None

    def __init__(
        self,
        remaining: Sequence[tuple[int, str]],
        total: int,
        elapsed: float,
        escalation_in: float | None,
    ) -> None:
        self._init(tuple((int(pid), str(name)) for pid, name in remaining), int(total), float(elapsed), escalation_in)


def of_processes(
    running: Iterable[tuple[int, str, int]], total: int, started: float, deadline: float | None
) -> StopProgress:
    """A `StopProgress` of ``(pid, name, depth)`` of the processes still running.

    Args:
        running: The processes still running, each with its depth below the stop's roots.
        total: How many processes the stop has seen in all.
        started: `time.monotonic` when the stop began.
        deadline: `time.monotonic` of escalation, or None.

    Returns:
        The progress, its processes the deepest first.
    """
    now = time.monotonic()
    ordered = sorted(running, key=lambda p: (-p[2], p[0]))
    left = None if deadline is None else max(0.0, deadline - now)
    return StopProgress([(pid, name) for pid, name, _ in ordered], total, max(0.0, now - started), left)


def of_tree(tree: Tree, root: tuple[int, str] | None, started: float, deadline: float | None) -> StopProgress:
    """The progress of a stop that watches ``tree`` (and ``root``, when still running, above it)."""
    running = [(m.pid, m.name, m.depth) for m in tree.alive()]
    if root is not None:
        running.append((root[0], root[1], 0))
    return of_processes(running, len(tree.members) + 1, started, deadline)


def of_stops(states: Sequence[StopState]) -> StopProgress:
    """The progress of the stops of our own children that run together (`_stop`)."""
    running: list[tuple[int, str, int]] = []
    total = 0
    for st in states:
        total += 1
        if st.child.returncode is None and not st.gave_up:
            running.append((st.child.pid, st.child.name, 0))
        if st.tree is not None:
            total += len(st.tree.members)
            running += [(m.pid, m.name, m.depth) for m in st.tree.alive()]
    started = min(st.started for st in states)
    return of_processes(running, total, started, min(st.deadline for st in states))


def call(progress: Callable[[StopProgress], object], make: Callable[[], StopProgress]) -> None:
    """Hand ``progress`` the stop's progress; its failure is logged, and the stop goes on."""
    try:
        progress(make())
    except Exception:
        _log.exception("shutdownbus: a stop's progress callback failed")


def duration(seconds: float, *, up: bool = False) -> str:
    """``5s``, ``1min 30s``, ``2h 5min``: as systemd writes a stop job's times
    (whole seconds, rounded down; with ``up``, rounded up: a time left)."""
    seconds = int(-(-seconds // 1)) if up else int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}min" + (f" {seconds % 60}s" if seconds % 60 else "")
    return f"{seconds // 3600}h" + (f" {seconds // 60 % 60}min" if seconds // 60 % 60 else "")


def line(what: str, progress: StopProgress, width: int = 80, few: int = 3) -> str:
    """One line that says what a stop waits for, at most ``width`` characters.

    ``stopping web (5s, escalation in 3s): 2 of 5 left: deaf[13], worker[12]``:
    the time since the stop began and the time left before escalation (as
    systemd's "A stop job is running for web (5s / 1min 30s)"), how many
    processes are left, and the slowest ``few`` of them by name[pid] (``+N
    more`` for the others).  Names are made printable: they come from other
    processes.

    Args:
        what: What is being stopped (a tree's name).
        progress: The stop's progress.
        width: The terminal's width.
        few: How many processes to name.

    Returns:
        The line, without a newline.
    """
    times = duration(progress.elapsed)
    left_s = progress.escalation_in
    if left_s is not None:
        times += f", escalation in {duration(left_s, up=True)}" if left_s > 0 else ", escalating"
    left = len(progress.remaining)
    named = ", ".join(f"{printable(name)}[{pid}]" for pid, name in progress.remaining[:few])
    if left > few:
        named += f", +{left - few} more"
    text = f"stopping {printable(what)} ({times}): {left} of {progress.total} left"
    text += f": {named}" if named else ""
    if len(text) > width:
        text = text[: max(0, width - 3)] + "..."
    return text
