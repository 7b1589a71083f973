"""A spawner for the tests that kill it hard: members and non-members below it.

    hard_killed_spawner.py LOG

It spawns a member ``M`` (tests/programs/member.py, which spawns a member
``M.0`` and starts a plain subprocess) and a non-member (sleepers.py: a
child and a grandchild), prints ``ready`` once all of them run, and waits on
its stdin until it is killed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import shutdownbus

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    log = sys.argv[1]
    member = [sys.executable, os.path.join(HERE, "member.py"), "--name", "M", "--log", log]
    shutdownbus.spawn([*member, "--depth", "1", "--grandchild", "plain"], ready_timeout=120)
    other = shutdownbus.spawn(
        [sys.executable, os.path.join(HERE, "sleepers.py"), "[null]"], stdout=subprocess.PIPE, text=True
    )
    assert other.stdout is not None and other.stdout.readline() == "up\n"
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
