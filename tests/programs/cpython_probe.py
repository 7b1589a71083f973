"""Look for each CPython internal that shutdownbus/_cpython.py reaches for.

    cpython_probe.py CPYTHON_PY executor|-

Loads _cpython.py on its own (it needs the standard library only, so any
CPython can run this), tries each of its functions and prints what it found
as JSON.  With ``executor``, also stops a ProcessPoolExecutor whose task
runs (run it in a directory of its own: it writes a file ``started``).
Run by tests/test_cpython.py under every CPython of this machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any


def task(started: str) -> None:
    open(started, "w").close()
    time.sleep(600)


def main() -> None:
    spec = importlib.util.spec_from_file_location("_cpython", sys.argv[1])
    assert spec is not None and spec.loader is not None
    cp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cp)
    found: dict[str, Any] = {"version": list(sys.version_info[:2]), "known": cp._known_version()}

    # 1. A plain Popen.wait() in the main thread: its wait for the child after a
    #    KeyboardInterrupt is found and shortened.
    main_thread = threading.main_thread()
    ident = main_thread.ident
    assert ident is not None
    popen = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    result: dict[str, bool] = {}

    def look() -> None:
        while True:  # until the main thread is in popen.wait()
            frame = sys._current_frames()[ident]
            if cp.skip_popen_sigint_wait(frame):
                result["skipped"] = True
                break
            time.sleep(0.001)
        assert popen.stdin is not None
        popen.stdin.close()

    threading.Thread(target=look).start()
    popen.wait()
    found["popen_wait_found"] = result["skipped"]
    found["popen_wait_shortened"] = getattr(popen, "_sigint_wait_secs", None) == 0

    # 1b. POSIX: a Popen marked while no thread waits for it, whose waits then
    #     read the exit without reaping (Child's _try_wait): poll-free waits,
    #     the short one after a KeyboardInterrupt among them, leave a zombie.
    if hasattr(os, "waitid"):

        class Kept(subprocess.Popen):  # type: ignore[type-arg]
            def _try_wait(self, wait_flags: int) -> Any:
                return cp.wait_without_reaping(self.pid, wait_flags)

        kept = Kept([sys.executable, "-c", "import sys; sys.exit(3)"])
        found["marked"] = cp.mark_unwaited(kept, lambda: None)
        kept._waitpid_lock.acquire()  # type: ignore[attr-defined]  # a thread that waits for it
        found["marked_while_waited"] = cp.mark_unwaited(kept, lambda: None)
        kept._waitpid_lock.release()  # type: ignore[attr-defined]
        kept._wait(timeout=30)  # type: ignore[attr-defined]  # what Popen.wait runs after a KeyboardInterrupt
        found["kept_returncode"] = kept.returncode
        found["kept_zombie"] = os.waitid(os.P_PID, kept.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        os.waitpid(kept.pid, 0)

    # 2. asyncio.run's SIGINT handler (3.11+), and its count of interrupts.
    async def under_run() -> tuple[bool, int | None]:
        handler = cp.asyncio_runner_handler()
        return handler is not None, (cp.interrupts_seen(handler) if handler is not None else None)

    found["runner_handler"], found["interrupts_seen"] = asyncio.run(under_run())
    found["runner_handler_outside"] = cp.asyncio_runner_handler() is not None

    # 3. Whether the main thread is handling a KeyboardInterrupt.
    outside: dict[str, bool] = {}
    t = threading.Thread(target=lambda: outside.update(before=cp.handling_keyboard_interrupt(main_thread)))
    t.start()
    t.join()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        t = threading.Thread(target=lambda: outside.update(during=cp.handling_keyboard_interrupt(main_thread)))
        t.start()
        t.join()
    found["handling_before"], found["handling_during"] = outside["before"], outside["during"]

    # 4. The workers of a ProcessPoolExecutor whose task runs.
    if sys.argv[2] == "executor":
        started = os.path.abspath("started")
        with concurrent.futures.ProcessPoolExecutor(2) as executor:
            future = executor.submit(task, started)
            while not os.path.exists(started):  # the task runs
                time.sleep(0.001)
            found["workers_terminated"] = cp.terminate_process_pool_workers()
            start = time.monotonic()
        found["executor_shutdown_seconds"] = time.monotonic() - start
        found["future_broken"] = type(future.exception()).__name__
    print(json.dumps(found))


if __name__ == "__main__":
    main()
