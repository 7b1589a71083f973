"""A registry with broken files in it (issue 22): a bad file affects its own
name only, and a broken or forged record of a stop never makes ``send-stop``
report success without a stop.

Real registry files, real ``shutdownbus run`` trees, the real console script.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import log_lines
from test_cli import Run, cli

from shutdownbus import _registry

#: What the issue found breaking every command for every tree, and more of the kind.
BAD_ENTRIES = {
    "a list": "[]",
    "a number": "1",
    "a string": '"x"',
    "deep nesting": "[" * 50_000,
    "an infinite pid": '{"format": 2, "name": "bad", "pid": Infinity}',
    "not UTF-8": b"\xff\xfe{",
}


def valid_entry(**changes: object) -> str:
    entry = {"format": 2, "name": "bad", "pid": os.getpid(), "started": 1.0, "endpoint": "ipc:///nowhere",
             "secret": "00" * 32, "argv": ["x"], "pid_namespace": "", "stop_timeout": 5.0}  # fmt: skip
    return json.dumps({**entry, **changes})


BAD_ENTRIES |= {
    "a huge pid": valid_entry(pid=10**400),
    "an infinite start": valid_entry().replace('"started": 1.0', '"started": 1e999'),
    "a NaN timeout": valid_entry().replace('"stop_timeout": 5.0', '"stop_timeout": NaN'),
    "a boolean pid": valid_entry(pid=True),
    "argv not a list": valid_entry(argv="x"),
    "a secret that is no credential": valid_entry(secret="zz"),
    "a name of another file": valid_entry(name="good"),
}


@pytest.fixture
def good(tmp_path: Path) -> Iterator[Run]:
    run = Run(tmp_path / "log", "--name", "good")
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        for stream in (run.proc.stdout, run.proc.stderr):
            if stream is not None:
                stream.close()


def test_a_bad_registry_entry_affects_its_own_name_only(good: Run) -> None:
    """Before, each of these made list, tree and send-stop of every tree exit
    1 with a traceback (AttributeError, RecursionError, OverflowError)."""
    path = Path(_registry.directory()) / "bad.json"
    for what, content in BAD_ENTRIES.items():
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        listed = cli("list")
        assert listed.returncode == 0, (what, listed.stderr)
        assert listed.stderr.startswith("shutdownbus: the registry entry of 'bad' is broken ("), (what, listed.stderr)
        assert f"remove {path}" in listed.stderr, what
        rows = [line.split()[:2] for line in listed.stdout.splitlines()[1:]]
        assert rows == [["good", str(good.proc.pid)], ["bad", "?"]], (what, listed.stdout)
        assert cli("tree", "good").returncode == 0, what
        for command in ("send-stop", "tree"):
            done = cli(command, "bad")
            assert done.returncode == 2, (what, done.stderr)
            assert done.stderr.startswith("shutdownbus: the registry entry of 'bad' is broken ("), (what, done.stderr)
            assert "Traceback" not in done.stderr
        assert path.exists()  # never removed behind the user's back: it may name a live tree
    done = cli("send-stop", "good")
    assert done.returncode == 0, done.stdout + done.stderr
    assert good.finish() == 0


def forged_finished_record(entry: dict[str, object]) -> str:
    """A record that says the stop of the root is done and went well."""
    row = {"pid": entry["pid"], "name": "good", "outcome": "stopped", "returncode": 0, "seconds": 0.1, "member": True}
    report = {"reason": "stop", "ok": True, "seconds": 0.1, "entries": [row], "unchecked": []}
    return json.dumps({"root": [entry["pid"], entry["started"]], "admin_pid": os.getpid(),
                       "admin_started": 1.0, "timeout": 0.0, "report": report})  # fmt: skip


@pytest.mark.parametrize("record", ["garbage", "deep", "infinite", "empty", "forged report"])
def test_a_broken_or_forged_stop_record_never_passes_for_a_stop(good: Run, tmp_path: Path, record: str) -> None:
    """Before, garbage in NAME.stop gave tracebacks, and a forged "finished"
    record made send-stop print 'ok, 0 process(es)', exit 0, and send nothing."""
    folder = Path(_registry.directory())
    entry = json.loads((folder / "good.json").read_text())
    root = [entry["pid"], entry["started"]]
    infinite = {"root": root, "admin_pid": float("inf"), "admin_started": 1.0, "timeout": 1.0, "report": None}
    content = {
        "garbage": "\x00not json",
        "deep": "[" * 50_000,
        "infinite": json.dumps(infinite),
        "empty": "",
        "forged report": forged_finished_record(entry),
    }[record]
    (folder / "good.stop").write_text(content)
    done = cli("send-stop", "good", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [e["pid"] for e in report["entries"]] == [good.proc.pid, good.member_pid]
    assert "m got stop stop" in log_lines(tmp_path / "log")  # the stop was sent, and reached the member
    assert good.finish() == 0
