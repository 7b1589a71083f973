"""A copy of itself not yet exec'd, beside a child that was: for the names of a tree.

Forks a child that runs on as a copy of this program (its command line is
this program's) until it gets SIGUSR1, then execs ``sleep.py 300``; starts
``sleep.py 301`` the usual way (fork and exec at once).  Prints "up" once
both exist, then waits for both.  POSIX only.
"""

import os
import signal
import subprocess
import sys

SLEEP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sleep.py")

# Blocked before the fork, so that a SIGUSR1 sent as soon as the child exists is kept for its sigwait.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
forked = os.fork()
if forked == 0:
    signal.sigwait({signal.SIGUSR1})
    os.execv(sys.executable, [sys.executable, SLEEP, "300"])
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
started = subprocess.Popen([sys.executable, SLEEP, "301"])
print("up", flush=True)
started.wait()
os.waitpid(forked, 0)
