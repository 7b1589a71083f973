"""A deliberately broken member: it hands its children its whole budget instead of `child_budget` of it.

The conformance runner must fail it (tests/test_conformance.py).  Otherwise
it is the contract's Python member.
"""

from __future__ import annotations

import sys

from shutdownbus import _member
from shutdownbus.conformance import member


def _whole(budget: float) -> float:
    return budget


_member.children_budget = _whole  # the defect: no time kept for the escalation and its own cleanup
sys.exit(member.main(command=[sys.executable, __file__]))
