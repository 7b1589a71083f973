"""One process of a benchmark tree: ``python _tree.py MODE DEPTH FANOUT [FLAGS]``.

FANOUT is the number of children of every process above the leaves, or one
number per level, comma-separated (``8,8,7``: 8 children, 8 grandchildren
each, 7 great-grandchildren each; 521 processes).

MODE:
  bus     a shutdownbus member: spawns its children on the bus, waits for them
          to be ready, calls ready(), sleeps; a stop ends the sleep, the
          (trivial) cleanup runs, and it exits through the normal shutdown.
  signal  the reference article's way: a SIGTERM handler that terminates the
          children, waits for them and calls sys.exit() (run once: it then
          ignores SIGTERM).
  plain   the floor: default SIGTERM action, nothing to clean up.

For signal and plain, readiness goes up through stdout: a process writes one
byte once its whole subtree is up.

FLAGS (comma-separated, for the side-by-side with other supervisors,
benchmarks/bench_peers.py): ``root`` marks the top process, which creates
the file ``$BENCH_READY`` once its whole tree is up (whatever holds its
stdout); ``stubborn`` goes to the first child of each level, and makes the
leaf that gets it ignore its stop (SIGTERM ignored; a member also ignores the
bus's stop).  With ``$BENCH_CLEANUPS`` set to a directory, each process
that runs its cleanup creates a file there named by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def cleaned_up() -> None:
    where = os.environ.get("BENCH_CLEANUPS")
    if where:
        os.close(os.open(os.path.join(where, str(os.getpid())), os.O_CREAT | os.O_WRONLY, 0o600))


def tree_is_up(flags: set[str]) -> None:
    if "root" in flags and os.environ.get("BENCH_READY"):
        os.close(os.open(os.environ["BENCH_READY"], os.O_CREAT | os.O_WRONLY, 0o600))


def main() -> None:
    mode, depth = sys.argv[1], int(sys.argv[2])
    fanouts = [int(n) for n in sys.argv[3].split(",")]
    fanout, theirs_below = fanouts[0], ",".join(map(str, fanouts[1:] or fanouts))
    flags = set(sys.argv[4].split(",")) if len(sys.argv) > 4 else set()
    stubborn = "stubborn" in flags and depth == 0

    def child_args(i: int) -> list[str]:
        theirs = "stubborn" if "stubborn" in flags and i == 0 else ""
        return [sys.executable, __file__, mode, str(depth - 1), theirs_below, theirs]

    if mode == "bus":
        import shutdownbus

        shutdownbus.join()
        for i in range(fanout if depth > 0 else 0):
            shutdownbus.spawn(child_args(i), ready_timeout=120)
        shutdownbus.ready()
        tree_is_up(flags)
        try:
            time.sleep(3600)
        finally:
            if stubborn:  # ignores its stop: only escalation ends it
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                while True:
                    try:
                        time.sleep(3600)
                    except BaseException:  # noqa: S112 (the stop, again)
                        continue
            cleaned_up()  # the trivial cleanup; the children were stopped by the bus
        return
    kids = [subprocess.Popen(child_args(i), stdout=subprocess.PIPE) for i in range(fanout if depth > 0 else 0)]
    for kid in kids:
        assert kid.stdout is not None
        kid.stdout.read(1)
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "signal":

        def on_term(signum: int, frame: object) -> None:
            # Once: a group signal (tini -g, killpg, stopasgroup) reaches every
            # process while its parent forwards one too, and a second run of
            # this handler inside the first would wait on a Popen whose wait
            # the first holds (its lock is not reentrant): a deadlock.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            for kid in kids:
                kid.terminate()
            for kid in kids:
                kid.wait()
            cleaned_up()
            sys.exit()

        signal.signal(signal.SIGTERM, on_term)
    sys.stdout.buffer.write(b"r")
    sys.stdout.flush()
    tree_is_up(flags)
    time.sleep(3600)


if __name__ == "__main__":
    main()
