"""A deliberately broken member: it never checks a proof or a tag (every HMAC comparison says yes).

The conformance runner must fail it (tests/test_conformance.py).  Otherwise
it is the contract's Python member.
"""

from __future__ import annotations

import sys

from shutdownbus import _protocol
from shutdownbus.conformance import member


def _always_equal(a: bytes, b: bytes) -> bool:
    return True


_protocol.compare_digest = _always_equal  # type: ignore[attr-defined]  # the defect
sys.exit(member.main(command=[sys.executable, __file__]))
