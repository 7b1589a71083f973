"""Running a function on another thread and taking its result back.

Rules of this module:

* It imports only ``threading``, which every process that calls it has
  loaded (a member's bus, a spawning process).
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")


class NotRun(TimeoutError):
    """The other thread did not run the function in time (not an error of the function's own)."""


def call_on(submit: Callable[[Callable[[], None]], object], fn: Callable[[], T], timeout: float | None = None) -> T:
    """``fn()``, run by whatever thread ``submit`` hands it to; its result, or its exception raised here.

    Args:
        submit: Queues a function for the other thread.
        fn: What to run there.
        timeout: Seconds to wait for it (None: for ever).

    Raises:
        NotRun: it did not run within ``timeout``.
    """
    done = threading.Event()
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed back to the caller
            box.append((False, exc))
        done.set()

    submit(run)
    if not done.wait(timeout):
        raise NotRun("the other thread did not run it in time")
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
