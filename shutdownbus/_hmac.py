"""HMAC-SHA256 (RFC 2104) on the interpreter's own SHA-256, and constant-time comparison.

Rules of this module:

* The protocol uses one digest, SHA-256, and one construction, HMAC; this
  module computes exactly that and nothing else.
* The standard `hmac` and `hashlib` modules load OpenSSL's libcrypto, which
  costs every member 3.6 MiB of memory and 2 ms of start-up for one digest.
  CPython's built-in SHA-256 (``_sha2`` from 3.12, ``_sha256`` before) does
  not; where neither exists (an unusual build) `hashlib` is used.  The
  construction is the one of CPython's own pure-Python HMAC (Lib/hmac.py),
  and the tests check it against `hmac.new` on random keys and messages.
* Secrets are compared with `compare_digest` only, never with ``==``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from typing import Any


def _sha256_constructor() -> Callable[[bytes | bytearray], Any]:
    # Python 3.12+, then 3.10 and 3.11; the likely one first: a module that
    # is not built in is looked for along the whole path.
    names = ("_sha2", "_sha256") if sys.version_info >= (3, 12) else ("_sha256", "_sha2")
    for name in names:
        try:
            return __import__(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


def _constant_time_comparison() -> Callable[[bytes, bytes], bool]:
    try:
        import _operator

        return _operator._compare_digest  # what hmac.compare_digest is
    except (ImportError, AttributeError):
        import hmac

        return hmac.compare_digest


_sha256 = _sha256_constructor()

#: Compare two byte strings in time that depends on their length only.
compare_digest = _constant_time_comparison()

_BLOCK_SIZE = 64  # SHA-256's block, in bytes
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))  # translate() tables: key XOR ipad / opad
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


def hmac_sha256(key: bytes | bytearray, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104).

    Args:
        key: The key, of any length (one longer than SHA-256's 64-byte block
            is hashed first, as RFC 2104 says).
        message: The bytes to authenticate.

    Returns:
        The 32-byte tag.
    """
    if len(key) > _BLOCK_SIZE:
        key = _sha256(key).digest()
    key = key.ljust(_BLOCK_SIZE, b"\0")
    inner = _sha256(key.translate(_INNER_PAD))
    inner.update(message)
    outer = _sha256(key.translate(_OUTER_PAD))
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest
