"""``python -m shutdownbus.conformance.member``: the Python member program of the conformance contract.

It follows docs/conformance.md: it joins, spawns one child of itself when
``SHUTDOWNBUS_CONFORMANCE_CHILD`` is a positive number N (that child gets
N - 1), calls ready, and on its stop writes ``PID stop BUDGET REASON`` and
``PID cleanup`` to the events file.  With ``--child CMD ARGS...`` the child is
``CMD ARGS...`` instead (the mixed trees of the tests).  Ctrl-C (a plain
KeyboardInterrupt) writes ``PID interrupted`` before the cleanup.  The broken members
of the tests reuse `main` with one defect each.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import shutdownbus

from .. import _member

ENV_EVENTS = "SHUTDOWNBUS_CONFORMANCE_EVENTS"
ENV_CHILD = "SHUTDOWNBUS_CONFORMANCE_CHILD"


def log(line: str) -> None:
    """Append ``PID LINE`` to the events file, in one write (lines of many processes never mix)."""
    path = os.environ.get(ENV_EVENTS)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{os.getpid()} {line}\n".encode())
    finally:
        os.close(fd)


def _on_stop(reason: str) -> None:
    # The budget of the stop acted on: from its arrival to this process's deadline (both set before the callbacks).
    deadline, arrival = _member._state.stop_deadline, _member._state.stop_received_at
    budget = 0.0 if deadline is None or arrival is None else deadline - arrival
    log(f"stop {budget:.3f} {reason}")


def main(cleanup: Callable[[], None] | None = None, command: list[str] | None = None) -> int:
    """Run the member of the contract.

    Args:
        cleanup: What the program does after its stop, before it exits (default: nothing).
        command: How to start a child of itself (default: this module).

    Returns:
        The exit status.
    """
    try:
        joined = shutdownbus.join(name="conformance-member")
    except shutdownbus.ChannelError as exc:
        print(f"conformance member: {exc}", file=sys.stderr)
        return 2
    if not joined:
        print("conformance member: not started on a channel (run it under python -m shutdownbus.conformance)",
              file=sys.stderr)
        return 2
    shutdownbus.on_stop(_on_stop)
    try:
        depth = os.environ.get(ENV_CHILD, "0")
        if depth.isdigit() and int(depth) > 0:
            env = dict(os.environ, **{ENV_CHILD: str(int(depth) - 1)})
            cmd = command or [sys.executable, "-m", "shutdownbus.conformance.member"]
            if "--child" in sys.argv:
                cmd = sys.argv[sys.argv.index("--child") + 1 :]
            child = shutdownbus.spawn(cmd, env=env, ready_timeout=30, name="conformance-child")
            log(f"spawned {child.pid}")
        shutdownbus.ready()
        while True:
            time.sleep(3600)
    except shutdownbus.StopRequested:
        pass
    except KeyboardInterrupt:  # Ctrl-C in a terminal: it reaches every process natively
        log("interrupted")
    finally:
        log("cleanup")
        if cleanup is not None:
            cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
