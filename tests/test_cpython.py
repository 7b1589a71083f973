"""Every use of CPython's internals (shutdownbus/_cpython.py), under every CPython found here.

`_cpython` reaches into private attributes of the standard library; each of
its functions is checked here against each CPython version this machine has
(the running one, and others found on PATH or under pyenv), so that a new
version that moved something shows up as a failing test.  The module is
loaded on its own (it needs nothing but the standard library), so the other
interpreters need no dependency installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UNDER_WINE

CPYTHON = Path(__file__).parent.parent / "shutdownbus" / "_cpython.py"

PROBE = r"""
import asyncio, concurrent.futures, importlib.util, json, os, subprocess, sys, threading, time

spec = importlib.util.spec_from_file_location("_cpython", sys.argv[1])
cp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cp)
found = {"version": list(sys.version_info[:2]), "known": cp._known_version()}

# 1. A plain Popen.wait() in the main thread: its wait for the child after a
#    KeyboardInterrupt is found and shortened.
main = threading.main_thread()
popen = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
result = {}
def look():
    while True:  # until the main thread is in popen.wait()
        frame = sys._current_frames()[main.ident]
        if cp.skip_popen_sigint_wait(frame):
            result["skipped"] = True
            break
        time.sleep(0.001)
    popen.stdin.close()
threading.Thread(target=look).start()
popen.wait()
found["popen_wait_found"] = result["skipped"]
found["popen_wait_shortened"] = getattr(popen, "_sigint_wait_secs", None) == 0

# 2. asyncio.run's SIGINT handler (3.11+), and its count of interrupts.
async def under_run():
    handler = cp.asyncio_runner_handler()
    return handler is not None, (cp.interrupts_seen(handler) if handler is not None else None)
found["runner_handler"], found["interrupts_seen"] = asyncio.run(under_run())
found["runner_handler_outside"] = cp.asyncio_runner_handler() is not None

# 3. Whether the main thread is handling a KeyboardInterrupt.
outside = {}
t = threading.Thread(target=lambda: outside.update(before=cp.handling_keyboard_interrupt(main)))
t.start()
t.join()
try:
    raise KeyboardInterrupt
except KeyboardInterrupt:
    t = threading.Thread(target=lambda: outside.update(during=cp.handling_keyboard_interrupt(main)))
    t.start()
    t.join()
found["handling_before"], found["handling_during"] = outside["before"], outside["during"]

# 4. The workers of a ProcessPoolExecutor whose task runs.
def task(started):
    open(started, "w").close()
    time.sleep(600)

if __name__ == "__main__" and sys.argv[2] == "executor":
    started = os.path.abspath("started")
    with concurrent.futures.ProcessPoolExecutor(2) as executor:
        future = executor.submit(task, started)
        while not os.path.exists(started):  # the task runs
            time.sleep(0.001)
        found["workers_terminated"] = cp.terminate_process_pool_workers()
        start = time.monotonic()
    found["executor_shutdown_seconds"] = time.monotonic() - start
    found["future_broken"] = type(future.exception()).__name__
if __name__ == "__main__":
    print(json.dumps(found))
"""


def interpreters() -> list[str]:
    """The CPython interpreters of distinct versions found on this machine."""
    found = {tuple(sys.version_info[:2]): sys.executable}
    candidates = [shutil.which(f"python3.{minor}") for minor in range(10, 16)]
    candidates += glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))
    for path in candidates:
        if not path:
            continue
        done = subprocess.run(
            [path, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        parts = done.stdout.split()
        if done.returncode == 0 and parts[:1] == ["cpython"] and (int(parts[1]), int(parts[2])) >= (3, 10):
            found.setdefault((int(parts[1]), int(parts[2])), path)
    return [found[v] for v in sorted(found)]


@pytest.mark.parametrize("python", interpreters())
def test_cpython_internals_are_where_shutdownbus_reaches_for_them(python: str, tmp_path: Path) -> None:
    # Under wine, ProcessPoolExecutor.shutdown() may hang once its workers ended (see WINE_EXECUTOR_HANG).
    executor = not UNDER_WINE
    done = subprocess.run(
        [python, "-c", PROBE, str(CPYTHON), "executor" if executor else "-"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    version = tuple(found["version"])
    assert found["known"], f"CPython {version} is not in _cpython.TESTED: check its internals, then add it"
    assert found["popen_wait_found"] and found["popen_wait_shortened"], found
    assert found["runner_handler"] == (version >= (3, 11)), found
    assert found["interrupts_seen"] in (0, None) and not found["runner_handler_outside"], found
    assert not found["handling_before"] and found["handling_during"], found
    if executor:
        assert found["workers_terminated"] >= 1 and found["future_broken"] == "BrokenProcessPool", found
        assert found["executor_shutdown_seconds"] < 30, found  # waited for the task (600 s) before
