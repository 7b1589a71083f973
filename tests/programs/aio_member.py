"""A member written with asyncio.run(), as a user writes one.

    aio_member.py [--plain]

With --plain it has a plain subprocess (``sleep``) running when the stop
comes.  It prints ``ready`` once it called ready() and ``cleaned up`` from
its ``finally:``.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import subprocess
import sys

import shutdownbus


async def main() -> None:
    shutdownbus.join()
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"]) if "--plain" in sys.argv else None
    try:
        shutdownbus.ready()
        print("ready", flush=True)
        await asyncio.sleep(600)
    finally:
        print("cleaned up", flush=True)
        del plain  # left running on purpose: the exit sweeps it


if hasattr(signal, "SIGUSR1"):
    faulthandler.register(signal.SIGUSR1)  # a test that sees it hang asks for its stacks
asyncio.run(main())
