"""A small TCP echo server with a pool of worker processes, stoppable as one tree.

    shutdownbus run --name echo -- python examples/echo_server.py   # terminal 1
    shutdownbus send-stop echo                                      # terminal 2

The server opens the listening socket, starts its workers with
shutdownbus.spawn() and hands each the socket (POSIX: an inherited file
descriptor); every worker accepts and echoes.  A stop reaches the server,
which forwards it to every worker at once; each prints its cleanup.  Ctrl-C
in terminal 1 stops everything natively too.

Options: --port (default 0: any free port, printed), --workers (default 3),
--listen-fd (serve on an inherited listening socket; see test_echo_server.py).
"""

from __future__ import annotations

import argparse
import socket
import sys

import shutdownbus


def server(port: int, workers: int, listen_fd: int | None) -> None:
    shutdownbus.join(name="echo-server")
    if listen_fd is not None:  # a socket made by whoever started us (a test, a socket activator)
        listener = socket.socket(fileno=listen_fd)
    else:
        listener = socket.create_server(("127.0.0.1", port))
    fd = listener.fileno()
    pool = []
    try:
        for i in range(workers):
            cmd = [sys.executable, __file__, "--worker", str(fd), "--name", f"worker-{i}"]
            pool.append(shutdownbus.spawn(cmd, pass_fds=[fd], ready_timeout=30))
        print(f"echo server on 127.0.0.1:{listener.getsockname()[1]} with {workers} workers", flush=True)
        shutdownbus.ready()
        for worker in pool:
            worker.wait()
    except KeyboardInterrupt as exc:  # Ctrl-C, or shutdownbus.StopRequested
        why = exc.reason if isinstance(exc, shutdownbus.StopRequested) else "Ctrl-C"
        print(f"echo-server: stopping ({why})", flush=True)
    finally:
        for worker in pool:
            worker.wait()
        listener.close()
        print("echo-server: workers gone, socket closed", flush=True)


def worker(fd: int, name: str) -> None:
    shutdownbus.join(name=name)
    listener = socket.socket(fileno=fd)
    served = 0
    try:
        shutdownbus.ready()  # inside the try: a stop may come as soon as we are ready
        while True:
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)
            served += 1
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        print(f"{name}: cleaned up after {served} connection(s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="A TCP echo server with a pool of workers.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--listen-fd", type=int, help="serve on this inherited listening socket instead")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.name)
    else:
        server(args.port, args.workers, args.listen_fd)


if __name__ == "__main__":
    main()
