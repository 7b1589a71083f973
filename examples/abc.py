"""The reference article's A -> B -> C process tree, stopped without signals.

    python examples/abc.py        # A starts B, B starts C; press Ctrl-C to stop all three
    python examples/abc.py term   # after a second, A stops B's subtree through the bus

Ctrl-C stays native: every process gets its own KeyboardInterrupt from the
terminal.  "A terminates B" is a message instead of SIGTERM (or, on Windows,
CTRL_BREAK_EVENT and CREATE_NEW_PROCESS_GROUP): B forwards it to C, both run
their cleanup, and A prints what happened to each process.
"""

from __future__ import annotations

import sys
import time

import shutdownbus

NEXT = {"A": "B", "B": "C"}


def main(name: str, terminate: bool) -> None:
    shutdownbus.join(name=name)  # does nothing in A, which nobody spawned
    print(f"{name} started", flush=True)
    child = None
    try:
        if name in NEXT:
            # Wait until the child (and so its own child) is up before going on.
            child = shutdownbus.spawn([sys.executable, __file__, NEXT[name]], name=NEXT[name], ready_timeout=30)
        shutdownbus.ready()
        if name == "A":
            print("A: the tree is up" + ("" if terminate else "; press Ctrl-C to stop it"), flush=True)
        if terminate and child is not None:
            time.sleep(1)
            report = child.stop(reason="A terminates B")
            print("A ended; what happened to B's tree:", flush=True)
            print(report, flush=True)
        else:
            time.sleep(60)  # wait for Ctrl-C (or a stop from our parent)
            print(f"{name} done", flush=True)
    except KeyboardInterrupt as exc:  # Ctrl-C, or shutdownbus.StopRequested, which is one
        got = f"a stop ({exc.reason})" if isinstance(exc, shutdownbus.StopRequested) else "KeyboardInterrupt"
        print(f"{name} got {got}", flush=True)
    finally:
        if child is not None:
            child.wait()
        print(f"{name} cleaned up", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["term"]:
        main("A", terminate=True)
    elif args and args[0] in ("B", "C"):
        main(args[0], terminate=False)
    else:
        main("A", terminate=False)
