"""The child side: joining, secrets hygiene, readiness, and peers that are not the child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import zmq
from conftest import PROGRAMS, READY, member_cmd, python, reaped, use_transport

import shutdownbus
from shutdownbus import _transport, _zmq


def test_join_outside_spawn_returns_false() -> None:
    done = python("import shutdownbus; print(shutdownbus.join(), shutdownbus.ready(), shutdownbus.joined())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False"]


def test_join_removes_per_spawn_variables_and_keeps_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUTDOWNBUS_TRANSPORT", "ipc")
    code = (
        "import os, subprocess, sys, shutdownbus\n"
        "before = sorted(k for k in os.environ if k.startswith('SHUTDOWNBUS_'))\n"
        "print(shutdownbus.join(), shutdownbus.join())\n"
        "print(','.join(before))\n"
        "print(','.join(sorted(k for k in os.environ if k.startswith('SHUTDOWNBUS_'))))\n"
        'grand = \'import os; print(",".join(sorted(k for k in os.environ if k.startswith("SHUTDOWNBUS_"))))\'\n'
        "sys.stdout.flush()\n"
        "subprocess.run([sys.executable, '-c', grand], check=True)\n"
    )
    child = shutdownbus.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    secret = child._link.keys.encoded_secret()
    assert not any(secret in arg for arg in psutil.Process(child.pid).cmdline())
    out, _ = child.communicate(timeout=60)
    joined, before, after, grandchild = out.splitlines()
    assert joined == "True True"
    assert set(before.split(",")) == {
        "SHUTDOWNBUS_ENDPOINT",
        "SHUTDOWNBUS_SECRET",
        "SHUTDOWNBUS_STOP_TIMEOUT",
        "SHUTDOWNBUS_TRANSPORT",
        "SHUTDOWNBUS_RUNTIME_DIR",
    } | ({"SHUTDOWNBUS_FAREWELLS"} if sys.platform.startswith("linux") else set())  # where farewells are taken
    # What it starts by other means carries its endpoint instead (see _environment.ENV_BELOW).
    assert after.split(",") == grandchild.split(",") == [
        "SHUTDOWNBUS_BELOW",
        "SHUTDOWNBUS_RUNTIME_DIR",
        "SHUTDOWNBUS_TRANSPORT",
    ]
    assert secret not in repr(child)


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_wrong_secret_is_refused_and_squatters_neither_block_nor_hear(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_transport(monkeypatch, transport)
    # The child joins only when told to, so the squatters connect first.
    code = "import sys, time, shutdownbus\nsys.stdin.readline()\nshutdownbus.join()\nshutdownbus.ready()\n"
    code += "time.sleep(600)\n"
    child = shutdownbus.spawn([sys.executable, "-c", code], stdin=subprocess.PIPE)
    endpoint = child._link.endpoint
    assert endpoint.startswith(f"{transport}://")
    ctx = zmq.Context()
    plain = ctx.socket(zmq.PAIR)  # no CURVE at all
    plain.connect(endpoint)
    curve = ctx.socket(zmq.PAIR)  # CURVE with the parent's key but its own client key
    public, secret = zmq.curve_keypair()
    curve.curve_serverkey = child._link.keys.server_public
    curve.curve_publickey, curve.curve_secretkey = public, secret
    curve.connect(endpoint)
    try:
        for sock in (plain, curve):
            try:
                sock.send(b"stop", zmq.NOBLOCK)
            except zmq.Again:
                pass  # not connected: the point
        env = dict(os.environ, SHUTDOWNBUS_ENDPOINT=endpoint, SHUTDOWNBUS_SECRET=os.urandom(32).hex())
        impostor = python(
            "import shutdownbus\ntry:\n    shutdownbus.join(timeout=20)\nexcept shutdownbus.ChannelError as e:\n"
            "    print('refused:', e)\nelse:\n    print('joined')\n",
            env=env,
        )
        assert impostor.stdout.startswith("refused:"), impostor.stdout + impostor.stderr
        assert child.poll() is None
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        child.wait_ready(60)
        report = child.stop()
        assert report.ok, report
        assert plain.poll(0) == 0 and curve.poll(0) == 0
    finally:
        ctx.destroy(linger=0)


def test_wait_ready_reports_an_early_exit_with_the_stderr_tail() -> None:
    code = (
        "import sys, shutdownbus\nshutdownbus.join()\nprint('cannot open the database', file=sys.stderr)\nsys.exit(3)\n"
    )
    with pytest.raises(shutdownbus.ChildExited) as info:
        shutdownbus.spawn([sys.executable, "-c", code], ready_timeout=READY, stderr=subprocess.PIPE)
    assert info.value.returncode == 3
    assert "cannot open the database" in str(info.value)
    assert info.value.stderr_tail == "cannot open the database"


def test_wait_ready_times_out_and_spawn_stops_the_child(tmp_path: Path) -> None:
    code = "import time, shutdownbus\nshutdownbus.join()\ntime.sleep(600)\n"
    with pytest.raises(TimeoutError, match=r"did not call shutdownbus\.ready"):
        shutdownbus.spawn([sys.executable, "-c", code], ready_timeout=0.5)


def test_ready_then_wait_ready_returns(tmp_path: Path) -> None:
    with shutdownbus.spawn(member_cmd(tmp_path / "log")) as child:
        child.wait_ready(60)
        assert child.joined and child.name == "B"
    assert child.returncode == 0


def test_a_member_does_not_import_psutil() -> None:
    code = "import sys, shutdownbus\nshutdownbus.join()\nshutdownbus.ready()\nprint('psutil' in sys.modules)\n"
    child = shutdownbus.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=60)
    assert out.strip() == "False"


@pytest.mark.parametrize("stopped", [False, True], ids=["after-join", "at-exit-after-a-stop"])
def test_a_member_that_only_joins_loads_only_the_bus(stopped: bool) -> None:
    # Each costs memory, start-up time and, at the exit after a stop, teardown
    # time; and the exit path must import nothing (see _member._at_exit).
    unwanted = ("_hashlib", "subprocess", "shutdownbus._child", "psutil", "asyncio", "logging")
    unwanted += ("argparse", "dataclasses", "shutdownbus._registry", "shutdownbus._report")  # the command line's
    if _zmq.BINDING != "pyzmq":
        unwanted += ("zmq",)  # pyzmq: our binding reaches the libzmq it bundles without it (20 ms)
    code = (
        "import atexit, sys, time\n"
        # Registered before join(), so it runs after shutdownbus's exit hook.
        f"atexit.register(lambda: print(*[m for m in {unwanted!r} if m in sys.modules], flush=True))\n"
        "import shutdownbus\n"
        "shutdownbus.join()\n"
        f"if {stopped}:\n"
        "    shutdownbus.ready()\n"
        "    time.sleep(300)\n"
    )
    ready_timeout = 60 if stopped else None
    child = shutdownbus.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE, ready_timeout=ready_timeout)
    if stopped:
        assert child.stop().ok
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == b"", out


@pytest.mark.skipif(sys.platform == "win32", reason="connects again over ipc:// only (tcp on Windows)")
def test_a_join_answered_late_by_a_busy_parent_is_tried_again(tmp_path: Path) -> None:
    """A parent whose bus thread is busy (a loaded machine, a large tree)
    answers the child's transport handshake late, and its socket drops it
    after 1 s: the child connects again instead of failing its join with
    "the parent refused this process's credentials" (seen once in 7 starts of
    a 521-process tree under load)."""
    import threading
    import time

    from shutdownbus import _member

    child = shutdownbus.spawn(member_cmd(tmp_path / "log"))
    with child:
        busy = threading.Event()

        def hold_the_bus_thread() -> None:  # as a busy parent does: its ZAP handler runs on this thread
            busy.set()
            time.sleep(_transport.HANDSHAKE_IVL_MS / 1000 * 1.5)

        _member.get_bus().call(hold_the_bus_thread)
        assert busy.wait(10)
        child.wait_ready(READY)
        report = child.stop()
    assert report.ok and report.entry(child.pid).member, report  # type: ignore[union-attr]


def test_join_with_a_wrong_secret_says_what_may_be_wrong() -> None:
    """A child whose key the parent refuses only sees the parent close the
    connection, as it would for a handshake too slow on a loaded machine: the
    message says both, where every failure used to say "the parent refused
    this process's credentials"."""
    import os
    import secrets

    from conftest import python, reaped, sleep_cmd

    holder = shutdownbus.spawn(sleep_cmd())  # never joins: its channel stays open to anyone with its secret
    with reaped(holder):
        env = dict(os.environ)
        env["SHUTDOWNBUS_ENDPOINT"] = holder._link.endpoint  # not secret: only the key is
        env["SHUTDOWNBUS_SECRET"] = secrets.token_hex(32)
        done = python("import shutdownbus; shutdownbus.join(timeout=20)", env=env)
        assert done.returncode != 0
        assert "this process's secret is not its spawn's, or it took over 1 s" in done.stderr, done.stderr
        holder.stop()


def test_stop_requested_is_true_once_the_stop_arrived_even_while_callbacks_run(tmp_path: Path) -> None:
    """Before, it turned true only after the ``on_stop`` callbacks: a child
    ended by the forwarded stop could be seen gone while it still said
    False.  ``run`` asked it so, once its command had exited, to tell a
    stopped command from one that exited on its own: under load it sent
    systemd "exited" before "stopping", and took a 143 after a stop for a
    failure."""
    program = [sys.executable, str(PROGRAMS / "slow_callback.py"), str(tmp_path / "log")]
    with reaped(shutdownbus.spawn(program, stdout=subprocess.PIPE, text=True)) as child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        report = child.stop(timeout=30)
        assert child.stdout.read() == "stop_requested() = True\n", report
