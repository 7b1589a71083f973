"""``shutdownbus run`` as the init of a container: real PID namespaces.

``unshare --pid --fork --mount-proc`` makes ``run`` pid 1 of a new PID
namespace, as ``docker run`` does (the same /tmp, so the registry is
shared, as with a bind mount).  It needs CAP_SYS_ADMIN (CI runs as root);
elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import MEMBER, log_lines, wait_for

import shutdownbus

SCRIPT = str(Path(sys.executable).parent / "shutdownbus")
PROGRAMS = Path(__file__).parent / "programs"


def _can_unshare() -> str | None:
    if sys.platform != "linux" or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "needs Linux with util-linux's unshare and nsenter"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else f"cannot make a PID namespace here ({probe.stderr.decode().strip()})"


WHY_NOT = _can_unshare()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


class Container:
    """``unshare --pid --fork --mount-proc shutdownbus run --name NAME ARGS... -- CMD``."""

    def __init__(self, name: str, cmd: list[str], *run_args: str) -> None:
        self.name = name
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", SCRIPT, "run", "--name", name, *run_args, "--", *cmd],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: bool(psutil.Process(self.unshare.pid).children()), 60, "unshare did not start run")
        self.init = psutil.Process(self.unshare.pid).children()[0]  # run, pid 1 inside

    def readline(self) -> str:
        assert self.unshare.stdout is not None
        return self.unshare.stdout.readline()

    def inside(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A shutdownbus command run inside the container (as ``docker exec`` would)."""
        command = ["nsenter", "-t", str(self.init.pid), "-p", "-m", SCRIPT, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    def close(self) -> None:
        if self.unshare.poll() is None:
            self.init.kill()  # the kernel kills the rest of the namespace with its init
            self.unshare.wait(60)
        if self.unshare.stdout is not None:
            self.unshare.stdout.close()


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.close()


def zombies_of(proc: psutil.Process) -> list[int]:
    zombies = []
    for child in proc.children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child.pid)
        except psutil.NoSuchProcess:
            pass  # reaped meanwhile
    return zombies


def test_as_init_it_reaps_every_orphan(containers: list[Container]) -> None:
    """Before: 20 zombies under pid 1 after 2 s (tini: 0)."""
    containers.append(box := Container("zombies", [str(PROGRAMS / "orphans.sh")]))
    assert box.readline() == "orphans made\n"
    # Each orphan lives 0.1 s; they are reaped as they exit.
    wait_for(lambda: not zombies_of(box.init) and len(box.init.children()) == 1, 30, "orphans left as zombies")
    assert box.init.children()[0].name() == "sleep"  # the command itself, its status kept for it
    box.init.send_signal(signal.SIGTERM)
    assert box.unshare.wait(60) == 128 + signal.SIGTERM  # the command died of the polite request


def test_sigterm_to_init_stops_the_tree_through_the_bus(tmp_path: Path, containers: list[Container]) -> None:
    """docker stop: SIGTERM to pid 1.  Every cleanup runs, and the exit status is the command's."""
    log = tmp_path / "log"
    cmd = [sys.executable, MEMBER, "--log", str(log), "--depth", "1", "--announce"]
    containers.append(box := Container("web", cmd))
    assert box.readline().startswith("ready ")
    box.init.send_signal(signal.SIGTERM)
    assert box.unshare.wait(60) == 0
    lines = log_lines(log)
    assert "m got stop SIGTERM" in lines and "m cleanup" in lines and "m.0 cleanup" in lines, lines


def test_the_registry_across_pid_namespaces(tmp_path: Path, containers: list[Container]) -> None:
    """Before: a list on the host deleted the container's entry as dead (its
    pid 1 means another process outside), and send-stop inside then answered
    'no running tree'."""
    cmd = [sys.executable, MEMBER, "--log", str(tmp_path / "log"), "--announce"]
    containers.append(box := Container("c2", cmd))
    assert box.readline().startswith("ready ")
    listed = subprocess.run([SCRIPT, "list", "--json"], capture_output=True, text=True, timeout=60, check=True)
    [row] = [r for r in json.loads(listed.stdout) if r["name"] == "c2"]
    assert row["here"] is False and row["processes"] is None
    refused = subprocess.run([SCRIPT, "send-stop", "c2"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "another PID namespace" in refused.stderr, refused.stderr
    # Inside, the entry is still there, and the admin lives to print its report.
    done = box.inside("send-stop", "c2", "--json")
    assert done.returncode == 0, done.stderr
    report = shutdownbus.StopReport.from_dict(json.loads(done.stdout))
    assert report.ok and report.entries[0].pid == 1 and report.entries[0].returncode == 0, report
    assert box.unshare.wait(60) == 0
