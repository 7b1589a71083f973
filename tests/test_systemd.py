"""``shutdownbus run`` under systemd: the notification protocol (sd_notify).

A real datagram socket stands in for systemd's ``NOTIFY_SOCKET``; as
systemd does, it asks the kernel for the sender's credentials, to check that
every message comes from ``run`` itself (the main pid).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MEMBER, reaped

from shutdownbus._deadlines import JOIN_GRACE

SCRIPT = str(Path(sys.executable).parent / "shutdownbus")
pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX") or sys.platform == "win32", reason="AF_UNIX datagrams")


class Systemd:
    """The receiving end of ``NOTIFY_SOCKET``."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.address = address

    def message(self, timeout: float = 60) -> tuple[int, dict[str, str]]:
        """The next notification: the sender's pid and its fields."""
        self.sock.settimeout(timeout)
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = next(struct.unpack("iII", d)[0] for level, kind, d in ancillary if kind == socket.SCM_CREDENTIALS)
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        return pid, fields

    def until(self, key: str) -> list[dict[str, str]]:
        """The notifications up to the one that has ``key``, each checked to come from one sender."""
        seen = []
        while not seen or key not in seen[-1]:
            pid, fields = self.message()
            seen.append(fields | {"_pid": str(pid)})
        return seen


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Systemd]:
    address = str(tmp_path / "notify") if request.param == "path" else f"@shutdownbus-test-{os.getpid()}-{time.time()}"
    receiver = Systemd(address)
    yield receiver
    receiver.sock.close()


def run(systemd: Systemd, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, NOTIFY_SOCKET=systemd.address)
    return subprocess.Popen([SCRIPT, "run", "--name", "unit", *args], env=env, stdout=subprocess.PIPE, text=True)


def test_ready_when_the_member_is_then_stopping_and_the_exit(tmp_path: Path, systemd: Systemd) -> None:
    service = run(systemd, "--", sys.executable, MEMBER, "--log", str(tmp_path / "log"), "--announce")
    with reaped(service):
        starting = systemd.until("MAINPID")
        assert starting[-1]["MAINPID"] == str(service.pid) and "starting" in starting[-1]["STATUS"]
        ready = systemd.until("READY")
        assert ready[-1]["READY"] == "1" and ready[-1]["STATUS"] == "unit: ready"
        # The command does not inherit NOTIFY_SOCKET: run speaks for it.
        assert service.stdout is not None and service.stdout.readline().startswith("ready ")
        done = subprocess.run([SCRIPT, "send-stop", "unit"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        stopping = systemd.until("STOPPING")
        assert stopping[-1]["STATUS"] == "unit: stopping (stop)"
        exited = systemd.until("STATUS")
        assert exited[-1]["STATUS"] == "unit: exited with status 0"
        assert service.wait(60) == 0
        assert {m["_pid"] for m in starting + ready + stopping + exited} == {str(service.pid)}


def test_a_command_that_never_joins_is_ready_after_the_join_grace(systemd: Systemd) -> None:
    started = time.monotonic()
    service = run(systemd, "--", "sh", "-c", 'env | grep -c NOTIFY_SOCKET; echo up; exec sleep 100')
    with reaped(service):
        assert service.stdout is not None and service.stdout.readline() == "0\n"  # not inherited
        assert systemd.until("READY")[-1]["READY"] == "1"
        assert time.monotonic() - started >= JOIN_GRACE  # it could have joined until then
        service.terminate()  # systemctl stop: SIGTERM to the main pid
        assert systemd.until("STOPPING")[-1]["STATUS"] == "unit: stopping (SIGTERM)"
        assert service.wait(60) == 128 + 15  # sleep died of the polite request


def test_with_a_ready_timeout_ready_follows_ready(tmp_path: Path, systemd: Systemd) -> None:
    args = ["--ready-timeout", "60", "--", sys.executable, MEMBER, "--log", str(tmp_path / "log")]
    service = run(systemd, *args)
    with reaped(service):
        assert systemd.until("READY")[-1]["READY"] == "1"
        service.terminate()
        assert systemd.until("STOPPING")[-1]["STOPPING"] == "1"
        assert service.wait(60) == 0


def test_an_unreachable_notify_socket_does_not_fail_run(tmp_path: Path) -> None:
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "nobody-listens"))
    done = subprocess.run([SCRIPT, "run", "--", "true"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr.count("could not notify the service manager") == 1, done.stderr
