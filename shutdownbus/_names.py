"""Naming processes as ``ps`` users recognise them, from their command lines.

Rules of this module:

* Pure: command lines in, names out.  No psutil, no I/O (`_processes`
  reads the command lines; `_child` names a child it has not started yet).
* A name is at most `MAX_NAME` characters; printing it safely is the
  printer's job (`_text.printable`).
"""

from __future__ import annotations

import functools
import os
import re

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


@functools.cache
def _python() -> re.Pattern[str]:
    # Compiled at first use: a millisecond that `list`, which names no process, does without.
    return re.compile(r"^(python|pypy)[0-9.]*[a-z]?(\.exe)?$", re.IGNORECASE)


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
    if not _python().match(exe):
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
