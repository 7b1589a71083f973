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

TERM_GRACE = 0.2
KILL_WAIT = 0.2
ESCALATION_MARGIN = TERM_GRACE + KILL_WAIT
#: A child that has not joined the bus this long after a stop began gets the
#: OS-native polite request instead (capped at half the stop's budget).
JOIN_GRACE = 1.0
#: The share of a budget handed to the next level down.
CHILD_SHARE = 0.8


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


def join_grace(budget: float) -> float:
    """How long to wait for a child to join before using the OS request."""
    return min(JOIN_GRACE, budget / 2)
