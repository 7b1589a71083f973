"""asyncio on the bus: spawn and stop children, and learn of stops, without blocking the loop.

Parent side::

    async with await shutdownbus.aio.spawn([sys.executable, "server.py"], ready_timeout=10) as server:
        ...                      # leaving the block stops the server's tree
    report = await child.stop()  # or explicitly

Member side: a program that awaits `stopped` handles the stop itself.
Otherwise, under ``asyncio.run()`` on Python 3.11 and later, a stop cancels
the main task the way Ctrl-C does there, so ``finally`` blocks and ``async
with`` exits run; ``asyncio.run`` then raises KeyboardInterrupt, as it does
for Ctrl-C (the stop report counts that exit as ``stopped``).  On Python
3.10, ``asyncio.run`` has no such handling for Ctrl-C either: the stop raises
`StopRequested` inside the running loop, which ends ``asyncio.run`` with it
after cancelling the remaining tasks.

The parent side runs the blocking calls (process start, waits) in worker
threads (`asyncio.to_thread`); the loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import _member
from ._child import Child
from ._child import spawn as _spawn
from ._report import StopReport


class AsyncChild:
    """A `Child` driven from asyncio.

    Attributes:
        child: The underlying `Child` (a `subprocess.Popen`).
    """

    def __init__(self, child: Child) -> None:
        self.child = child

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.child.pid

    @property
    def returncode(self) -> int | None:
        """The child's exit status, once it exited."""
        return self.child.returncode

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the child's ``ready()``; see `Child.wait_ready`."""
        await asyncio.to_thread(self.child.wait_ready, timeout)

    async def stop(self, reason: str = "stop", timeout: float | None = None) -> StopReport:
        """Stop the child's tree and wait until it is gone; see `Child.stop`."""
        return await asyncio.to_thread(self.child.stop, reason, timeout)

    async def wait(self) -> int:
        """Wait for the child to exit; returns its exit status."""
        return await asyncio.to_thread(self.child.wait)

    async def __aenter__(self) -> AsyncChild:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Shielded: a cancelled task must still stop its children.
        await asyncio.shield(self.stop())

    def __repr__(self) -> str:
        return f"<AsyncChild {self.child!r}>"


async def spawn(
    args: str | Sequence[str | os.PathLike[str]],
    *,
    ready_timeout: float | None = None,
    **kwargs: Any,
) -> AsyncChild:
    """Start a child on the bus; see `shutdownbus.spawn`.

    Args:
        args: As for `subprocess.Popen`.
        ready_timeout: If set, wait this long for the child's ``ready()``.
        **kwargs: Any `shutdownbus.spawn` / `subprocess.Popen` keyword argument.

    Returns:
        The running child.

    Raises:
        ChildExited: with ``ready_timeout``, the child exited before it was ready.
        TimeoutError: with ``ready_timeout``, the child was not ready in time.
    """
    return AsyncChild(await asyncio.to_thread(_spawn, args, ready_timeout=ready_timeout, **kwargs))


async def stopped() -> str:
    """Wait until a stop arrives; returns its reason.

    While a task awaits this, a stop does not interrupt the main thread or
    cancel the main task: the program handles the stop itself.  A stop that
    arrives before the first await is only covered if the program joined with
    ``shutdownbus.join(interrupt_main=False)``, which is the way to say "I
    handle stops myself" from the start.  A stop that already arrived
    completes this at once.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(reason: str) -> None:
        if not future.done():
            future.set_result(reason)

    def arrived(reason: str) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, reason)

    with _member.handled_elsewhere():
        _member.on_stop(arrived)
        return await future
