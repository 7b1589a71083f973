"""The platform layer's small pieces, on the real OS."""

from __future__ import annotations

import os
import select
import threading

import pytest

from shutdownbus import _platform


@pytest.fixture(params=["eventfd", "socketpair"])
def wake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> _platform.WakeChannel:
    if request.param == "eventfd" and not hasattr(os, "eventfd"):
        pytest.skip("no eventfd here")
    if request.param == "socketpair":
        monkeypatch.delattr(os, "eventfd", raising=False)
    channel = _platform.WakeChannel()
    request.addfinalizer(channel.close)
    return channel


def readable(channel: _platform.WakeChannel, timeout: float = 0.0) -> bool:
    return bool(select.select([channel.fileno()], [], [], timeout)[0])


def test_wake_channel_is_readable_once_set_until_cleared(wake: _platform.WakeChannel) -> None:
    assert not readable(wake)
    for _ in range(3):  # several wake-ups before the poller looks: one clear() takes them all
        wake.set()
    assert readable(wake)
    wake.clear()
    assert not readable(wake)
    wake.clear()  # nothing to clear: no error, no blocking
    assert not readable(wake)


def test_wake_channel_wakes_a_thread_waiting_on_it(wake: _platform.WakeChannel) -> None:
    waiting, woke = threading.Event(), threading.Event()

    def poller() -> None:
        waiting.set()
        if readable(wake, timeout=30):
            woke.set()

    thread = threading.Thread(target=poller)
    thread.start()
    assert waiting.wait(30)
    wake.set()
    thread.join(30)
    assert woke.is_set()
