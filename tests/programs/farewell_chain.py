"""A chain of four whose third member takes its time to end after its stop, for the farewell tests.

    farewell_chain.py top ENDING TIMEOUT [MID]
    farewell_chain.py mid ENDING [MID]
    farewell_chain.py last ENDING
    farewell_chain.py tail ENDING

``top`` spawns ``mid``, which spawns ``last``, which spawns ``tail``; once
the chain is ready, top stops it with TIMEOUT and prints one JSON line: the
report, the pids of the chain still running when ``stop()`` returned, and
top's children left unreaped.  (``last`` has a child so that it says
farewell: a leaf does not.)

ENDING is what ``last`` does once the library's exit hook is done (its
farewell said): ``slow`` takes one second more to end, ``hang`` never ends,
``exit3`` exits with status 3.

MID is how ``mid`` spends its life: ``sleep`` (the default), ``wait`` (its
main thread waits for ``last`` with ``Child.wait()``), ``with`` (inside
``with spawn(...)``), or ``unsaid`` (started through a shell that drops
``SHUTDOWNBUS_FAREWELLS``, as a spawner that does not take farewells would).  It does it in an atexit handler registered
before ``join()``, so that it runs after the library's: the work a program's
own exit still does after its stop (logging's flush to a slow disk, a
library's atexit handler), or a process stuck there.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

import psutil

import shutdownbus


def slow() -> None:
    time.sleep(1.0)


def hang() -> None:
    while True:
        time.sleep(60)


def exit3() -> None:
    sys.stdout.flush()
    os._exit(3)


def runs(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def main() -> None:
    role, ending = sys.argv[1], sys.argv[2]
    if role == "top":
        how = sys.argv[4] if len(sys.argv) > 4 else "sleep"
        mid = [sys.executable, __file__, "mid", ending, how]
        if how == "unsaid":
            mid = ["sh", "-c", 'unset SHUTDOWNBUS_FAREWELLS; exec "$@"', "sh", *mid]
        child = shutdownbus.spawn(mid, ready_timeout=30)
        report = child.stop(timeout=float(sys.argv[3]))
        running = [e.pid for e in report.entries if runs(e.pid)]
        zombies = [p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]
        print(json.dumps({"report": report.to_dict(), "running": running, "zombies": zombies}), flush=True)
        return
    if role == "last":
        atexit.register({"slow": slow, "hang": hang, "exit3": exit3}[ending])
    shutdownbus.join(name=role)
    how = sys.argv[3] if role == "mid" else "sleep"
    below = {"mid": "last", "last": "tail"}.get(role)
    if below is None:
        shutdownbus.ready()
        time.sleep(3600)  # the stop ends it (StopRequested), and the process exits with status 0
        return
    child = shutdownbus.spawn([sys.executable, __file__, below, ending], ready_timeout=30)
    if how == "with":
        with child:  # its exit stops the child (the stop under way)
            shutdownbus.ready()
            time.sleep(3600)
    shutdownbus.ready()
    if how == "wait":
        child.wait()  # the stop interrupts it (StopRequested)
    time.sleep(3600)

if __name__ == "__main__":
    main()
