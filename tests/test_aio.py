"""asyncio: the parent side drives children without blocking the loop; the member side hears stops."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROGRAMS, READY, log_lines, member_cmd

import shutdownbus
import shutdownbus.aio

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_async_spawn_ready_stop_without_blocking_the_loop(tmp_path: Path) -> None:
    log = tmp_path / "log"

    async def main() -> tuple[shutdownbus.StopReport, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        ticker = asyncio.create_task(tick())
        async with await shutdownbus.aio.spawn(member_cmd(log, "--depth", "1")) as child:
            await child.wait_ready(60)
            report = await child.stop()
            assert await child.wait() == 0
        ticker.cancel()
        return report, ticks

    report, ticks = asyncio.run(main())
    assert report.ok and len(report.entries) == 2, report
    assert ticks > 0  # the loop kept running while we waited
    assert "B cleanup" in log_lines(log)


def test_async_with_stops_the_tree_when_the_task_is_cancelled(tmp_path: Path) -> None:
    log = tmp_path / "log"

    async def main() -> None:
        async with await shutdownbus.aio.spawn(member_cmd(log), ready_timeout=READY):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert "B cleanup" in log_lines(log)


def test_member_that_awaits_stopped_handles_the_stop_itself() -> None:
    child = shutdownbus.spawn([sys.executable, str(EXAMPLES / "async_worker.py")], stdout=subprocess.PIPE, text=True)
    child.wait_ready(60)
    report = child.stop(reason="deploy")
    out, _ = child.communicate(timeout=60)
    assert report.ok, report
    assert "async-worker: stop (deploy); finishing the queued jobs" in out
    assert out.rstrip().endswith("async-worker: cleaned up")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.run cancels the main task on Ctrl-C since 3.11")
def test_stop_cancels_the_main_task_under_asyncio_run_like_ctrl_c() -> None:
    cmd = [sys.executable, str(PROGRAMS / "aio_cancelled.py")]
    child = shutdownbus.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.wait_ready(60)
    start = time.monotonic()
    report = child.stop()
    out, _ = child.communicate(timeout=60)
    assert out.splitlines() == ["cancelled", "finally ran"]
    assert report.entries[0].outcome == "stopped", report  # exited the way Ctrl-C ends asyncio.run
    assert time.monotonic() - start < 10
