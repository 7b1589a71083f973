"""Run a program and record every module loaded while shutdownbus's exit hook runs.

    exit_audit.py RECORD PROGRAM [ARG...]

The exit path must import nothing (see ``shutdownbus._member._at_exit``).
The names of the modules loaded during it are written to RECORD, one per
line, after everything else at exit (an empty file: none).
"""

from __future__ import annotations

import atexit
import runpy
import sys

record, program = sys.argv[1], sys.argv[2]
loaded: list[str] = []
recording = False


def audit(event: str, args: tuple[object, ...]) -> None:
    if event == "import" and recording:
        loaded.append(str(args[0]))


def write() -> None:
    with open(record, "w") as f:
        f.write("".join(name + "\n" for name in loaded))


atexit.register(write)  # registered first, so it runs last
sys.addaudithook(audit)

from shutdownbus import _member  # noqa: E402

exit_hook = _member._at_exit


def recorded_exit_hook() -> None:
    global recording
    recording = True
    try:
        exit_hook()
    finally:
        recording = False


_member._at_exit = recorded_exit_hook  # what join() and register() hand to atexit
sys.argv = sys.argv[2:]
runpy.run_path(program, run_name="__main__")
