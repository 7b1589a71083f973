"""A deliberately broken member: it hands its children its own deadline, keeping no time for itself.

The conformance runner must fail it (tests/test_conformance.py).  Otherwise
it is the contract's Python member.
"""

from __future__ import annotations

import sys

from shutdownbus import _member
from shutdownbus.conformance import member


def _whole(own_deadline: float, now: float) -> float:
    return own_deadline


_member.children_deadline = _whole  # type: ignore[attr-defined]  # the defect: no time kept for the escalation and its own exit
sys.exit(member.main(command=[sys.executable, __file__]))
