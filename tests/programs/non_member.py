"""A child that never joins: prints ``up``, then sleeps.

    non_member.py
"""

from __future__ import annotations

import time

print("up", flush=True)
time.sleep(600)
