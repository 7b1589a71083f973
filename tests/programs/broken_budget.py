"""A deliberately broken member: its cleanup takes 5 s, whatever budget its stop gave it.

The conformance runner must fail it (tests/test_conformance.py).  Otherwise
it is the contract's Python member.
"""

from __future__ import annotations

import sys
import threading

from shutdownbus.conformance import member


def _slow_cleanup() -> None:
    threading.Event().wait(5.0)  # the defect: the budget is ignored


sys.exit(member.main(cleanup=_slow_cleanup, command=[sys.executable, __file__]))
