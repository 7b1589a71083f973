"""Fixtures shared by the tests: a private runtime directory and a process reaper.

Every test gets its own runtime directory for ipc endpoints, so tests can
run in parallel.  The reaper fails a test that leaves any process behind and
kills what it left, also when the test itself failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from hypothesis import HealthCheck, settings

from shutdownbus import _platform, _transport, testing
from shutdownbus._processes import is_running

PROGRAMS = Path(__file__).parent / "programs"
#: How long a test waits for a child's ready(): a start-up on a loaded machine
#: (under wine, seconds), never a latency bound.
READY = 60
MEMBER = str(PROGRAMS / "member.py")
WINDOWS = sys.platform == "win32"
LINUX = sys.platform.startswith("linux")

# A run started in the background by a non-interactive shell (`cmd &`, nohup,
# some CI runners) inherits SIGINT ignored, and an ignored signal stays
# ignored across exec: no child would get Ctrl-C's KeyboardInterrupt, nor
# asyncio.run its SIGINT handler.  The Ctrl-C tests are about what a terminal
# user has: a handler here is reset to the default in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

def _under_wine() -> bool:
    if not WINDOWS:
        return False
    import ctypes

    try:
        return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")  # type: ignore[attr-defined,unused-ignore]
    except OSError:
        return False


#: Windows emulated by wine (``make test-windows``), where a few things differ from Windows.
UNDER_WINE = _under_wine()
#: For the tests whose members shut a ProcessPoolExecutor down after a stop ended its workers.
WINE_EXECUTOR_HANG = pytest.mark.skipif(
    UNDER_WINE,
    reason="wine: ProcessPoolExecutor.shutdown() may hang when its workers ended just before, without"
    " shutdownbus too (tools/windows/repro/executor_shutdown_hang.py); a real Windows machine must tell",
)

#: The return code of a process ended by `kill`: SIGKILL on POSIX; on Windows
#: psutil's TerminateProcess, which sets exit code 15.
KILLED = -signal.SIGKILL if hasattr(signal, "SIGKILL") else 15


def kill(pid: int) -> None:
    """End ``pid`` at once, if it still runs (SIGKILL; Windows: TerminateProcess)."""
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


def sleep_cmd(seconds: float = 600) -> list[str]:
    """A child that never joins and sleeps (``sleep``, which Windows lacks, in Python)."""
    return [sys.executable, str(PROGRAMS / "sleep.py"), str(seconds)]


def console_script() -> list[str]:
    """The ``shutdownbus`` command: the console script installed next to the
    interpreter, else ``python -m shutdownbus`` (the Windows python of ``make
    test-windows`` runs shutdownbus from the source tree, with no launcher)."""
    script = Path(sys.executable).parent / ("shutdownbus.exe" if WINDOWS else "shutdownbus")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shutdownbus"]


SCRIPT = console_script()


def fuzz_examples(default: int) -> int:
    """The budget of a fuzz test: ``SHUTDOWNBUS_FUZZ_EXAMPLES`` when set
    (``make fuzz`` sets 20000), else ``default``, a short run for ``make test``."""
    return int(os.environ.get("SHUTDOWNBUS_FUZZ_EXAMPLES") or default)


# The property tests (tests/test_protocol.py) take their number of examples
# from this profile: 100 each in `make test`, where 1000 made one of them take
# up to a third of the suite's time; `make fuzz` runs the long budget.
settings.register_profile(
    "shutdownbus",
    max_examples=fuzz_examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("shutdownbus")


#: multiprocessing's start methods, each skipped where the OS lacks it (Windows: spawn only).
START_METHODS = [
    pytest.param(
        method,
        marks=pytest.mark.skipif(
            method not in multiprocessing.get_all_start_methods(), reason=f"no {method} start method on this OS"
        ),
    )
    for method in ("fork", "spawn", "forkserver")
]


def use_transport(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """Make the channels of this test use ``transport``; skip where it is not available."""
    monkeypatch.setenv("SHUTDOWNBUS_TRANSPORT", transport)
    if transport == "ipc" and _transport.use_tcp():
        pytest.skip("no ipc transport here: Windows uses tcp on loopback (docs/security.md)")


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


def logged(log: Path, event: str) -> list[tuple[str, str]]:
    """``(NAME, VALUE)`` of each line ``NAME EVENT VALUE`` of ``log``, in order.

    The programs of tests/programs log so, one line per event: member.py
    ``B.0 started 1234``, ``B got stop deploy``, ``B cleanup`` (VALUE ``""``);
    outliving.py ``worker up 1234``.  ``event`` may be several words
    (``"got stop"``).
    """
    found = []
    for line in log_lines(log):
        name, _, rest = line.partition(" ")
        if rest == event or rest.startswith(event + " "):
            found.append((name, rest[len(event) + 1 :]))
    return found


def started_pids(log: Path) -> dict[str, int]:
    """Name to pid of every member that logged its start (``NAME started PID``)."""
    return {name: int(pid) for name, pid in logged(log, "started")}


def _tree_of(pid: int) -> set[tuple[int, float]]:
    """``(pid, create_time)`` of ``pid`` and its descendants, as in `testing.Snapshot`."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return set()
    tree = set()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            tree.add((p.pid, p.create_time()))
    return tree


P = TypeVar("P", bound="subprocess.Popen[Any]")


@contextlib.contextmanager
def reaped(proc: P, *, descendants: bool = False) -> Iterator[P]:
    """Leave no process behind, whatever happens in the block.

    On the way out ``proc`` is killed if it still runs, waited for (no
    zombie) and its pipes closed.  With ``descendants``, first every process
    below this one that still runs is killed, deepest first, if it started
    during the block or was in ``proc``'s tree when the block began: the
    processes ``proc`` started, and those it left behind (on Linux this
    process, a subreaper, adopted them).

    Yields:
        ``proc``.
    """
    before = None
    if descendants:  # what runs now, but for proc's tree: that may be there already
        now = testing.snapshot()
        before = testing.Snapshot(now.pid, now.known - _tree_of(proc.pid))
    try:
        yield proc
    finally:
        left = [] if before is None else [p for p in testing.leaked_processes(since=before) if p.pid != proc.pid]
        for p in left:
            kill(p.pid)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if left:
            wait_gone(left, 30)


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


def commands_of(pid: int, name: str = "sleep") -> list[psutil.Process]:
    """The children of ``pid`` that run ``name`` (a process between its fork
    and its exec runs its parent's program: the shell that starts a guard,
    say, at run's first spawn)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.name() == name:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found
