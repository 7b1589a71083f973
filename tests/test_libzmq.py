"""Our ctypes binding to libzmq (`_libzmq`) against pyzmq, which it stands in for.

The binding is what the bus runs on where it loads (Linux and macOS with
pyzmq's wheels); pyzmq is the reference: the same constants, the same keys,
and a socket of either binding talks to a socket of the other.  The rest of
the suite runs the bus on the binding that `_zmq` chose; the last tests here
run members on the other one.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

import shutdownbus
from shutdownbus import _transport, _zmq
from shutdownbus._environment import ENV_ZMQ_BINDING

libzmq = pytest.importorskip(
    "shutdownbus._libzmq", reason="no libzmq bundled with pyzmq here (Windows)", exc_type=ImportError
)

PACKAGE = Path(shutdownbus.__file__).parent
LOOSE = 30.0


@pytest.fixture
def contexts() -> Iterator[tuple[libzmq.Context, zmq.Context[zmq.Socket[bytes]]]]:
    ours, theirs = libzmq.Context(), zmq.Context()
    yield ours, theirs
    ours.destroy(0)
    theirs.destroy(0)


def test_the_binding_is_ours_where_pyzmq_bundles_libzmq() -> None:
    if os.environ.get(ENV_ZMQ_BINDING) != "pyzmq":
        assert _zmq.BINDING != "pyzmq"
        assert _zmq.Context is libzmq.Context


def test_the_constants_are_pyzmqs() -> None:
    names = [name for name in dir(libzmq) if re.fullmatch(r"[A-Z][A-Z0-9_]+", name) and name != "TYPE_CHECKING"]
    assert len(names) > 20
    for name in names:
        assert getattr(libzmq, name) == int(getattr(zmq, name)), name
    assert libzmq.zmq_version_info() == zmq.zmq_version_info()


def test_z85_and_curve_keys_are_pyzmqs() -> None:
    for size in (0, 4, 32, 64):
        data = os.urandom(size)
        assert libzmq.z85_encode(data) == z85.encode(data)
        assert libzmq.z85_decode(z85.encode(data)) == data
    public, secret = zmq.curve_keypair()
    assert libzmq.curve_public(secret) == public
    with pytest.raises(ValueError):
        libzmq.z85_encode(b"abc")
    with pytest.raises(ValueError):
        libzmq.z85_decode(b"abcd")
    with pytest.raises(libzmq.ZMQError):
        libzmq.curve_public(b"short")


def test_only_the_binding_choice_imports_pyzmq() -> None:
    """Every module of the package reaches ZeroMQ through `_zmq`, whose rule
    it is (the conformance runner and its vectors included)."""
    importers = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^\s*(import zmq|from zmq\b)", text, re.M):
            importers.append(path.relative_to(PACKAGE).as_posix())
    assert importers == ["_zmq.py"]


def test_a_curve_channel_between_the_two_bindings(
    contexts: tuple[libzmq.Context, zmq.Context[zmq.Socket[bytes]]],
) -> None:
    """Our server (with its ZAP handler) and a pyzmq client, as a parent of
    ours and a member on pyzmq (Windows, or the variable) meet."""
    ours, theirs = contexts
    keys = _transport.ChannelKeys.generate()
    zap = ours.socket(libzmq.REP)
    zap.bind(_transport.ZAP_ENDPOINT)
    server = ours.socket(libzmq.PAIR)
    server.setsockopt(libzmq.CURVE_SERVER, 1)
    server.setsockopt(libzmq.CURVE_SECRETKEY, keys.server_secret)
    server.setsockopt(libzmq.ZAP_DOMAIN, b"test")
    server.bind("tcp://127.0.0.1:*")
    endpoint = server.getsockopt_string(libzmq.LAST_ENDPOINT)
    assert endpoint.startswith("tcp://127.0.0.1:")

    client = theirs.socket(zmq.PAIR)
    client.curve_serverkey = keys.server_public
    client.curve_publickey = keys.client_public
    client.curve_secretkey = keys.client_secret
    monitor = client.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    client.connect(endpoint)
    assert zap.poll(LOOSE * 1000)
    request = zap.recv_multipart()
    assert request[5] == b"CURVE" and request[6] == keys.client_public_raw()
    zap.send_multipart(_transport.zap_reply(request, {b"test": keys.client_public_raw()}))
    assert monitor.poll(LOOSE * 1000)
    assert _transport.monitor_event(monitor.recv_multipart()) == zmq.EVENT_HANDSHAKE_SUCCEEDED

    client.send_multipart([b"one", b"", b"three"])
    assert server.poll(LOOSE * 1000) == libzmq.POLLIN
    assert server.recv_multipart() == [b"one", b"", b"three"]
    big = os.urandom(64 << 10)
    server.send(big)
    assert client.recv() == big
    with pytest.raises(libzmq.Again):
        server.recv(libzmq.NOBLOCK)
    client.disable_monitor()
    monitor.close(0)


def test_a_refused_client_is_seen_on_our_monitor(
    contexts: tuple[libzmq.Context, zmq.Context[zmq.Socket[bytes]]],
) -> None:
    """A pyzmq server refuses our client's key: our client's monitor tells
    (the way a member learns that its parent refused it)."""
    ours, theirs = contexts
    keys = _transport.ChannelKeys.generate()
    zap = theirs.socket(zmq.REP)
    zap.bind(_transport.ZAP_ENDPOINT)
    server = theirs.socket(zmq.PAIR)
    server.curve_server = True
    server.curve_secretkey = keys.server_secret
    server.zap_domain = b"test"
    server.bind("tcp://127.0.0.1:*")
    client, monitor = _transport.connect_child_socket(
        ours, keys, server.getsockopt_string(zmq.LAST_ENDPOINT), libzmq.EVENT_HANDSHAKE_FAILED_AUTH
    )
    assert zap.poll(LOOSE * 1000)
    zap.send_multipart(_transport.zap_reply(zap.recv_multipart(), {}))
    assert monitor.poll(LOOSE * 1000)
    assert _transport.monitor_event(monitor.recv_multipart()) == libzmq.EVENT_HANDSHAKE_FAILED_AUTH
    client.disable_monitor()


def test_errors_carry_libzmqs_errno_and_message() -> None:
    ctx = libzmq.Context()
    try:
        sock = ctx.socket(libzmq.PAIR)
        with pytest.raises(libzmq.ZMQError) as caught:
            sock.connect("nonsense://here")
        assert caught.value.errno == zmq.EPROTONOSUPPORT
        assert str(caught.value) == zmq.strerror(zmq.EPROTONOSUPPORT)
        with pytest.raises(libzmq.Again) as again:
            sock.recv(libzmq.NOBLOCK)
        assert isinstance(again.value, libzmq.ZMQError)
        sock.close(0)
        sock.close(0)  # closing twice does nothing
    finally:
        ctx.term()
    with pytest.raises(libzmq.ZMQError):
        ctx.socket(libzmq.PAIR)  # a terminated context makes no socket


def test_a_closed_socket_is_refused_not_taken_for_another() -> None:
    """libzmq may give a closed socket's memory to the next socket: a handle
    kept after close would reach that one."""
    ctx = libzmq.Context()
    try:
        sock = ctx.socket(libzmq.PAIR)
        poller = libzmq.Poller()
        poller.register(sock, libzmq.POLLIN)
        sock.close()
        others = [ctx.socket(libzmq.PAIR) for _ in range(3)]
        for use in (lambda: sock.recv(libzmq.NOBLOCK), lambda: sock.getsockopt(libzmq.LINGER), lambda: poller.poll(0)):
            with pytest.raises(libzmq.ZMQError) as caught:
                use()
            assert caught.value.errno == errno.ENOTSOCK
        for other in others:
            other.close(0)
    finally:
        ctx.term()


def test_the_library_is_that_of_the_pyzmq_import_would_load(tmp_path: Path) -> None:
    """A ``zmq`` folder that is no package, and a libzmq beside it, in the
    working directory (first on ``sys.path`` under ``python -c``): import
    takes the installed pyzmq, and so does the binding."""
    (tmp_path / "zmq").mkdir()
    (tmp_path / "pyzmq.libs").mkdir()
    (tmp_path / "pyzmq.libs" / "libzmq-planted.so.5").write_bytes(b"not a library")
    code = "from shutdownbus import _libzmq\nprint(_libzmq._library_path())\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == libzmq._library_path()
    assert Path(done.stdout.strip()).parent == Path(zmq.__file__).parent.parent / "pyzmq.libs"


def test_a_poller_takes_sockets_and_descriptors_and_lets_a_signal_through() -> None:
    """A file descriptor wakes the poll; a signal's handler runs during a
    poll that waits forever, and what it raises comes out of the poll."""
    ctx = libzmq.Context()
    sock = ctx.socket(libzmq.PAIR)
    read_fd, write_fd = os.pipe()
    try:
        poller = libzmq.Poller()
        poller.register(sock, libzmq.POLLIN)
        poller.register(read_fd, libzmq.POLLIN)
        assert poller.poll(0) == []
        os.write(write_fd, b"x")
        assert poller.poll(LOOSE * 1000) == [(read_fd, libzmq.POLLIN)]
        poller.unregister(read_fd)
        assert poller.poll(0) == []
        if sys.platform == "win32":
            return

        class Interrupted(Exception):
            pass

        def interrupt(signum: int, frame: object) -> None:
            raise Interrupted

        previous = signal.signal(signal.SIGUSR1, interrupt)
        try:
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
            timer.start()
            start = time.monotonic()
            with pytest.raises(Interrupted):
                poller.poll()
            assert time.monotonic() - start < LOOSE
            timer.join()
        finally:
            signal.signal(signal.SIGUSR1, previous)
    finally:
        os.close(read_fd)
        os.close(write_fd)
        ctx.destroy(0)


def test_a_poller_of_many_tells_exactly_which_are_ready() -> None:
    """Its results are read from the items' memory at once: the right
    targets, the right events, in the order they were registered."""
    pipes = [os.pipe() for _ in range(60)]
    ctx = libzmq.Context()
    sock = ctx.socket(libzmq.PAIR)
    try:
        poller = libzmq.Poller()
        for read_fd, _ in pipes[:30]:
            poller.register(read_fd, libzmq.POLLIN)
        poller.register(sock, libzmq.POLLIN | libzmq.POLLOUT)
        for read_fd, _ in pipes[30:]:
            poller.register(read_fd, libzmq.POLLIN)
        chosen = [pipes[3], pipes[31], pipes[59]]
        for _, write_fd in chosen:
            os.write(write_fd, b"x")
        ready = poller.poll(LOOSE * 1000)
        assert ready == [(pipes[3][0], libzmq.POLLIN), (pipes[31][0], libzmq.POLLIN), (pipes[59][0], libzmq.POLLIN)]
        poller.unregister(pipes[31][0])
        assert [target for target, _ in poller.poll(0)] == [pipes[3][0], pipes[59][0]]
    finally:
        sock.close(0)
        ctx.term()
        for fds in pipes:
            for fd in fds:
                os.close(fd)


def test_a_misspelt_binding_is_a_clear_error_not_ignored(tmp_path: Path) -> None:
    """As a wrong SHUTDOWNBUS_TRANSPORT is: join() and the command line say
    what the variable may be."""
    env = {**os.environ, ENV_ZMQ_BINDING: "ctypes"}
    code = "import shutdownbus\ntry:\n    shutdownbus.join()\nexcept shutdownbus.ChannelError as exc:\n    print(exc)\n"
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == f"{ENV_ZMQ_BINDING} must be 'pyzmq' or unset, not 'ctypes'", child
    cli = [sys.executable, "-m", "shutdownbus", "run", "--", sys.executable, "-c", "pass"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done
    assert done.stderr.strip() == f"shutdownbus: {ENV_ZMQ_BINDING} must be 'pyzmq' or unset, not 'ctypes'", done


def ready_child(binding: str) -> list[str]:
    code = (
        "import os, sys, time, shutdownbus\n"
        "from shutdownbus import _zmq\n"
        "shutdownbus.join()\n"
        f"assert _zmq.BINDING {'==' if binding == 'pyzmq' else '!='} 'pyzmq', _zmq.BINDING\n"
        f"assert ('zmq' in sys.modules) is {binding == 'pyzmq'}\n"
        "shutdownbus.ready()\n"
        "time.sleep(600)\n"
    )
    return [sys.executable, "-c", code]


@pytest.mark.parametrize("binding", ["pyzmq", "ours"])
def test_a_member_on_either_binding_is_stopped_by_a_parent_on_ours(
    binding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable chooses pyzmq in the member (and in what it spawns); the
    stop goes down a chain of three and every report comes back."""
    if binding == "pyzmq":
        monkeypatch.setenv(ENV_ZMQ_BINDING, "pyzmq")
    else:
        monkeypatch.delenv(ENV_ZMQ_BINDING, raising=False)
    middle = (
        "import sys, time, shutdownbus\n"
        "shutdownbus.join()\n"
        f"child = shutdownbus.spawn({ready_child(binding)!r})\n"
        "child.wait_ready(60)\n"
        "shutdownbus.ready()\n"
        "time.sleep(600)\n"
    )
    child = shutdownbus.spawn([sys.executable, "-c", middle], stderr=subprocess.PIPE)
    with child:
        child.wait_ready(LOOSE * 2)
        report = child.stop(timeout=LOOSE)
    assert report.ok, report
    assert [entry.outcome for entry in report.entries] == [shutdownbus.Outcome.STOPPED] * 2, report
