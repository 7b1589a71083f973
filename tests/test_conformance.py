"""The conformance kit: the test vectors (data) and the runner (live processes).

The vectors are regenerated from the reference code and compared with the
committed file, and the examples of docs/protocol.md are checked against
them: the spec, the vectors and the code cannot drift apart.  The runner
plays the parent to real member programs: it must pass the Python member and
fail, on the case that catches each, the deliberately broken members of
tests/programs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PROGRAMS, WINDOWS

from shutdownbus.conformance import _vectors

ROOT = Path(__file__).parent.parent
VECTORS = Path(__file__).parent / "vectors" / "protocol-v1.json"
SPEC = ROOT / "docs" / "protocol.md"


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


def test_vectors_file_is_what_the_code_generates() -> None:
    assert VECTORS.read_text(encoding="utf-8") == _vectors.dumps(_vectors.generate()), (
        "tests/vectors/protocol-v1.json is out of date:"
        " python -m shutdownbus.conformance.vectors tests/vectors/protocol-v1.json"
    )


def test_vectors_check_command_says_up_to_date_or_not(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "shutdownbus.conformance.vectors", "--check", str(VECTORS)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    stale = tmp_path / "stale.json"
    stale.write_text(VECTORS.read_text().replace('"protocol_version": 1', '"protocol_version": 2'))
    bad = subprocess.run(
        [sys.executable, "-m", "shutdownbus.conformance.vectors", "--check", str(stale)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert bad.returncode == 1 and "out of date" in bad.stderr and "Traceback" not in bad.stderr


def _spec_example(block_after: str) -> dict[str, str]:
    """``NAME VALUE`` lines of the first code block after ``block_after`` in docs/protocol.md."""
    text = SPEC.read_text(encoding="utf-8")
    start = text.index(block_after)
    block = re.search(r"```\n(.*?)```", text[start:], re.S)
    assert block is not None
    pairs = {}
    for line in block.group(1).splitlines():
        name, _, value = line.rpartition("  ")
        pairs[name.strip()] = value.strip()
    return pairs


def test_spec_examples_are_the_vectors() -> None:
    vectors = load_vectors()
    curve, hs = vectors["curve"], vectors["handshake"]
    assert _spec_example("Example. With K = bytes 0x00") == {
        "server_secret_raw": curve["server_secret_raw"],
        "server_public_raw": curve["server_public_raw"],
        "client_secret_raw": curve["client_secret_raw"],
        "client_public_raw": curve["client_public_raw"],
        "server_public Z85": curve["server_public_z85"],
        "client_public Z85": curve["client_public_z85"],
    }
    accept = next(m for m in vectors["messages"] if m["name"] == "accept")
    assert _spec_example("5.5 Example.") == {
        "P1": hs["p1"],
        "P2": hs["p2"],
        "Kpc": hs["kpc"],
        "Kcp": hs["kcp"],
        "accept body": accept["body"],
        "accept tag": accept["tag"],
    }
    assert (hs["secret"], hs["child_nonce"], hs["parent_nonce"]) == (
        bytes(range(32)).hex(), "aa" * 32, "bb" * 32
    )
    assert "`9301a661636365707480`" in SPEC.read_text(encoding="utf-8")  # 4.4


def test_every_refusal_names_a_rule_of_the_spec() -> None:
    text = SPEC.read_text(encoding="utf-8")
    sections = set(re.findall(r"^#+ (\d+)\.", text, re.M)) | set(re.findall(r"^(\d+\.\d+) ", text, re.M))
    for case in load_vectors()["refusals"]:
        rule = case["rule"]
        assert rule.rsplit(".", 1)[0] in sections or rule in sections, case["name"]
        assert case["steps"][0]["role"] == "hostile"
        assert all(s["result"] == ("refused" if s["role"] == "hostile" else "accepted") for s in case["steps"])


@pytest.mark.parametrize("argv", [["--bogus"], ["--check"], ["a", "b"]])
def test_vectors_command_bad_usage_is_one_line(argv: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "shutdownbus.conformance.vectors", *argv],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and out.stdout == ""


# -- the runner ---------------------------------------------------------------------

PYTHON_MEMBER = [sys.executable, "-m", "shutdownbus.conformance.member"]
#: The runner's live cases have been run on Linux only so far.
POSIX_ONLY = pytest.mark.skipif(WINDOWS, reason="the conformance runner has not been run on Windows yet")


def run_conformance(member: list[str], *cases: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run the runner on ``member``; return its status, ``{case: (PASS|FAIL, detail)}`` and its stderr."""
    options = [arg for case in cases for arg in ("--case", case)]
    out = subprocess.run(
        [sys.executable, "-m", "shutdownbus.conformance", *options, "--", *member],
        capture_output=True, text=True, check=False, timeout=120,
    )
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        name, result, detail = [*line.split(None, 2), "", ""][:3]
        rows[name] = (result, detail)
    return out.returncode, rows, out.stderr


@POSIX_ONLY
def test_runner_passes_the_python_member() -> None:
    status, rows, stderr = run_conformance(PYTHON_MEMBER)
    failed = {name: row for name, row in rows.items() if row[0] != "PASS"}
    assert (status, stderr) == (0, "") and not failed, f"{failed} {stderr}"
    assert {"handshake", "stop-forwarded", "parent-lost", "bad-challenge-proof", "replay", "oversized-frame",
            "budget-out-of-range", "frame-before-handshake", "bad-tag"} <= set(rows)


@POSIX_ONLY
def test_runner_fails_a_member_that_skips_the_hmac_check() -> None:
    cases = ("handshake", "bad-challenge-proof", "bad-tag", "replay", "reflected")
    status, rows, _ = run_conformance([sys.executable, str(PROGRAMS / "broken_no_hmac.py")], *cases)
    assert status == 1
    assert rows["handshake"][0] == "PASS"  # it speaks the protocol; it just believes everything
    assert rows["bad-challenge-proof"] == ("FAIL", rows["bad-challenge-proof"][1])
    assert "forged" in rows["bad-challenge-proof"][1]
    for case in ("bad-tag", "replay", "reflected"):
        assert rows[case][0] == "FAIL" and "acted on the hostile input" in rows[case][1], rows[case]


@POSIX_ONLY
def test_runner_fails_a_member_that_ignores_its_budget() -> None:
    status, rows, _ = run_conformance([sys.executable, str(PROGRAMS / "broken_budget.py")], "stop-forwarded")
    assert status == 1
    assert rows["stop-forwarded"][0] == "FAIL" and "after its deadline" in rows["stop-forwarded"][1]


@POSIX_ONLY
def test_runner_fails_a_member_that_hands_its_children_its_whole_budget() -> None:
    status, rows, _ = run_conformance([sys.executable, str(PROGRAMS / "broken_forward.py")], "stop-forwarded")
    assert status == 1
    result, detail = rows["stop-forwarded"]
    assert result == "FAIL" and "its child got budget 3" in detail and "want about 2.94" in detail, rows


@POSIX_ONLY
def test_runner_stops_after_a_failed_handshake() -> None:
    status, rows, _ = run_conformance([sys.executable, "-c", "pass"])
    assert status == 1
    assert rows["handshake"][0] == "FAIL" and "no hello" in rows["handshake"][1], rows
    assert {result for name, (result, _) in rows.items() if name != "handshake"} == {"SKIP"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no member command"),
        (["--"], "no member command"),
        (["--case", "nope", "--", "true"], "no case named nope"),
        (["--bogus", "--", "true"], "unknown option"),
        (["--", "/nonexistent/member"], "cannot run"),
        (["--", "bogus-transport"], "SHUTDOWNBUS_TRANSPORT must be"),
    ],
)
def test_runner_bad_usage_is_one_line(argv: list[str], message: str) -> None:
    env = dict(os.environ, SHUTDOWNBUS_TRANSPORT="bogus") if "bogus-transport" in argv else None
    out = subprocess.run(
        [sys.executable, "-m", "shutdownbus.conformance", *argv],
        capture_output=True, text=True, check=False, timeout=60, env=env,
    )
    assert out.returncode == 2, out
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
