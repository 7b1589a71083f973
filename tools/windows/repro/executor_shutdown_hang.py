"""Under wine, ProcessPoolExecutor.shutdown() can hang when the main thread
ended the executor's workers just before (as a console Ctrl-C does, and as
shutdownbus does on a stop).  No shutdownbus here: a plain SIGINT handler.

    tools/windows/run-python.sh tools/windows/repro/executor_shutdown_hang.py

Prints "interrupted ok", or, after 6 s, the stacks: the executor's manager
thread waits in PipeConnection._recv_bytes for a message that poll() said
was there (multiprocessing's zero-length wake-up messages, whose handling
depends on the Windows version; wine behaves differently).  Seen in 4 runs
of 16 under wine 8.0 with CPython 3.12.9; a real Windows machine must say
whether it happens there.
"""

import concurrent.futures
import faulthandler
import signal
import threading
import time


def task(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


if __name__ == "__main__":
    faulthandler.dump_traceback_later(6, exit=True)
    try:
        with concurrent.futures.ProcessPoolExecutor(4) as executor:
            list(executor.map(task, [0] * 4))

            def on_sigint(signum: int, frame: object) -> None:
                for worker in list(executor._processes.values()):
                    if worker.is_alive():
                        worker.terminate()
                raise KeyboardInterrupt

            signal.signal(signal.SIGINT, on_sigint)
            threading.Timer(1, signal.raise_signal, (signal.SIGINT,)).start()
            time.sleep(600)
    except KeyboardInterrupt:
        print("interrupted ok", flush=True)
