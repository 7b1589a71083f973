"""Text that other processes chose, made safe to print on a terminal.

Rules of this module:

* Names and command lines come from other processes (a member's
  ``join(name=...)``, any process's command line, a registry entry): every
  table the package prints (the report, ``list``, ``tree``) passes them
  through `printable`.
* It imports nothing: ``list`` prints with it.
"""

from __future__ import annotations

# Control characters (C0, DEL, C1) and the bidirectional overrides that could
# make a line read as something else, each to its escape (``\x1b``).
_ESCAPES = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for span in ((0x00, 0x1F), (0x7F, 0x9F), (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069))
    for code in range(span[0], span[1] + 1)
}


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``), for a terminal.

    Names come from other processes (a member's ``join(name=...)``, any
    process's command line): a name that holds ``ESC[2J`` or ``ESC]0;...``
    must not clear the operator's screen or retitle the terminal.
    """
    return text.translate(_ESCAPES)
