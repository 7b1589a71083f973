"""Outcome: what happened to one process during a stop.

Rules of this module:

* It imports `enum` only: the protocol (which checks report entries against
  `OUTCOMES`), the report, the process trees and ``list`` load it.
"""

from __future__ import annotations

import enum


class Outcome(str, enum.Enum):
    """What happened to one process during a stop: a report entry's ``outcome``.

    A string enum, so each is equal to its value (``Outcome.STOPPED ==
    "stopped"``) and is written as it on the wire and in JSON.
    """

    STOPPED = "stopped"  #: exited after the stop, without escalation
    TERMINATED = "terminated"  #: still running at its deadline; went after the polite OS request
    KILLED = "killed"  #: had to be killed
    EXITED = "exited"  #: had already exited before the stop
    FAILED = "failed"  #: non-zero exit or a crash during its cleanup
    LOST = "lost"  #: its own parent was lost during the stop, and it stopped on its own
    #: its state could not be read (then signalled by pid), or it could not be tied to the tree (not signalled)
    UNCHECKED = "unchecked"

    def __str__(self) -> str:
        return self.value


OUTCOMES = tuple(outcome.value for outcome in Outcome)
