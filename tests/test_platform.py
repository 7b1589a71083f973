"""The platform layer's small pieces, on the real OS."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
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


@pytest.mark.skipif(not _platform.LINUX, reason="reads /proc")
def test_started_at_agrees_with_psutil_and_forgets_the_reaped() -> None:
    """`shutdownbus list` tells a live root from a dead one without psutil:
    the start time it reads must be psutil's, which the registry recorded."""
    import subprocess
    import sys

    import psutil

    from shutdownbus import _processes

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        for pid in (os.getpid(), child.pid):
            born = psutil.Process(pid).create_time()
            assert _platform.started_at(pid) == pytest.approx(born, abs=0.02)
            assert _processes.still(pid, born) and not _processes.still(pid, born - 5)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert _platform.started_at(child.pid) is None
    assert not _processes.still(child.pid, 0.0)


@pytest.mark.skipif(not _platform.LINUX, reason="hides Linux's /proc")
def test_without_proc_the_linux_readers_say_they_cannot_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_platform: "a Linux-only reader of /proc raises OSError elsewhere rather
    than answer".  With /proc hidden (a chroot, a sandbox, or another OS), a
    live process must not be taken for gone, nor its children for none."""
    from shutdownbus import _processes, _tree
    from shutdownbus._platform import _procfs

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        monkeypatch.setattr(_procfs, "PROC", str(tmp_path))
        monkeypatch.setattr(_procfs, "_boot", [])
        for reader in (_platform.child_pids, _platform.has_exited, _platform.started_at):
            with pytest.raises(OSError):
                reader(child.pid)
        assert _platform.joined_the_bus(child.pid) is None
        assert _platform.pid_namespace() == ""
        # What `shutdownbus list` shows in PROCS: a live leaf is one process, not none.
        monkeypatch.setattr(_platform, "KERNEL_LISTS_CHILDREN", False)
        assert _tree.tree_size(child.pid) == 1
        assert _processes.still(child.pid, psutil.Process(child.pid).create_time())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()


def test_each_platform_function_says_what_it_does_on_each_os() -> None:
    """_platform: "Each function documents what it does on Linux, on the other
    POSIX systems and on Windows": every public function and class of its
    modules names Windows (or says "every OS"/"every other OS"/"elsewhere")."""
    import inspect

    from shutdownbus._platform import _console, _exits, _init_duties, _jobs, _os, _pipes, _procfs, _requests, _waking

    silent = []
    for module in (_console, _exits, _init_duties, _jobs, _os, _pipes, _procfs, _requests, _waking):
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            doc = " ".join((inspect.getdoc(obj) or "").lower().split())
            if not any(word in doc for word in ("windows", "every os", "every other os", "elsewhere")):
                silent.append(f"{module.__name__}.{name}")
    assert silent == []


@pytest.mark.skipif(_platform.WINDOWS, reason="Windows does all of it: tests/test_windows_jobs.py")
def test_jobs_and_console_events_do_nothing_where_there_are_none() -> None:
    """_jobs and _console: "Every other OS: ... 0 ... raises OSError without
    sending anything ... sends nothing": spawn() adds no creation flag there
    and a child has no job."""
    assert _platform.suspended_creation_flag() == 0
    assert not _platform.has_console()
    with pytest.raises(OSError):
        _platform.contain(0, os.getpid())
    with pytest.raises(OSError):
        _platform.resume_process(0, os.getpid())
    with pytest.raises(OSError):
        _platform.send_ctrl_break(os.getpid())
    assert _platform.break_process_groups([os.getpid()]) == {}


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd-or-os-default", "polled"])
def test_an_exit_seen_late_has_no_time_but_keeps_when_it_last_ran(pidfds: bool) -> None:
    """Seen gone long after the look before is no proof of when it ended:
    the exit time is None, and `running_at` says when it was last known to
    run (a report's ``lost`` rests on that, never on when it was seen gone)."""
    from shutdownbus._tree import Member

    watch = _platform.ExitWatch()
    watch.PRECISION = -1.0  # every exit not seen as it happened counts as seen late
    if not pidfds:
        watch.MAX_PIDFDS = 0
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        added = time.monotonic()
        watch.add(proc.pid, lambda: proc.poll() is not None)
        assert watch.wait(0) == []  # a look that sees it running
        looked = time.monotonic()
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)
    ended = time.monotonic()
    assert watch.wait(0) == [proc.pid]  # not waiting: seen late
    assert watch.exits[proc.pid] is None
    assert added <= watch.running_at[proc.pid] <= looked < ended
    watch.close()

    member = Member(psutil.Process(os.getpid()), 1, 1, "x")
    member.mark_gone(None, ended + 5.0, watch.running_at[proc.pid])
    assert member.went_after(added - 1.0)  # it ran after that moment
    assert not member.went_after(looked)  # seen gone later, but it may have ended right then


WAITS_WITHOUT_DESCRIPTORS = """
import os, resource, select, subprocess, sys, time
from shutdownbus import _platform

wait_exited = _platform.wait_exited  # its module loaded while descriptors can still be opened

reader = [sys.executable, "-c", "import sys; sys.stdin.read()"]
kids = [subprocess.Popen(reader, stdin=subprocess.PIPE) for _ in range(3)]

def exited(kid):
    return os.waitid(os.P_PID, kid.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

def is_gone(kid):
    # Asked, so waited for without a descriptor: now let it end.
    if not kid.stdin.closed:
        kid.stdin.close()
    return exited(kid)

_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))  # no descriptor can be opened any more
began = time.monotonic()
wait_exited({kid.pid: (lambda kid=kid: is_gone(kid)) for kid in kids}, 30.0)
took = time.monotonic() - began
print([exited(kid) for kid in kids], took < 20.0)
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds: elsewhere wait_exited returns at once")
def test_wait_exited_waits_for_processes_it_has_no_descriptor_for() -> None:
    """Once no pidfd can be opened (a full descriptor table, or past the
    watch's cap), each process is still waited for, by asking is_gone:
    before, it was taken for gone and not waited for."""
    done = subprocess.run([sys.executable, "-c", WAITS_WITHOUT_DESCRIPTORS], capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[0] == "[True, True, True] True", done.stdout + done.stderr
