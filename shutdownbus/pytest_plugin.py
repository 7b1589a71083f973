"""The pytest plugin: fixtures that start servers on the bus and stop them.

Installed with shutdownbus (the ``pytest11`` entry point); nothing to enable.

* ``bus`` (function scope) and ``session_bus`` (session scope): a `Bus`, whose
  `Bus.spawn` starts a child like `shutdownbus.spawn` (``ready_timeout``
  waits for its ``ready()``).  At teardown every tree spawned through it is
  stopped, all at once, with the stop guarantees; the test then errors if a
  process of those trees survived (with pids and command lines) or if a
  process of them ended with a failure during that stop (non-zero status,
  escalation), unless its child was spawned with ``allow_failure=True``.
* ``--shutdownbus-stop-timeout S`` / ini ``shutdownbus_stop_timeout``: the
  default stop timeout of children spawned through the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from . import _stop, testing
from ._child import Child, spawn
from ._deadlines import DEFAULT_STOP_TIMEOUT
from ._outcome import Outcome
from ._report import StopReport
from ._tree import ProcessTable, descendant_pids

#: Outcomes that fail a test at teardown (unless the child was spawned with allow_failure).
FAILURES = (Outcome.FAILED, Outcome.TERMINATED, Outcome.KILLED, Outcome.LOST, Outcome.UNCHECKED)


class Bus:
    """Children spawned for a test or a session, stopped and checked at teardown.

    Args:
        stop_timeout: The default ``stop_timeout`` of the children.
    """

    def __init__(self, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        self.stop_timeout = stop_timeout
        self.children: list[Child] = []
        self._allow_failure: set[int] = set()
        self._before = testing.snapshot()

    def spawn(
        self,
        args: str | Sequence[str | os.PathLike[str]],
        *,
        ready_timeout: float | None = None,
        allow_failure: bool = False,
        **kwargs: Any,
    ) -> Child:
        """Start a child on the bus; it is stopped at teardown.

        Args:
            args: As for `shutdownbus.spawn`.
            ready_timeout: Wait this long for the child's ``ready()``.
            allow_failure: Do not fail the test if this child ends with a failure outcome.
            **kwargs: Any `shutdownbus.spawn` / `subprocess.Popen` keyword argument.

        Returns:
            The running child.

        Raises:
            ChildExited: with ``ready_timeout``, the child exited before it was ready.
            TimeoutError: with ``ready_timeout``, the child was not ready in time.
        """
        kwargs.setdefault("stop_timeout", self.stop_timeout)
        child = spawn(args, **kwargs)
        self.children.append(child)
        if allow_failure:
            self._allow_failure.add(child.pid)
        if ready_timeout is not None:
            child.wait_ready(ready_timeout)
        return child

    def stop_all(self) -> dict[int, StopReport]:
        """Stop every child spawned here, all at once.

        Returns:
            Each child's report, by pid (the same report if it was stopped already).
        """
        if not self.children:
            return {}
        timeout = max(c.stop_timeout for c in self.children)
        reports = _stop.stop_children(self.children, "teardown", timeout)
        return {c.pid: r for c, r in zip(self.children, reports, strict=True)}

    def teardown(self, ignore: set[int] | frozenset[int] = frozenset()) -> None:
        """Stop everything, then fail if anything survived or failed.

        Args:
            ignore: Pids of processes not to count as leaked.

        Raises:
            pytest.fail.Exception: processes survived, or a child failed.
        """
        reports = self.stop_all()
        problems = []
        leaked = testing.leaked_processes(self._before, ignore=ignore)
        if leaked:
            problems.append("processes survived the stop:\n" + _indent(testing.describe(leaked)))
            testing.kill(leaked)
        for pid, report in reports.items():
            # A child that had exited before the teardown is the test's business.
            if pid not in self._allow_failure and any(e.outcome in FAILURES for e in report.entries):
                problems.append(f"child {pid} did not stop cleanly:\n" + _indent(report.format_table()))
        if problems:
            pytest.fail("shutdownbus teardown: " + "\n".join(problems), pytrace=False)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--shutdownbus-stop-timeout`` and its ini twin."""
    help_text = f"default stop timeout, in seconds, of children spawned by the bus fixtures ({DEFAULT_STOP_TIMEOUT:g})"
    parser.addoption("--shutdownbus-stop-timeout", type=float, default=None, help=help_text)
    parser.addini("shutdownbus_stop_timeout", help_text, default=None)


def _stop_timeout(config: pytest.Config) -> float:
    value = config.getoption("--shutdownbus-stop-timeout")
    if value is None:
        value = config.getini("shutdownbus_stop_timeout") or DEFAULT_STOP_TIMEOUT
    try:
        return float(value)
    except ValueError:
        raise pytest.UsageError(f"shutdownbus_stop_timeout must be a number of seconds, not {value!r}") from None


@pytest.fixture
def bus(request: pytest.FixtureRequest, session_bus: Bus) -> Iterator[Bus]:
    """A `Bus` for one test: its children are stopped and checked at teardown."""
    harness = Bus(_stop_timeout(request.config))
    yield harness
    harness.teardown(ignore={c.pid for c in session_bus.children} | _session_descendants(session_bus))


@pytest.fixture(scope="session")
def session_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """A `Bus` for servers shared by many tests: stopped and checked at the end of the session."""
    harness = Bus(_stop_timeout(request.config))
    yield harness
    harness.teardown()


def _session_descendants(harness: Bus) -> set[int]:
    table = ProcessTable()
    return {pid for child in harness.children for pid in descendant_pids(child.pid, table)}
