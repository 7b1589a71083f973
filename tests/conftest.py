"""Fixtures shared by the tests: a private runtime directory and a process reaper.

Every test gets its own runtime directory for ipc endpoints, so tests can
run in parallel.  The reaper fails a test that leaves any process behind and
kills what it left, also when the test itself failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from shutdownbus import _platform, testing
from shutdownbus._tree import is_running

MEMBER = str(Path(__file__).parent / "programs" / "member.py")


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Short, because ipc socket paths are limited to about 100 bytes.
    path = tempfile.mkdtemp(prefix="sbt-", dir="/tmp" if os.path.isdir("/tmp") else None)
    monkeypatch.setenv("SHUTDOWNBUS_RUNTIME_DIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    before = testing.snapshot()
    yield
    leftover = testing.leaked_processes(since=before)
    if leftover:
        described = testing.describe(leftover)
        testing.kill(leftover)
        pytest.fail("the test left processes running:\n" + described)


def python(code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``sys.executable -c`` and return what it did."""
    kwargs.setdefault("timeout", 60)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def member_cmd(log: Path, *extra: str, name: str = "B") -> list[str]:
    """The command line of tests/programs/member.py."""
    return [sys.executable, MEMBER, "--name", name, "--log", str(log), *extra]


def log_lines(log: Path) -> list[str]:
    """The lines the members wrote to ``log``."""
    return log.read_text().splitlines() if log.exists() else []


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll for an event the test cannot be told about (a line in a log, a
    process started by a program we do not control)."""
    end = time.monotonic() + timeout
    done = threading.Event()
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(what)
        done.wait(0.005)


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` are gone (a zombie counts as gone, whoever its
    parent is); return those still running after ``timeout`` seconds."""
    watch = _platform.ExitWatch()
    for proc in procs:
        watch.add(proc.pid, lambda proc=proc: not is_running(proc))  # type: ignore[misc]
    end = time.monotonic() + timeout
    while (running := [p for p in procs if p.pid not in watch.exits]) and time.monotonic() < end:
        watch.wait(end - time.monotonic())
    watch.close()
    return [p for p in running if is_running(p)]


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            if is_running(psutil.Process(pid)):
                out.append(pid)
        except psutil.Error:
            pass
    return out
