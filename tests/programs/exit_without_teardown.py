"""Exit through ``_cpython.exit_without_teardown`` and show what ran.

    exit_without_teardown.py CPYTHON_PY

Loads _cpython.py on its own (any CPython can run this).  Before the exit:
an atexit handler, a thread that is not a daemon and finishes only once the
main thread is done, text left in stdout's buffer, and an object whose
finalizer would print during the interpreter's teardown.  Run by
tests/test_cpython.py under every CPython of this machine.
"""

from __future__ import annotations

import atexit
import importlib.util
import sys
import threading

spec = importlib.util.spec_from_file_location("_cpython", sys.argv[1])
assert spec is not None and spec.loader is not None
cpython = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpython)


class Finalized:
    def __del__(self) -> None:
        print("teardown ran", flush=True)


main_done = threading.Event()
kept = Finalized()  # a module global: finalized by the teardown, if any
atexit.register(lambda: print("atexit ran"))
threading.Thread(target=lambda: main_done.wait() and print("thread finished"), daemon=False).start()
sys.stdout.write("buffered, ")
main_done.set()
cpython.exit_without_teardown(7)
print("not exited")
