"""Real programs that are not members, stopped their own way: nginx on SIGQUIT,
a Node.js server on SIGTERM, gunicorn stopped right after it is up.

nginx comes from Debian (``apt-get install nginx-light``, which .ci/run does),
node from the machine image; each test is skipped, with that reason, where
its program is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import PROGRAMS, SCRIPT, WINDOWS, reaped, wait_for, wait_gone

import shutdownbus
from shutdownbus._deadlines import JOIN_GRACE

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
NODE = shutil.which("node")
GUNICORN = Path(sys.executable).parent / "gunicorn"

pytestmark = pytest.mark.skipif(WINDOWS, reason="POSIX servers and signals (Windows: tests/test_windows_jobs.py)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def nginx_cmd(tmp_path: Path, port: int) -> tuple[list[str], Path]:
    """nginx in the foreground, with a config of its own in ``tmp_path``, 2 workers; its error log."""
    log = tmp_path / "error.log"
    conf = tmp_path / "nginx.conf"
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"  {kind}_temp_path {tmp_path / kind};" for kind in kinds)
    conf.write_text(
        f"daemon off;\nworker_processes 2;\npid {tmp_path / 'nginx.pid'};\nerror_log {log} notice;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{\n  access_log off;\n{temp}\n"
        f'  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}\n}}\n'
    )
    assert NGINX is not None
    return [NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(log)], log


def nginx_workers(pid: int) -> list[psutil.Process]:
    """The processes below ``pid`` that took nginx's worker title."""
    workers = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if proc.cmdline()[:1] == ["nginx: worker process"]:
                workers.append(proc)
        except psutil.Error:
            pass
    return workers


def send_stop(name: str) -> tuple[int, shutdownbus.StopReport]:
    done = subprocess.run([*SCRIPT, "send-stop", name, "--json"], capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    return done.returncode, shutdownbus.StopReport.from_dict(json.loads(done.stdout))


def stop(proc: subprocess.Popen[bytes], name: str | None) -> tuple[shutdownbus.StopReport, shutdownbus.ReportEntry]:
    """Stop the server ``proc`` started: with ``send-stop NAME`` (it is ``run``,
    which must exit 0), else with `Child.stop`; the report, and the server's row."""
    if name is None:
        report = proc.stop()  # type: ignore[attr-defined]
        return report, report.entries[0]
    status, report = send_stop(name)
    assert status == 0 and proc.wait(60) == 0, report
    return report, report.entries[1]  # after run's own row


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light; .ci/run installs it)")
@pytest.mark.parametrize("with_run", [True, False], ids=["run", "spawn"])
def test_nginx_stops_gracefully_on_sigquit_and_its_workers_go_with_it(tmp_path: Path, with_run: bool) -> None:
    """On 3d995bd nginx got SIGTERM, its fast shutdown: open connections cut."""
    port = free_port()
    cmd, log = nginx_cmd(tmp_path, port)
    if with_run:
        proc = subprocess.Popen([*SCRIPT, "run", "--name", "nginx", "--stop-signal", "QUIT", "--", *cmd])
    else:
        proc = shutdownbus.spawn(cmd, stop_signal="QUIT")
    with reaped(proc, descendants=True):
        wait_for(lambda: answers(port), 60, "nginx answers")
        # One worker may answer while the other is still being started: wait for both.
        wait_for(lambda: len(nginx_workers(proc.pid)) == 2, 60, "nginx's two workers run")
        tree = psutil.Process(proc.pid).children(recursive=True)
        report, master = stop(proc, "nginx" if with_run else None)
        assert wait_gone(tree, 30) == []
    assert report.ok, report
    assert (master.name, master.outcome, master.returncode, master.request) == ("nginx", "stopped", 0, "SIGQUIT")
    workers = [e for e in report.entries if e.name == "nginx: worker process"]
    assert len(workers) == 2 and all(w.outcome == "stopped" for w in workers), report
    text = log.read_text()
    assert "signal 3 (SIGQUIT) received" in text and text.count("gracefully shutting down") == 2, text


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("with_run", [True, False], ids=["run", "spawn"])
def test_a_node_server_is_stopped_at_once_and_runs_its_cleanup(tmp_path: Path, with_run: bool) -> None:
    """A program that can never join waits out no join grace: on 3d995bd a
    Node server stopped 0.3 s after it answered took 631 ms (the rest of
    the grace) against 7 ms for kill -TERM."""
    marker = tmp_path / "cleaned"
    assert NODE is not None
    cmd = [NODE, str(PROGRAMS / "node_server.js"), str(marker)]
    if with_run:
        run = [*SCRIPT, "run", "--name", "web", "--stop-signal", "TERM", "--", *cmd]
        proc = subprocess.Popen(run, stdout=subprocess.PIPE)
    else:
        proc = shutdownbus.spawn(cmd, joins=False, stdout=subprocess.PIPE)
    with reaped(proc):
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        assert answers(port)
        report, node = stop(proc, "web" if with_run else None)
    assert report.ok, report
    assert marker.read_text() == "cleaned up after SIGTERM\n"
    assert (node.outcome, node.returncode, node.member, node.request) == ("stopped", 0, False, "SIGTERM"), report
    assert node.requested is not None and node.requested < JOIN_GRACE / 2, report  # at once, not after the grace


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed (POSIX only)")
def test_gunicorn_stopped_right_after_it_is_up_gets_its_signal_at_once(tmp_path: Path) -> None:
    """A harness that starts gunicorn, makes one request and stops it: on
    3d995bd it paid the rest of the join grace (552 ms against 224 for kill -TERM)."""
    port = free_port()
    cmd = [str(GUNICORN), "-w", "3", "-b", f"127.0.0.1:{port}", "wsgi_app:app"]
    run = subprocess.Popen(
        [*SCRIPT, "run", "--name", "gunicorn", "--stop-signal", "TERM", "--", *cmd],
        cwd=PROGRAMS,
        stderr=subprocess.DEVNULL,
    )
    with reaped(run, descendants=True):
        wait_for(lambda: len(psutil.Process(run.pid).children(recursive=True)) == 4 and answers(port), 60, "workers up")
        status, report = send_stop("gunicorn")
        assert status == 0 and run.wait(60) == 0, report
    master = report.entries[1]
    assert (master.name, master.outcome, master.request) == ("gunicorn", "stopped", "SIGTERM"), report
    assert master.requested is not None and master.requested < JOIN_GRACE / 2, report
    assert len(report.entries) == 5 and report.ok, report
