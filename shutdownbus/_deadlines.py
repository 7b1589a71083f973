"""How a stop's time is shared out down a tree.

Rules of this module:

* A deadline is an absolute instant (`time.monotonic`, which every process
  of a machine shares); it travels with the stop, as a budget (seconds left)
  on the wire only.  A process that must be gone by ``D`` gives its children
  `children_deadline` (D): earlier by what it keeps for itself, which is
  what its own escalation of them and its own exit need, at most
  `ESCALATION_MARGIN` and at most `LEVEL_SHARE` of the time left.  So depth
  costs each level a small share of what is left, never a fixed amount: a
  chain of 100 members still gives its deepest member most of a second of a
  10 s stop (docs/lifecycle.md works the numbers out).
* Past a process's deadline its parent escalates: the polite OS request to
  the process and every descendant (deepest first), then a kill, then a
  wait to see them gone, all by `escalation_end`: `ESCALATION_MARGIN` after
  the deadline for the process that started the stop, and no later than its
  own deadline for a process that is itself stopping, so that its parent
  never has to escalate it for having escalated its children.  A stop
  started with timeout ``T`` so returns by ``T + ESCALATION_MARGIN`` at most
  (plus the time the OS takes to schedule, under heavy load), however deep
  the tree: whichever deadline passes first, the escalation below it ends
  before the deadline above it.
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
#: The share of its time left that a stopping process keeps for itself
#: (at most `ESCALATION_MARGIN`); its children get the rest.
LEVEL_SHARE = 0.02
#: The longest budget a stop may carry, and the longest stop timeout: a week
#: (anything longer is a bug on the sender's side).
MAX_BUDGET = 7 * 24 * 3600.0
#: A child's stop timeout when its spawner gave none (`spawn`'s default).
DEFAULT_STOP_TIMEOUT = 10.0


def stop_timeout_from(text: str | None) -> float:
    """The stop timeout a spawner wrote in its child's environment
    (``SHUTDOWNBUS_STOP_TIMEOUT``); `DEFAULT_STOP_TIMEOUT` where it is
    missing, not a number, or out of (0, `MAX_BUDGET`]."""
    try:
        value = float(text or "")
    except ValueError:
        return DEFAULT_STOP_TIMEOUT
    return value if 0 < value <= MAX_BUDGET else DEFAULT_STOP_TIMEOUT


def children_deadline(own_deadline: float, now: float) -> float:
    """The deadline a process that must be gone by ``own_deadline`` gives its children.

    (A root with no work of its own, ``shutdownbus run``, gives its command
    the whole budget it was sent instead: whoever stops it gives it
    `ESCALATION_MARGIN` on top for its escalation, see `_admin`.)

    Args:
        own_deadline: When this process must be gone (`time.monotonic`).
        now: The time now (`time.monotonic`).

    Returns:
        ``own_deadline`` less ``min(ESCALATION_MARGIN, LEVEL_SHARE * (own_deadline - now))``.
    """
    return own_deadline - min(ESCALATION_MARGIN, LEVEL_SHARE * max(0.0, own_deadline - now))


def escalation_end(deadline: float, own_deadline: float | None) -> float:
    """When the escalation of a child whose deadline ``deadline`` passed must be over.

    Args:
        deadline: The child's deadline.
        own_deadline: The escalating process's own deadline, when it is itself
            stopping (None: it started the stop).

    Returns:
        ``deadline + ESCALATION_MARGIN``, but no later than ``own_deadline``.
    """
    end = deadline + ESCALATION_MARGIN
    return end if own_deadline is None else max(deadline, min(end, own_deadline))


def level_deadline(started: float, deadline: float, level: int, levels: int) -> float:
    """The deadline of the ``level``-th of ``levels`` groups of children stopped in order.

    A parent that declared an order among its children (`spawn`'s
    ``stop_order``) stops them a group at a time; each group gets an equal
    share of the time from the stop's start to ``deadline``, so the last
    group's deadline is the whole stop's and the bound of the tree holds.  A
    group whose children are all gone early hands the rest of its share on:
    the next group starts at once, with its deadline unchanged.

    Args:
        started: When the stop started (`time.monotonic`).
        deadline: When every group must be gone.
        level: 0 for the group stopped first.
        levels: How many groups there are.

    Returns:
        ``started + (deadline - started) * (level + 1) / levels``.
    """
    return started + (deadline - started) * (level + 1) / levels


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
