"""Echo each line of stdin back on stdout, until EOF: a child that shows it is still alive.

    echo_until_eof.py
"""

from __future__ import annotations

import sys

for line in sys.stdin:
    sys.stdout.write(line)
    sys.stdout.flush()
