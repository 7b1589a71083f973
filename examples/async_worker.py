"""An asyncio member that cleans up when it is stopped.

    python examples/async_worker.py            # alone: Ctrl-C stops it
    (or started by a parent with shutdownbus.spawn / shutdownbus.aio.spawn)

It serves "jobs" from a queue in a few tasks; when a stop arrives (or
Ctrl-C), it stops taking jobs, lets the running ones finish, and says so.
It handles the stop itself by awaiting shutdownbus.aio.stopped(); without
that, the stop would cancel the main task, as Ctrl-C does under asyncio.run.
"""

from __future__ import annotations

import asyncio
import itertools

import shutdownbus
import shutdownbus.aio


async def worker(name: str, jobs: asyncio.Queue[int]) -> None:
    while True:
        job = await jobs.get()
        await asyncio.sleep(0.01)  # the "work"
        jobs.task_done()
        if job % 100 == 0:
            print(f"{name}: job {job} done", flush=True)


async def main() -> None:
    # interrupt_main=False: we handle stops ourselves (below), from the start,
    # even one that arrives before we first await stopped().
    shutdownbus.join(name="async-worker", interrupt_main=False)
    jobs: asyncio.Queue[int] = asyncio.Queue(maxsize=10)
    workers = [asyncio.create_task(worker(f"task-{i}", jobs)) for i in range(3)]

    async def produce() -> None:
        for n in itertools.count():
            await jobs.put(n)

    producer = asyncio.create_task(produce())
    shutdownbus.ready()
    print("async-worker: ready", flush=True)
    try:
        reason = await shutdownbus.aio.stopped()
        print(f"async-worker: stop ({reason}); finishing the queued jobs", flush=True)
    finally:
        producer.cancel()
        await jobs.join()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        print("async-worker: cleaned up", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
