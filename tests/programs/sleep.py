"""``sleep SECONDS`` in Python, for the tests: a child that never joins the
bus, and runs wherever the tests run (Windows has no ``sleep``)."""

import sys
import time

time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 600)
