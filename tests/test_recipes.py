"""Each recipe of docs/recipes.md (examples/recipes/), run with the real program."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import READY, SCRIPT, START_METHODS, WINDOWS, wait_for

import shutdownbus

RECIPES = Path(__file__).parent.parent / "examples" / "recipes"
PROGRAMS = Path(__file__).parent / "programs"
BIN = Path(sys.executable).parent


def stop(child: shutdownbus.Child) -> tuple[shutdownbus.StopReport, str]:
    report = child.stop()
    out, _ = child.communicate(timeout=60)
    return report, out


@pytest.mark.skipif(not (BIN / "gunicorn").exists(), reason="gunicorn is not installed (POSIX only)")
def test_gunicorn_on_the_bus_keeps_its_graceful_stop() -> None:
    cmd = [str(BIN / "gunicorn"), "-c", str(RECIPES / "gunicorn_conf.py"), "wsgi_app:app"]
    out = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    child = shutdownbus.spawn(cmd, cwd=PROGRAMS, ready_timeout=READY, **out)
    # gunicorn is ready (when_ready) before it forks its workers.
    wait_for(lambda: len(psutil.Process(child.pid).children()) == 2, 60, "gunicorn did not fork its workers")
    report, text = stop(child)
    assert report.ok, report
    master, *workers = report.entries
    assert master.member and master.returncode == 0, report
    assert len(workers) == 2 and all(w.outcome == "stopped" for w in workers), report
    assert "gunicorn: on_exit ran" in text, text


@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="uvicorn is not installed")
@pytest.mark.skipif(WINDOWS, reason="the recipe turns the stop into uvicorn's SIGTERM, which Windows cannot deliver")
def test_an_asgi_app_joins_from_its_lifespan() -> None:
    cmd = [sys.executable, "-m", "uvicorn", "--port", "0", "lifespan_app:app"]
    child = shutdownbus.spawn(cmd, cwd=RECIPES, ready_timeout=READY, stdout=subprocess.PIPE, text=True)
    report, out = stop(child)
    assert report.ok, report
    # uvicorn re-raises the SIGTERM it handled once its shutdown is done.
    assert [(e.outcome, e.member, e.returncode) for e in report.entries] == [("stopped", True, -signal.SIGTERM)]
    assert "lifespan: shutdown ran" in out


@pytest.mark.parametrize("method", START_METHODS)
def test_a_pool_needs_nothing_special(method: str) -> None:
    cmd = [sys.executable, str(RECIPES / "pool.py"), method]
    child = shutdownbus.spawn(cmd, ready_timeout=READY, stdout=subprocess.PIPE, text=True)
    report, out = stop(child)
    assert report.ok, report
    assert "pool: cleaned up" in out


def test_a_worker_loop_finishes_the_job_in_hand() -> None:
    child = shutdownbus.spawn([sys.executable, str(RECIPES / "worker_loop.py")], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:  # stopped while it works on its second job
        if line == "worker: started job 2\n":
            break
    report, out = stop(child)
    assert report.ok, report
    assert "worker: finished job 2" in out and "worker: stopped after 2 job(s)" in out, out


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell")
def test_a_shell_script_under_run_cleans_up_with_its_trap() -> None:
    cmd = [*SCRIPT, "run", "--name", "jobs", "--", str(RECIPES / "jobs.sh")]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None and run.stdout.readline() == "jobs.sh: up\n"
    done = subprocess.run([*SCRIPT, "send-stop", "jobs", "--json"], capture_output=True, text=True, timeout=60)
    report = shutdownbus.StopReport.from_dict(json.loads(done.stdout))
    out, _ = run.communicate(timeout=60)
    assert done.returncode == 0 and report.ok, report
    assert "jobs.sh: cleaned up" in out
    assert run.returncode == 0
