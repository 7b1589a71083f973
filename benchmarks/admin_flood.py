"""Flood a registered root's tcp admin port, as another local user can, and watch the root's memory.

    SHUTDOWNBUS_TRANSPORT=tcp shutdownbus run --name flooded -- sleep 1000 &
    .venv/bin/python benchmarks/admin_flood.py flooded [--peers 12000] [--seconds 10] [--size 65536] [--json]

For ``--seconds``, ``--peers`` connections are kept open at once (each one
the root drops is opened again), each sending a CURVE greeting and a command
frame that announces ``--size`` bytes, short by one byte: what libzmq holds
until the handshake interval drops it.  Prints the root's RSS before, at the
peak, and 1 s and 8 s after the flood (docs/security.md, known issue 5);
with ``--json``, one line ``{"before": B, "peak": B, "connections": N}``
(bytes) as soon as the flood is over, for tests/test_hardening.py.
Linux (RSS from /proc).
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import time

import psutil

from shutdownbus import _registry

GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"CURVE".ljust(20, b"\0") + b"\0" * 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the registered root (started with SHUTDOWNBUS_TRANSPORT=tcp)")
    parser.add_argument("--peers", type=int, default=12000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=65536, help="the frame size each peer announces")
    parser.add_argument("--json", action="store_true", help="one JSON line of RSS in bytes, nothing after the flood")
    args = parser.parse_args()
    entry = _registry.find(args.name)
    if not entry.endpoint.startswith("tcp://"):
        parser.error(f"{args.name!r} listens on {entry.endpoint}: start it with SHUTDOWNBUS_TRANSPORT=tcp")
    host, port = entry.endpoint[len("tcp://") :].rsplit(":", 1)
    root = psutil.Process(entry.pid)
    frame = GREETING + b"\x06" + args.size.to_bytes(8, "big") + b"\0" * (args.size - 1)
    mib = 2**20
    before = root.memory_info().rss
    if not args.json:
        print(f"before: {before / mib:.1f} MiB", flush=True)
    sel = selectors.DefaultSelector()
    sent: dict[socket.socket, int] = {}

    def close(s: socket.socket) -> None:
        sel.unregister(s)
        s.close()
        del sent[s]

    made, peak = 0, 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        while len(sent) < args.peers:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, int(port)))
            sent[s] = 0
            sel.register(s, selectors.EVENT_WRITE)
            made += 1
        for key, events in sel.select(0.05):
            s = key.fileobj  # type: ignore[assignment]
            try:
                if events & selectors.EVENT_READ:
                    if not s.recv(4096):
                        close(s)
                    continue
                sent[s] += s.send(frame[sent[s] :])
                if sent[s] >= len(frame):
                    sel.modify(s, selectors.EVENT_READ)
            except BlockingIOError:
                continue
            except OSError:
                close(s)
        peak = max(peak, root.memory_info().rss)
    for s in list(sent):
        close(s)
    if args.json:
        print(json.dumps({"before": before, "peak": max(peak, before), "connections": made}), flush=True)
        return
    print(f"{made} connections in {args.seconds:g} s, {args.peers} at a time; peak {peak / mib:.1f} MiB", flush=True)
    time.sleep(1)
    print(f"1 s after: {root.memory_info().rss / mib:.1f} MiB", flush=True)
    time.sleep(7)
    print(f"8 s after: {root.memory_info().rss / mib:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
