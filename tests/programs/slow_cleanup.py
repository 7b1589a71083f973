"""A member whose cleanup takes a while: until a file exists, or some seconds.

``slow_cleanup.py --until FILE`` or ``--seconds S``; prints ``ready PID`` once
joined, then sleeps; on its stop (or Ctrl-C) prints ``cleaning up`` and takes
that long before it exits 0.
"""

from __future__ import annotations

import argparse
import os
import time

import shutdownbus


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--until")
    p.add_argument("--seconds", type=float, default=0.0)
    args = p.parse_args()
    shutdownbus.join(name="slowpoke")
    shutdownbus.ready()
    try:
        print(f"ready {os.getpid()}", flush=True)  # in the try: Ctrl-C may come as soon as it is read
        time.sleep(600)
    except KeyboardInterrupt:  # Ctrl-C, or shutdownbus.StopRequested, which is one
        print("cleaning up", flush=True)
        end = time.monotonic() + (600 if args.until else args.seconds)
        while time.monotonic() < end and not (args.until and os.path.exists(args.until)):
            time.sleep(0.02)


if __name__ == "__main__":
    main()
