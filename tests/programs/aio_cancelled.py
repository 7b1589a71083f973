"""A member whose main task, under asyncio.run, awaits a long sleep.

    aio_cancelled.py

Prints ``cancelled`` when that task is cancelled, then ``finally ran`` from
its ``finally:`` (after one more await).
"""

from __future__ import annotations

import asyncio

import shutdownbus


async def main() -> None:
    shutdownbus.join()
    shutdownbus.ready()
    try:
        await asyncio.sleep(600)
    except asyncio.CancelledError:
        print("cancelled", flush=True)
        raise
    finally:
        await asyncio.sleep(0)
        print("finally ran", flush=True)


asyncio.run(main())
