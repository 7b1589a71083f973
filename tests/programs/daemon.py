"""A classic daemon: double-fork, new session, then sleep; prints the daemon's pid.

    daemon.py [SECONDS] [--linger]

The intermediate process exits at once; the original waits for it (so it
leaves no zombie) and exits after printing the daemon's pid.  With
--linger, the original does not wait for the intermediate (it stays a
zombie) and keeps running.
"""

from __future__ import annotations

import os
import sys
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
linger = "--linger" in sys.argv
r, w = os.pipe()
if os.fork() == 0:  # the intermediate
    os.setsid()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(r)
        os.close(w)
        time.sleep(seconds)
        os._exit(0)
    os.write(w, str(pid).encode())
    os._exit(0)
os.close(w)
daemon = int(os.read(r, 64))
os.close(r)
if linger:
    print(daemon, flush=True)
    time.sleep(seconds)
else:
    os.wait()
    print(daemon, flush=True)
