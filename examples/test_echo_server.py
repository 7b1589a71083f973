"""Testing a server with the shutdownbus pytest plugin: no sleeps, no port polling, no log reading.

    pytest examples/test_echo_server.py

The test makes the listening socket itself (so it knows the port before the
server runs), hands it to the server, and waits for the server's own
ready().  Teardown stops the server's whole tree through the bus and fails
the test if any process was left behind or did not stop cleanly.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from shutdownbus.pytest_plugin import Bus

SERVER = str(Path(__file__).parent / "echo_server.py")

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the server inherits its listening socket by descriptor (pass_fds): POSIX only"
)


@pytest.fixture
def echo_port(bus: Bus) -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        fd = listener.fileno()
        bus.spawn([sys.executable, SERVER, "--listen-fd", str(fd)], pass_fds=[fd], ready_timeout=5)
        return int(listener.getsockname()[1])


def test_echoes(echo_port: int) -> None:
    with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as conn:
        conn.sendall(b"hello, tree")
        assert conn.recv(100) == b"hello, tree"


def test_serves_many_connections(echo_port: int) -> None:
    for i in range(10):
        with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as conn:
            conn.sendall(b"%d" % i)
            assert conn.recv(100) == b"%d" % i
