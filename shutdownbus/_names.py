"""Naming processes as ``ps`` users recognise them, from their command lines.

Rules of this module:

* Pure: command lines in, names out.  No psutil, no I/O (`_processes`
  reads the command lines; `_child` names a child it has not started yet).
* A name is at most `MAX_NAME` characters; printing it safely is the
  printer's job (`_text.printable`).
"""

from __future__ import annotations

import os

#: The ``-c`` programs of processes that end on their own once their owner
#: exits, and are meant to outlive it for a moment to clean up after it:
#: multiprocessing's resource tracker (which ignores SIGINT and SIGTERM and
#: unlinks what its owner leaked when the owner's end of its pipe closes), and
#: its forkserver (which exits when its owner's end of its pipe closes).
COMPANIONS = {
    "from multiprocessing.resource_tracker import main": "multiprocessing.resource_tracker",
    "from multiprocessing.semaphore_tracker import main": "multiprocessing.semaphore_tracker",
    "from multiprocessing.forkserver import main": "multiprocessing.forkserver",
    "from multiprocessing.spawn import spawn_main": "multiprocessing.spawn",
}


_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


def _is_python(exe: str) -> bool:
    """Whether ``exe`` (a basename) names a Python interpreter: ``python``,
    ``python3.12``, ``pypy3``, ``python3.13t``, ``pythonw.exe``, in any case.

    String tests, not a regular expression: compiling one cost every member
    with children 0.35 ms of CPU when its stop came (its first naming of a
    process), at the moment the stop's way down the tree needs the CPU.
    """
    name = exe.lower()
    if name.endswith(".exe"):
        name = name[: -len(".exe")]
    for interpreter in ("python", "pypy"):
        if name.startswith(interpreter):
            version = name[len(interpreter) :]
            if version[-1:] in _ASCII_LETTERS:  # a build's letter: 3.13t, 3.12d, pythonw
                version = version[:-1]
            return all(c in "0123456789." for c in version)
    return False


_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")
MAX_NAME = 64


def describe(cmdline: list[str], fallback: str) -> tuple[str, bool]:
    """A process's name as ``ps`` users recognise it, and whether it is a companion.

    * A process title (one argument with spaces, as setproctitle writes
      them: ``gunicorn: worker [app]``): the title.
    * A Python interpreter: the script's basename (``gunicorn``,
      ``server.py``), the module of ``-m``, the multiprocessing role of a
      ``-c`` program it recognises, else ``python -c``.
    * Anything else: ``argv[0]``'s basename.

    Args:
        cmdline: The process's arguments (empty for a zombie or when unreadable).
        fallback: The OS's name for it (``comm`` on Linux), used when ``cmdline`` is empty.

    Returns:
        The name (at most 64 characters) and whether the process is one of `COMPANIONS`.
    """
    if not cmdline or not cmdline[0]:
        return fallback[:MAX_NAME], False
    arg0 = cmdline[0]
    if len(cmdline) == 1 and " " in arg0:
        return arg0[:MAX_NAME], False
    exe = os.path.basename(arg0)
    if not _is_python(exe):
        return exe[:MAX_NAME], False
    args = iter(cmdline[1:])
    for arg in args:
        if arg == "-c":
            code = next(args, "")
            for start, role in COMPANIONS.items():
                if code.startswith(start):
                    return role, role != "multiprocessing.spawn"
            return f"{exe} -c", False
        if arg == "-m":
            return next(args, exe)[:MAX_NAME], False
        if arg in _OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg.startswith("-") and arg != "-":
            continue
        else:
            return os.path.basename(arg)[:MAX_NAME], False
    return exe[:MAX_NAME], False
