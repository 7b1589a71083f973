"""Logging, without ever importing ``logging``.

A member that only joins and stops never logs, and the ``logging`` package
costs a few milliseconds to import; worse, on the exit path nothing may be
imported at all (see `_member._at_exit`).  So messages go to the
``shutdownbus`` logger when the program has loaded ``logging`` (it may have
configured it), and otherwise straight to stderr, which is what ``logging``
would do with them unconfigured (its last-resort handler).  `info` lines
(the stop log, `_stop_log`) go only to a logger the program loaded and
enabled INFO on, and nowhere otherwise, as ``logging`` would do with them.
"""

from __future__ import annotations

import sys


def _logger() -> object | None:
    logging = sys.modules.get("logging")
    return None if logging is None else logging.getLogger("shutdownbus")


def warning(message: str, *args: object) -> None:
    """Log a warning on the ``shutdownbus`` logger."""
    logger = _logger()
    if logger is not None:
        logger.warning(message, *args)  # type: ignore[attr-defined]
    else:
        print(message % args if args else message, file=sys.stderr)


def exception(message: str) -> None:
    """Log an error with the current exception's traceback."""
    logger = _logger()
    if logger is not None:
        logger.exception(message)  # type: ignore[attr-defined]
    else:
        print(message, file=sys.stderr)
        sys.__excepthook__(*sys.exc_info())


def info(name: str, message: str, *args: object) -> None:
    """Log ``message % args`` at INFO on the logger ``name``, only if the program
    loaded ``logging`` and enabled INFO there (else nothing, not even stderr:
    such lines are for who asked for them)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return
    logger = logging.getLogger(name)
    if logger.isEnabledFor(logging.INFO):
        logger.info(message, *args)
