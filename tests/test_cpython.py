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
from conftest import PROGRAMS, UNDER_WINE

CPYTHON = Path(__file__).parent.parent / "shutdownbus" / "_cpython.py"

PROBE = str(PROGRAMS / "cpython_probe.py")


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
        [python, PROBE, str(CPYTHON), "executor" if executor else "-"],
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
    if sys.platform != "win32":
        assert (found["marked"], found["marked_while_waited"]) == (True, False), found
        assert found["kept_returncode"] == 3 and found["kept_zombie"], found
    assert found["runner_handler"] == (version >= (3, 11)), found
    assert found["interrupts_seen"] in (0, None) and not found["runner_handler_outside"], found
    assert not found["handling_before"] and found["handling_during"], found
    if executor:
        assert found["workers_terminated"] >= 1 and found["future_broken"] == "BrokenProcessPool", found
        assert found["executor_shutdown_seconds"] < 30, found  # waited for the task (600 s) before


@pytest.mark.parametrize("python", interpreters())
def test_exit_without_teardown_waits_runs_the_handlers_and_flushes(python: str) -> None:
    """`_cpython.exit_without_teardown`: what the interpreter's exit does
    before its teardown (the threads, the atexit handlers, the buffered
    output, the status), and not the teardown."""
    program = str(PROGRAMS / "exit_without_teardown.py")
    done = subprocess.run([python, program, str(CPYTHON)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 7, done
    assert done.stdout.split(", ") == ["buffered", "thread finished\natexit ran\n"], done.stdout
