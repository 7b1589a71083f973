"""Open 100 plain connections to a zmq endpoint and hold them.

    intruder.py ENDPOINT

Prints how many it opened, or the name of the error that stopped it, then
holds them until its stdin closes.
"""

from __future__ import annotations

import socket
import sys

endpoint = sys.argv[1]
held = []
try:
    for _ in range(100):
        if endpoint.startswith("ipc://"):
            s = socket.socket(socket.AF_UNIX)
            s.connect(endpoint[len("ipc://") :])
        else:
            host, port = endpoint[len("tcp://") :].rsplit(":", 1)
            s = socket.create_connection((host, int(port)))
        held.append(s)
    print(len(held), flush=True)
except OSError as exc:
    print(type(exc).__name__, flush=True)
sys.stdin.read()  # holds them until told to go
