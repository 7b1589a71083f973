"""StopReport formats, and the command line's entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SCRIPT

import shutdownbus
from shutdownbus import ReportEntry, StopReport


def sample() -> StopReport:
    return StopReport(
        reason="stop",
        entries=(
            ReportEntry(pid=10, name="web", outcome="stopped", returncode=0, seconds=0.25, member=True, request="stop",
                        requested=0.001),
            ReportEntry(pid=11, name="sleep", outcome="killed", returncode=-9, seconds=1.5, member=False),
            ReportEntry(pid=13, name="nginx", outcome="stopped", returncode=0, seconds=0.1, member=False,
                        request="SIGQUIT", requested=0.0),
            ReportEntry(pid=12, name="old", outcome="exited", returncode=0, seconds=None, member=True),
        ),
        seconds=1.5,
    )


def test_ok_requires_every_entry_clean() -> None:
    report = sample()
    assert not report.ok
    assert StopReport("stop", report.entries[:1]).ok
    assert StopReport("stop", (report.entries[2],)).ok
    failed_exit = ReportEntry(pid=1, name="x", outcome="exited", returncode=2)
    assert not StopReport("stop", (failed_exit,)).ok


def test_table_lists_every_process() -> None:
    lines = str(sample()).splitlines()
    assert lines[0].split() == ["PID", "NAME", "OUTCOME", "RC", "SECONDS", "MEMBER", "ASKED"]
    assert lines[1].split() == ["10", "web", "stopped", "0", "0.250", "yes", "stop@0.001"]
    assert lines[2].split() == ["11", "sleep", "killed", "-9", "1.500", "no", "-"]
    assert lines[3].split() == ["13", "nginx", "stopped", "0", "0.100", "no", "SIGQUIT@0.000"]
    assert lines[4].split() == ["12", "old", "exited", "0", "-", "yes", "-"]
    assert "NOT ok" in lines[5]


def test_json_round_trip() -> None:
    report = sample()
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["reason"] == "stop"
    assert data["entries"][1] == {
        "pid": 11,
        "name": "sleep",
        "outcome": "killed",
        "returncode": -9,
        "seconds": 1.5,
        "member": False,
        "request": None,
        "requested": None,
    }
    assert data["entries"][2]["request"] == "SIGQUIT"
    assert StopReport.from_dict(data) == report


def test_report_entries_travel_with_their_request_when_there_is_one() -> None:
    """A report message carries the protocol's six fields, and the optional
    request and its time when they say something (docs/protocol.md, 6.5)."""
    from shutdownbus._protocol import ENTRY_FIELDS, OPTIONAL_ENTRY_FIELDS, check_entry

    for entry in sample().entries:
        wire = entry.to_wire()
        assert tuple(wire)[:6] == ENTRY_FIELDS
        assert set(wire) - set(ENTRY_FIELDS) == (set(OPTIONAL_ENTRY_FIELDS) if entry.request else set())
        check_entry(wire)
        assert shutdownbus.ReportEntry.from_dict(wire) == entry


def test_version_from_console_script_and_module() -> None:
    commands = [[sys.executable, "-m", "shutdownbus", "--version"]]
    if SCRIPT[0] != sys.executable:  # the Windows python of make test-windows has no launcher
        commands.append([*SCRIPT, "--version"])
    for cmd in commands:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"shutdownbus {shutdownbus.__version__}"


def test_public_api_is_exported() -> None:
    for name in shutdownbus.__all__:
        assert hasattr(shutdownbus, name), name
    assert issubclass(shutdownbus.StopRequested, KeyboardInterrupt)
    assert issubclass(shutdownbus.AuthenticationError, shutdownbus.ShutdownBusError)
    assert issubclass(shutdownbus.ChildExited, shutdownbus.ShutdownBusError)


@pytest.mark.parametrize(
    ("cmdline", "name"),
    [
        (["/usr/bin/python3.12", "-m", "http.server"], "http.server"),
        (["python3.13t", "-X", "dev", "server.py", "--port", "1"], "server.py"),
        (["C:/Python312/pythonw.exe", "app.py"], "app.py"),
        (["PYPY3", "-u", "work.py"], "work.py"),
        (["/usr/bin/python3", "-c", "from multiprocessing.resource_tracker import main;main(5)"],
         "multiprocessing.resource_tracker"),
        (["python", "-c", "pass"], "python -c"),
        (["/usr/bin/python3-config", "x.py"], "python3-config"),
        (["ipython", "x.py"], "ipython"),
        (["PYTHON.EXE", "x.py"], "x.py"),
        (["python3.exe.exe", "x.py"], "python3.exe.exe"),
        (["pythonista", "x.py"], "pythonista"),
        (["gunicorn: worker [app]"], "gunicorn: worker [app]"),
        (["/usr/sbin/nginx", "-g", "daemon off;"], "nginx"),
        ([], "comm"),
    ],
)
def test_processes_are_named_as_ps_users_know_them(cmdline: list[str], name: str) -> None:
    """A Python interpreter is named by what it runs (any version, build
    letter, case, ``.exe``); anything else by its program."""
    from shutdownbus._names import describe

    assert describe(cmdline, "comm")[0] == name
