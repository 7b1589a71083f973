"""Logging, imported only when there is something to log.

The ``logging`` package costs a few milliseconds to import, and a member that
only joins and stops never logs; so the logger is made on first use.
"""

from __future__ import annotations

from typing import Any


def _logger() -> Any:
    import logging

    return logging.getLogger("shutdownbus")


def warning(message: str, *args: object) -> None:
    """Log a warning on the ``shutdownbus`` logger."""
    _logger().warning(message, *args)


def exception(message: str) -> None:
    """Log an error with the current exception's traceback."""
    _logger().exception(message)
