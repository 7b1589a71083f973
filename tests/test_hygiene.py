"""Secrets hygiene (issue 6): where a per-spawn secret or an admin credential may and may not be.

tests/test_member.py already checks that join() empties the environment of
per-spawn variables for a grandchild started with subprocess.run, the
child's argv, and repr(Child).  These tests extend that to a two-level tree
run with logging at DEBUG: every argv of the tree, the initial environment of
a grandchild started after join, every line the tree wrote, the reprs of every
object that holds a secret, the StopReport, the messages of failed joins, and
a registered root's credential in the command line's output.

Failures name where a secret was found, never the secret or the text around
it (assertion messages end up in CI logs).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest
from conftest import PROGRAMS, READY, SCRIPT, WINDOWS, logged, member_cmd, python, reaped

import shutdownbus
from shutdownbus import _environment, _member, _registry, _transport
from shutdownbus._protocol import Channel, Role

PER_SPAWN = set(_environment.PER_SPAWN_VARIABLES)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/environ")

# One program for both levels: h1 spawns h0 on the bus and a plain grandchild.
DEBUG_MEMBER = str(PROGRAMS / "debug_member.py")
REGISTERED_ROOT = str(PROGRAMS / "registered_root.py")


def secret_forms(keys: _transport.ChannelKeys) -> list[str]:
    """Every printable form of a channel's secret material."""
    forms = [keys.encoded_secret(), keys.encoded_secret().upper(), repr(keys.secret)[2:-1]]
    forms += [k.decode() for k in (keys.server_secret, keys.client_secret)]  # z85 CURVE secret keys
    return forms


def check_clean(text: str, secrets: Iterable[str], where: str) -> None:
    for i, secret in enumerate(secrets):
        if secret in text:
            pytest.fail(f"secret form #{i} found in {where}")  # never the secret itself


def initial_environ(pid: int) -> dict[str, str]:
    """The environment a process started with (Linux: /proc/<pid>/environ, same user only)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@linux_only
def test_no_secret_in_argv_logs_reprs_or_report_of_a_debug_logged_tree(tmp_path: Path) -> None:
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        child = shutdownbus.spawn([sys.executable, DEBUG_MEMBER, "1"], stdout=out, stderr=err)
    with reaped(child):
        child.wait_ready(60)
        secrets = secret_forms(child._link.keys)
        grandchild_pid = int(dict(logged(out_path, "member"))["h1"])
        plain_pid = int(dict(logged(out_path, "plain"))["h1"])
        # The grandchild's secret is only known to the child (and, see below, readable
        # from /proc by the same user): fetch it there to grep for it too.
        grand_env = initial_environ(grandchild_pid)
        secrets += secret_forms(_transport.ChannelKeys.from_encoded(grand_env[_environment.ENV_SECRET]))

        # argv of every process of the tree
        tree = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
        assert {p.pid for p in tree} >= {child.pid, grandchild_pid, plain_pid}
        for p in tree:
            check_clean("\0".join(p.cmdline()), secrets, f"the argv of pid {p.pid}")
        # A grandchild started by plain subprocess after join started without any per-spawn variable.
        assert PER_SPAWN.isdisjoint(initial_environ(plain_pid))
        # It carries its member's endpoint instead; a spawned child carries only its own.
        own_endpoint = initial_environ(child.pid)[_environment.ENV_ENDPOINT]
        assert initial_environ(plain_pid)[_environment.ENV_BELOW] == own_endpoint
        assert _environment.ENV_BELOW not in grand_env
        # The documented limit: /proc/<pid>/environ keeps the initial environment after join.
        assert _environment.ENV_SECRET in initial_environ(child.pid)

        reprs = [repr(child), repr(child._link), repr(child._link.channel), repr(child._link.keys), str(child._link)]
        check_clean("\n".join(reprs), secrets, "the reprs of Child, Link, Channel, ChannelKeys")
        report = child.stop(reason="real", timeout=10)
    assert report.ok, report
    assert {e.pid for e in report.entries} >= {child.pid, grandchild_pid, plain_pid}
    for text, where in (
        (report.to_json(), "the StopReport JSON"),
        (str(report), "the StopReport table"),
        (repr(report), "the StopReport repr"),
    ):
        check_clean(text, secrets, where)
    out_text, err_text = out_path.read_text(), err_path.read_text()
    check_clean(out_text, secrets, "the tree's stdout")
    check_clean(err_text, secrets, "the tree's stderr (logging at DEBUG)")
    assert "debug from h1" in err_text and "debug from h0" in err_text  # the DEBUG lines were written
    envs = logged(out_path, "env")
    assert len(envs) == 2
    for name, names in envs:  # after join, no per-spawn variable left in os.environ
        assert PER_SPAWN.isdisjoint(names.split(",")), name
    assert sorted(logged(out_path, "stop")) == [("h0", "real"), ("h1", "real")]


def test_failed_joins_name_no_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong secret (refused by the parent), a secret that is not hex, a
    truncated one: the error says what to do and never echoes either secret,
    in str, repr or traceback, with logging at DEBUG; the parent logs nothing
    that holds one."""
    code = "import sys, time, shutdownbus\nshutdownbus.join()\nshutdownbus.ready()\ntime.sleep(600)\n"
    with reaped(shutdownbus.spawn([sys.executable, "-c", code], ready_timeout=READY)) as child:
        real = child._link.keys.encoded_secret()
        wrong = os.urandom(32).hex()
        attempts = {"a wrong secret": wrong, "a secret that is not hex": real[:-2] + "zz", "a short secret": real[:-2]}
        join = (
            "import logging, traceback, shutdownbus\n"
            "logging.basicConfig(level=logging.DEBUG)\n"
            "try:\n    shutdownbus.join(timeout=20)\n"
            "except shutdownbus.ShutdownBusError as exc:\n"
            "    print('refused', type(exc).__name__)\n    print(str(exc))\n    print(repr(exc))\n"
            "    traceback.print_exc()\n"
        )
        for what, given in attempts.items():
            env = dict(os.environ, SHUTDOWNBUS_ENDPOINT=child._link.endpoint, SHUTDOWNBUS_SECRET=given)
            done = python(join, env=env)
            assert done.stdout.startswith("refused "), what
            check_clean(done.stdout + done.stderr, [real, given, real[:16], given[:16]], f"the join error for {what}")
        assert child.poll() is None
        report = child.stop(timeout=10)
        assert report.ok, report
    check_clean("\n".join(r.getMessage() for r in caplog.records), [real, wrong], "the parent's log")


def test_reprs_of_every_secret_holder() -> None:
    keys = _transport.ChannelKeys.generate()
    secrets = secret_forms(keys)
    parent = Channel(Role.PARENT, keys.secret)
    child = Channel(Role.CHILD, keys.secret, pid=os.getpid(), name="x")
    parent.receive(child.start())
    entry = _registry.Entry("n", 1, 0.0, "ipc:///x", keys.encoded_secret())
    texts = [repr(keys), str(keys), repr(parent), repr(child), repr(entry), str(entry)]
    check_clean("\n".join(texts), secrets, "a repr")
    with pytest.raises(shutdownbus.ChannelError) as info:
        _transport.ChannelKeys.from_encoded(keys.encoded_secret()[:-1])
    check_clean(str(info.value) + repr(info.value), secrets, "the error for a malformed secret")


def test_registry_is_private_and_the_admin_credential_is_never_printed(runtime_dir: str, tmp_path: Path) -> None:
    root = subprocess.Popen(
        [sys.executable, REGISTERED_ROOT, "private"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with reaped(root):
        assert root.stdout is not None and root.stdout.readline() == "registered\n"
        folder = Path(_registry.directory())
        path = folder / "private.json"
        if not WINDOWS:  # there, privacy is the NTFS ACL, which wine cannot show (docs/security.md)
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        credential = json.loads(path.read_text())["secret"]
        secrets = secret_forms(_transport.ChannelKeys.from_encoded(credential))
        entry = _registry.read("private")
        assert entry is not None
        check_clean(repr(entry), secrets, "repr(Entry)")
        check_clean("\0".join(psutil.Process(root.pid).cmdline()), secrets, "the root's argv")
        for args in (["list"], ["list", "--json"], ["tree", "private"], ["send-stop", "private", "--json"]):
            done = subprocess.run([*SCRIPT, *args], capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, args
            check_clean(done.stdout + done.stderr, secrets, f"the output of 'shutdownbus {' '.join(args)}'")
        out, err = root.communicate(timeout=60)
        check_clean(out + err, secrets, "the root's own output")
        assert not path.exists()  # the entry goes with its root


def test_the_programs_event_log_keeps_every_line_of_writers_at_once(tmp_path: Path) -> None:
    """The tests read what several processes of a tree logged at the same
    moment (cleanups run together): not one line may be lost.  Windows'
    ``O_APPEND`` lost lines (a child's cleanup missing from the log: the
    suite failed once in CI under wine); tests/programs/_event_log.py."""
    log = tmp_path / "log"
    # Each writer says it is ready, then waits for the word to go: they write together.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from _event_log import log\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "for i in range(1000): log(sys.argv[2], f'{sys.argv[3]} line {i}')\n"
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(PROGRAMS), str(log), f"w{k}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    try:
        for w in writers:
            assert w.stdout is not None and w.stdout.readline() == "ready\n"
        for w in writers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.close()
        for w in writers:
            assert w.wait(timeout=120) == 0
    finally:
        for w in writers:
            w.kill()
            w.wait()
            for pipe in (w.stdin, w.stdout):
                if pipe is not None:
                    pipe.close()
    assert sorted(log.read_text().splitlines()) == sorted(f"w{k} line {i}" for k in range(3) for i in range(1000))


@pytest.mark.skipif(_transport.use_tcp(), reason="no ipc transport here: Windows uses tcp on loopback")
def test_stopped_spawners_leave_no_runtime_directory(tmp_path: Path, runtime_dir: str) -> None:
    """A member that spawned removes its ipc directory (its children's
    sockets, its owner file) as it exits from a stop."""
    log = tmp_path / "log"
    child = shutdownbus.spawn(member_cmd(log, "--depth", "2", "--fanout", "2"), ready_timeout=READY)
    with reaped(child):
        ours = _member.get_bus().runtime.path
        assert ours is not None
        assert len(os.listdir(runtime_dir)) == 4  # ours, B's, B.0's and B.1's
        assert child.stop().ok
    assert os.listdir(runtime_dir) == [os.path.basename(ours)]


@pytest.mark.skipif(_transport.use_tcp(), reason="no ipc transport here: Windows uses tcp on loopback")
def test_a_runtime_directory_replaced_by_a_link_is_not_followed(tmp_path: Path, runtime_dir: str) -> None:
    """What stands where a runtime directory was (a link put there by
    someone else) is left alone at exit, and so is what the link points at."""
    runtime = _transport.RuntimeDir()
    runtime.next_endpoint()
    assert runtime.path is not None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("keep")
    for name in os.listdir(runtime.path):
        os.unlink(os.path.join(runtime.path, name))
    os.rmdir(runtime.path)
    link = runtime.path
    os.symlink(elsewhere, link)
    runtime.close()
    assert (elsewhere / "precious").read_text() == "keep"
    assert os.path.islink(link)
