"""What operators of supervisors and containers expect (issue 24): messages
that say what to do, exit statuses that orchestrators read right, a log of
what a stop did, and a long stop they can watch."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCRIPT, WINDOWS

from shutdownbus import _cli, _deadlines


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command line, run to its end (these never start a tree)."""
    return subprocess.run([*SCRIPT, *args], capture_output=True, text=True, timeout=timeout, check=False)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The error of a command line that failed: exactly one line, ``shutdownbus: ...``."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("shutdownbus: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# -- 4. messages that say what to do ------------------------------------------------


@pytest.mark.parametrize(
    "args", [("send-stop", "web", "--timeout"), ("run", "--stop-timeout"), ("run", "--ready-timeout")]
)
def test_a_timeout_too_long_says_the_limit(args: tuple[str, ...]) -> None:
    """Before: "'1e12' is not a positive number of seconds"; it is positive, and too long."""
    done = cli(*args, "1e12", *(["--", "true"] if args[0] == "run" else []))
    assert done.returncode == 2
    line = one_line(done)
    assert "'1e12' seconds is too long: the limit is 604800 seconds (a week)" in line, line
    assert f"see 'shutdownbus {args[0]} --help'" in line, line


def test_the_limit_is_the_librarys() -> None:
    assert _cli.MAX_SECONDS == _deadlines.MAX_BUDGET
    assert cli("send-stop", "nobody", "--timeout", "604800").stderr.startswith("shutdownbus: no running tree")


@pytest.mark.parametrize(
    ("value", "says"),
    [("abc", "is not a number"), ("nan", "is not a number"), ("0", "is not a positive number")],
)
def test_a_bad_timeout_says_what_a_good_one_looks_like(value: str, says: str) -> None:
    line = one_line(done := cli("send-stop", "web", "--timeout", value))
    assert done.returncode == 2
    assert f"{value!r} {says} of seconds (examples: 5, 0.5, 90)" in line, line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("send-stop",), "the following arguments are required: TARGET; see 'shutdownbus send-stop --help'"),
        (("frob",), "invalid choice: 'frob'"),
        (("run",), "run needs a command: shutdownbus run [options] -- CMD [ARG...]; see 'shutdownbus run --help'"),
        (("run", "--"), "run needs a command"),
    ],
)
def test_usage_errors_are_one_line_that_says_where_to_look(args: tuple[str, ...], says: str) -> None:
    """Before: argparse's usage (several lines), then ``shutdownbus send-stop: error: ...``."""
    done = cli(*args)
    assert done.returncode == 2
    line = one_line(done)
    assert says in line and "--help'" in line, line


def test_run_refuses_an_empty_name() -> None:
    """Before: ``--name ''`` was taken for the default name, silently."""
    done = cli("run", "--name", "", "--", sys.executable, "-c", "print('ran')")
    assert done.returncode == 2 and done.stdout == ""
    assert "invalid name ''" in one_line(done)


def test_run_of_a_program_that_is_not_there(tmp_path: Path) -> None:
    """127, as a shell says "not found", and what to check."""
    done = cli("run", "--", "no-such-program-shutdownbus")
    assert done.returncode == 127
    assert "no such program: give its path, or check that it is on PATH" in one_line(done)
    done = cli("run", "--", str(tmp_path / "missing"))
    assert done.returncode == 127
    assert "no such file" in one_line(done)


@pytest.mark.skipif(WINDOWS, reason="POSIX permission bits")
def test_run_of_a_file_that_cannot_run(tmp_path: Path) -> None:
    """126, as a shell (and Docker) says "found, but cannot be run", and what to check."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chmod(script, stat.S_IRUSR | stat.S_IWUSR)
    done = cli("run", "--", str(script))
    assert done.returncode == 126
    assert "permission denied: is it executable (chmod +x)" in one_line(done)
