"""The pytest plugin, tested with pytest's own pytester (in a subprocess each)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import WINE_EXECUTOR_HANG, log_lines, logged

pytest_plugins = ["pytester"]

MEMBER = str(Path(__file__).parent / "programs" / "member.py")
POOL_MEMBER = str(Path(__file__).parent / "programs" / "pool_member.py")

# A server for the inner tests: it joins and waits to be stopped.
SERVER = str(Path(__file__).parent / "programs" / "server.py")


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(
        f"import sys\nSERVER = [sys.executable, {SERVER!r}]\n"
        "import pytest\n@pytest.fixture(scope='session')\ndef server_cmd():\n    return SERVER\n"
    )
    return pytester


def test_passing_test_stops_its_server(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_ok="""
def test_talks_to_server(bus, server_cmd):
    server = bus.spawn(server_cmd, ready_timeout=30)
    assert server.poll() is None
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_server_that_never_becomes_ready(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_never="""
import sys
def test_timeout(bus, server_cmd):
    bus.spawn(server_cmd + ["--never-ready"], ready_timeout=0.5)

def test_exits_first(bus):
    bus.spawn([sys.executable, "-c", "raise SystemExit(7)"], ready_timeout=30)
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*TimeoutError: child*did not call shutdownbus.ready() within 0.5 s*"])
    result.stdout.fnmatch_lines(["*ChildExited: child*exited with code 7 before it was ready*"])


def test_failing_test_still_stops_its_server(inner: pytest.Pytester, tmp_path: Path) -> None:
    log = tmp_path / "log"
    inner.makepyfile(
        test_fails=f"""
import sys
def test_fails(bus):
    bus.spawn([sys.executable, {MEMBER!r}, "--log", {str(log)!r}], ready_timeout=30)
    assert False, "the test failed"
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "m got stop teardown" in log_lines(log)


@pytest.mark.parametrize("kind", ["pool", pytest.param("executor", marks=WINE_EXECUTOR_HANG)])
def test_a_server_with_a_process_pool_passes_its_teardown(inner: pytest.Pytester, tmp_path: Path, kind: str) -> None:
    """Before, multiprocessing's resource tracker was killed at the deadline
    and the teardown failed the test with 'did not stop cleanly'."""
    inner.makepyfile(
        test_pool=f"""
import sys
def test_uses_the_pool_server(bus):
    bus.spawn([sys.executable, {POOL_MEMBER!r}, {kind!r}, "spawn", "busy", {str(tmp_path / "log")!r}], ready_timeout=60)
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_leak_is_detected_and_reported(inner: pytest.Pytester) -> None:
    """A process the test started without the bus and left running.  (A
    process that a server starts as it exits may escape its stop or not,
    depending on whether the stop looked at the tree meanwhile: no test of
    the leak check can rest on it.)"""
    inner.makepyfile(
        test_leak="""
import subprocess, sys
def test_leaks(bus, server_cmd):
    bus.spawn(server_cmd, ready_timeout=30)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*processes survived the stop:*", "*import time; time.sleep(300)*"])


def test_failure_outcome_fails_unless_allowed_and_the_timeout_option(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_outcome=f"""
import sys
CMD = [sys.executable, {MEMBER!r}, "--log", "log", "--on-stop", "exit1"]
def test_not_allowed(bus):
    assert bus.stop_timeout == 3.5
    bus.spawn(CMD, ready_timeout=30)

def test_allowed(bus):
    bus.spawn(CMD, ready_timeout=30, allow_failure=True)
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "--shutdownbus-stop-timeout", "3.5")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*did not stop cleanly*", "*failed*"])


def test_session_bus_and_ini_option(inner: pytest.Pytester, tmp_path: Path) -> None:
    """A server on the session bus serves every test and is stopped once, at the end of the session."""
    log = tmp_path / "log"
    inner.makeini("[pytest]\nshutdownbus_stop_timeout = 2.5\n")
    inner.makepyfile(
        test_session=f"""
import sys
import pytest

@pytest.fixture(scope="session")
def shared(session_bus):
    return session_bus.spawn([sys.executable, {MEMBER!r}, "--log", {str(log)!r}], ready_timeout=30)

def test_one(shared, session_bus, bus):
    assert session_bus.stop_timeout == 2.5 and bus.stop_timeout == 2.5 and shared.stop_timeout == 2.5
    assert shared.poll() is None

def test_two(shared):
    assert shared.poll() is None
"""
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert len(logged(log, "started")) == 1  # one server for both tests
    assert logged(log, "got stop") == [("m", "teardown")]  # stopped once, after the last test
    assert "m cleanup" in log_lines(log)
