"""Ctrl-C stays native: a terminal's interrupt reaches every process of the tree."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import LINUX, PROGRAMS, WINDOWS, reaped

ABC = str(Path(__file__).parent.parent / "examples" / "abc.py")


def read_until(fd: int, marker: bytes | None, timeout: float) -> bytes:
    """Read from a pty master until ``marker`` (or EOF when None) or the timeout."""
    out = b""
    end = time.monotonic() + timeout
    while marker is None or marker not in out:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"waited {timeout} s for {marker!r}; got {out!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's last writer closed it
            chunk = b""
        if not chunk:
            if marker is None:
                return out
            raise EOFError(f"the tree exited before {marker!r}; got {out!r}")
        out += chunk
    return out


def holders(pid: int) -> str:
    """What the tree under ``pid`` is doing: each process, its state, its
    threads and where each waits (for a timeout's message)."""
    lines = []
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return "gone"
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:100]}")
            with open(f"/proc/{proc.pid}/status") as status:  # signals pending, blocked, ignored, caught
                masks = [x for x in status.read().splitlines() if x.startswith(("Sig", "ShdPnd"))]
                lines.append("    " + " ".join(masks))
            before = _cpu_ticks(proc.pid), time.monotonic()
            for tid in os.listdir(f"/proc/{proc.pid}/task"):
                task = f"/proc/{proc.pid}/task/{tid}"
                with open(f"{task}/comm") as comm, open(f"{task}/wchan") as wchan, open(f"{task}/stat") as stat:
                    cpu = stat.read().rsplit(")", 1)[1].split()[11:13]  # utime, stime (clock ticks)
                    lines.append(f"    thread {tid} {comm.read().strip()} waits in {wchan.read().strip()}, cpu {cpu}")
                for name in ("syscall", "stack"):
                    with contextlib.suppress(OSError), open(f"{task}/{name}") as info:
                        lines.append(f"      {name}: {info.read().strip()}")
            if shutil.which("gdb"):  # a thread that runs with no Python frame: where in C
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    # is_tripped and SIGINT's tripped flag set, with the main thread
                    # blocked: a signal whose Python handler waits for the call
                    # to return (CPython's own symbols; an error line without them).
                    tripped = ["-ex", "p is_tripped", "-ex", "p Handlers[2].tripped"]
                    bt = ["gdb", "-p", str(proc.pid), "-batch", *tripped, "-ex", "thread apply all bt"]
                    lines.append(subprocess.run(bt, capture_output=True, text=True, timeout=60).stdout[-6000:])
            # State R is not a spin unless the process burns its time slice.
            ticks = _cpu_ticks(proc.pid) - before[0]
            lines.append(f"    cpu: {ticks} clock ticks in the last {time.monotonic() - before[1]:.1f} s")
        except (psutil.Error, OSError) as exc:
            lines.append(f"{proc.pid} ({exc})")
    return "\n".join(lines)


def _cpu_ticks(pid: int) -> int:
    """The user and system time of every thread of ``pid`` (clock ticks)."""
    with open(f"/proc/{pid}/stat") as stat:
        return sum(int(x) for x in stat.read().rsplit(")", 1)[1].split()[11:13])


@pytest.mark.skipif(WINDOWS, reason="a POSIX terminal (pty); Windows has its console test below")
def test_ctrl_c_in_a_terminal_runs_every_cleanup_and_leaves_nothing() -> None:
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: become A, in the new terminal's foreground group
        # faulthandler: a SIGABRT on a timeout prints where each thread is.
        os.execve(sys.executable, [sys.executable, ABC], dict(os.environ, PYTHONFAULTHANDLER="1"))
    try:
        out = read_until(fd, b"the tree is up", 60)
        tree = psutil.Process(pid).children(recursive=True)
        assert len(tree) == 2
        os.write(fd, b"\x03")  # what the terminal turns into SIGINT for its foreground group
        try:
            # Well short of A's time.sleep(60): a Ctrl-C that A did not take
            # shows A still asleep here, not waking up as the wait ends.
            out += read_until(fd, None, 30)
        except TimeoutError as exc:
            states = holders(pid)
            for proc in [*tree, psutil.Process(pid)]:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGABRT)
            try:
                states += "\nwhere their threads were:\n" + read_until(fd, None, 10).decode(errors="replace")
            except (OSError, EOFError, TimeoutError) as late:  # the message holds what was read
                states += f"\nwhere their threads were: {late}"
            raise TimeoutError(f"{exc}\nthe tree:\n{states}") from None
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    text = out.decode(errors="replace")
    for name in "ABC":
        assert f"{name} got KeyboardInterrupt" in text, text
        assert f"{name} cleaned up" in text, text
    assert "Traceback" not in text, text
    assert os.waitstatus_to_exitcode(status) == 0
    _, still = psutil.wait_procs(tree, timeout=10)
    assert still == []


@pytest.mark.skipif(not LINUX, reason="the program tells that its main thread sleeps from Linux's /proc")
def test_a_ctrl_c_caught_just_before_a_parent_blocks_still_interrupts_it() -> None:
    """The terminal test's rare hang (issue 22, item 7): A, a parent that did
    not join, caught the SIGINT just before its ``time.sleep(60)`` began, and
    CPython ran the handler only when the sleep ended.  Made for sure here:
    the program has the SIGINT caught while its main thread already sleeps."""
    proc = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "ctrl_c_before_a_block.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with reaped(proc, descendants=True):
        try:
            out, err = proc.communicate(timeout=60)  # it would sleep 120 s
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the SIGINT did not end the sleep; its output:\n{out}\n{err}")
    assert proc.returncode == 0, (out, err)
    result = json.loads(out.splitlines()[-1])
    assert result["interrupted"] is True, (out, err)
    assert result["seconds"] < 30, (out, err)


@pytest.mark.skipif(not WINDOWS, reason="a Windows console; POSIX has its terminal test above")
def test_ctrl_c_in_a_windows_console_runs_every_cleanup_and_leaves_nothing() -> None:
    """A console of its own (hidden), so that the Ctrl-C reaches the tree and
    not this test run: what a user's Ctrl-C does, every process attached to
    the console gets it (GenerateConsoleCtrlEvent), and each must take it as a
    KeyboardInterrupt, not as a stop, run its cleanup and exit."""
    hidden = subprocess.STARTUPINFO(dwFlags=subprocess.STARTF_USESHOWWINDOW, wShowWindow=0)  # type: ignore[attr-defined]
    driver = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "console_ctrl_c.py")],
        creationflags=subprocess.CREATE_NEW_CONSOLE,  # type: ignore[attr-defined]
        startupinfo=hidden,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with reaped(driver):
        out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 0, out
    for name in "ABC":
        assert f"{name} got KeyboardInterrupt" in out, out
        assert f"{name} cleaned up" in out, out
    assert "a stop" not in out and "Traceback" not in out, out
    assert out.rstrip().endswith("exit status 0"), out
