"""How a stop's time budget is shared out down a tree.

Rules of this module:

* The budget travels with the stop: a process that has ``B`` seconds hands its
  children `child_budget` (B), which is smaller, so the innermost processes
  are dealt with by their own parent first and every parent still has time
  for its escalation and its own cleanup once its children are gone.
* Past a process's deadline its parent escalates: the polite OS request to
  the process and every descendant (deepest first), `TERM_GRACE` seconds for
  them to go, then a kill, then up to `KILL_WAIT` seconds to see them gone.
  So a stop returns by its timeout plus `ESCALATION_MARGIN` at most (plus the
  time the OS takes to schedule, under heavy load).
"""

from __future__ import annotations

from . import _platform

TERM_GRACE = 0.2
KILL_WAIT = 0.2
ESCALATION_MARGIN = TERM_GRACE + KILL_WAIT
#: A child that has not joined the bus this long after it was spawned gets
#: the OS-native polite request as its stop instead (see `join_grace_end`):
#: 1 s, 3 s on Windows (`_platform.join_grace`).
JOIN_GRACE = _platform.join_grace()
#: The share of a budget handed to the next level down.
CHILD_SHARE = 0.8
#: The longest budget a stop may carry, and the longest stop timeout: a week
#: (anything longer is a bug on the sender's side).
MAX_BUDGET = 7 * 24 * 3600.0


def child_budget(budget: float) -> float:
    """The budget a process with ``budget`` seconds gives each of its children.

    Args:
        budget: Seconds this process has until its own parent escalates.

    Returns:
        ``CHILD_SHARE * (budget - ESCALATION_MARGIN)``, at least 0: the child's
        deadline, plus this process's escalation of it, still ends before this
        process's own deadline, with some time left for its own cleanup.
    """
    return max(0.0, CHILD_SHARE * (budget - ESCALATION_MARGIN))


def join_grace_end(spawned: float, started: float, deadline: float) -> float:
    """Until when a stop waits for a child to join before it uses the OS request.

    A child spawned a moment ago may still join: it gets until `JOIN_GRACE`
    after its spawn, but at most half of the stop's budget.  One that has run
    longer than that without joining never will (a server in another
    language, a shell script): the request goes at once, so that such a tree
    stops as fast as a signal would stop it.

    Args:
        spawned: `time.monotonic` when the child was spawned.
        started: When the stop started.
        deadline: When the stop escalates.

    Returns:
        A `time.monotonic` time (possibly in the past).
    """
    return min(spawned + JOIN_GRACE, started + (deadline - started) / 2)
