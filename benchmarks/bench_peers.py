"""shutdownbus beside the supervisors and inits users compare it with (``make bench``).

    python benchmarks/bench_peers.py [--reps N] [--quick]

The same 111-process tree (fan-out 10 x depth 2, benchmarks/_tree.py: each
process runs a cleanup on its stop and marks it in a file) under each
contender, stopped as its users stop it, interleaved A B C ... A B C:

  shutdownbus      ``Child.stop(timeout=3)`` of a tree of members
  run + send-stop  ``shutdownbus run --stop-timeout 3`` of that tree, and
                   the ``shutdownbus send-stop`` command
  tini -g          SIGTERM to tini, which passes it to the tree's process
                   group; the tree forwards SIGTERM itself (the reference
                   article's way), as in the rows below
  dumb-init        SIGTERM to dumb-init (its default: the whole session)
  honcho           SIGTERM to ``honcho start`` (its processes' groups; it
                   kills what is left after 5 s, not settable)
  supervisord      SIGTERM to ``supervisord -n``, with ``stopasgroup``,
                   ``killasgroup`` and ``stopwaitsecs=3``
  circus           SIGTERM to ``circusd``, with ``stop_children`` and
                   ``graceful_timeout=3``
  killpg           ``os.killpg(SIGTERM)`` of the tree's group, by hand

Twice: a well-behaved tree, and one whose first leaf ignores its stop.
Each row: the time from the stop request until every process of the tree
is gone ("-" if some are still running 10 s later), the cleanups that ran,
and how many processes were left 10 s after the request (then killed).

The peers come from the package index (supervisor, circus, honcho,
dumb-init), installed here into build/peers-venv, and from Debian (tini,
which ``make bench`` installs where it can); a peer that is missing is
skipped with the reason.  Linux only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

import shutdownbus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TREE = str(HERE / "_tree.py")
PY = sys.executable
PEERS_VENV = ROOT / "build" / "peers-venv"
PEER_PACKAGES = ("supervisor", "circus", "honcho", "dumb-init")
DEPTH, FANOUT = 2, 10
PROCESSES = sum(FANOUT**level for level in range(DEPTH + 1))  # 111
TIMEOUT = 3.0  # the stop timeout each contender is given, where it has one
LEFT_AFTER = 10.0


def peers_bin() -> Path | None:
    """build/peers-venv/bin, made and filled from the package index when missing; None if that fails."""
    bin_dir = PEERS_VENV / "bin"
    if all((bin_dir / tool).exists() for tool in ("supervisord", "circusd", "honcho", "dumb-init")):
        return bin_dir
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"   the peers could not be installed into {PEERS_VENV} ({exc}): their rows are skipped")
        return None
    return bin_dir


class Run:
    """One contender's tree, started: its stop, and the processes to watch."""

    def __init__(self, workdir: Path, stubborn: bool) -> None:
        self.workdir = workdir
        self.cleanups = workdir / "cleanups"
        self.cleanups.mkdir()
        self.ready = workdir / "ready"
        self.flags = "root,stubborn" if stubborn else "root"
        self.env = dict(os.environ, BENCH_CLEANUPS=str(self.cleanups), BENCH_READY=str(self.ready))
        self.proc: subprocess.Popen[bytes] | None = None
        self.child: shutdownbus.Child | None = None
        self.stop: Callable[[], object] = lambda: None

    def tree_cmd(self, mode: str) -> list[str]:
        return [PY, TREE, mode, str(DEPTH), str(FANOUT), self.flags]

    def start(self, cmd: list[str], *, session: bool = False) -> None:
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=session,
        )

    def wait_up(self) -> list[psutil.Process]:
        """Wait until the whole tree is up; the tree's processes."""
        end = time.monotonic() + 120
        while not self.ready.exists():
            if time.monotonic() > end or (self.proc is not None and self.proc.poll() is not None):
                raise RuntimeError(f"the tree did not come up in {self.workdir}")
            time.sleep(0.01)
        top = self.proc.pid if self.proc is not None else os.getpid()
        tree = [p for p in [psutil.Process(top), *psutil.Process(top).children(recursive=True)] if _is_tree(p)]
        if len(tree) != PROCESSES:
            raise RuntimeError(f"{len(tree)} tree processes, not {PROCESSES}")
        return tree

    def finish(self) -> None:
        if self.child is not None:
            self.child.wait()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


def _is_tree(p: psutil.Process) -> bool:
    try:
        return bool(p.cmdline()[1:2] == [TREE])  # python _tree.py ..., not a command that runs it
    except psutil.Error:
        return False


def gone_by(procs: list[psutil.Process], t0: float) -> tuple[float | None, int]:
    """Seconds from ``t0`` until every one of ``procs`` is gone (None if not by
    `LEFT_AFTER`), and how many were left then (those are killed)."""
    _, alive = psutil.wait_procs(procs, timeout=max(0.0, t0 + LEFT_AFTER - time.monotonic()))
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return (None, len(alive)) if alive else (time.monotonic() - t0, 0)


def contenders(bin_dir: Path | None) -> dict[str, Callable[[Run], None]]:
    """How each contender starts the tree and is asked to stop it (sets ``run.stop``)."""
    sb = str(Path(PY).parent / "shutdownbus")

    def bus(run: Run) -> None:
        run.child = shutdownbus.spawn(run.tree_cmd("bus"), env=run.env, stdout=subprocess.DEVNULL)
        run.stop = lambda: run.child.stop(timeout=TIMEOUT)  # type: ignore[union-attr]

    def run_send_stop(run: Run) -> None:
        name = f"peers-{os.getpid()}-{run.workdir.name}"
        run.start([sb, "run", "--name", name, "--stop-timeout", str(TIMEOUT), "--", *run.tree_cmd("bus")])
        run.stop = lambda: subprocess.run([sb, "send-stop", name], env=run.env, capture_output=True)

    def signalled(cmd: list[str], session: bool = False) -> Callable[[Run], None]:
        def start(run: Run) -> None:
            run.start([*cmd, *run.tree_cmd("signal")], session=session)
            run.stop = lambda: run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

        return start

    def honcho(run: Run) -> None:
        (run.workdir / "Procfile").write_text("tree: " + " ".join(run.tree_cmd("signal")) + "\n")
        run.start([str(bin_dir / "honcho"), "start"])  # type: ignore[operator]
        run.stop = lambda: run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    def supervisord(run: Run) -> None:
        conf = run.workdir / "supervisord.conf"
        conf.write_text(
            f"[supervisord]\nnodaemon=true\nlogfile={run.workdir}/supervisord.log\npidfile={run.workdir}/s.pid\n"
            f"[program:tree]\ncommand={' '.join(run.tree_cmd('signal'))}\nstopasgroup=true\nkillasgroup=true\n"
            f"stopwaitsecs={TIMEOUT:g}\nstartsecs=0\nautorestart=false\n"
        )
        run.start([str(bin_dir / "supervisord"), "-c", str(conf)])  # type: ignore[operator]
        run.stop = lambda: run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    def circus(run: Run) -> None:
        ini = run.workdir / "circus.ini"
        cmd = run.tree_cmd("signal")
        ini.write_text(
            f"[circus]\nendpoint=ipc://{run.workdir}/ctl\npubsub_endpoint=ipc://{run.workdir}/pub\n"
            f"statsd=False\ncheck_delay=1\n"
            f"[watcher:tree]\ncmd={cmd[0]}\nargs={' '.join(cmd[1:])}\nstop_children=True\n"
            f"graceful_timeout={TIMEOUT:g}\ncopy_env=True\n"
        )
        run.start([str(bin_dir / "circusd"), str(ini)])  # type: ignore[operator]
        run.stop = lambda: run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    def killpg(run: Run) -> None:
        run.start(run.tree_cmd("signal"), session=True)
        run.stop = lambda: os.killpg(run.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]

    found: dict[str, Callable[[Run], None]] = {"shutdownbus": bus, "run + send-stop": run_send_stop}
    if shutil.which("tini"):
        found["tini -g"] = signalled([str(shutil.which("tini")), "-g", "--"])
    if bin_dir is not None:
        found["dumb-init"] = signalled([str(bin_dir / "dumb-init")])
        found["honcho"] = honcho
        found["supervisord"] = supervisord
        found["circus"] = circus
    found["killpg"] = killpg
    return found


def one_stop(start: Callable[[Run], None], stubborn: bool) -> tuple[float | None, int, int]:
    """Start the tree under a contender, stop it: (seconds until all gone, cleanups run, processes left)."""
    with tempfile.TemporaryDirectory(prefix="sbpeer-") as tmp:
        run = Run(Path(tmp), stubborn)
        start(run)
        try:
            tree = run.wait_up()
            t0 = time.monotonic()
            run.stop()
            took, left = gone_by(tree, t0)
            return took, len(os.listdir(run.cleanups)), left
        finally:
            try:
                run.finish()
            finally:
                for p in psutil.Process().children(recursive=True):  # nothing of this round may stay
                    if _is_tree(p):
                        p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="one repetition (a smoke run)")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 5)
    if sys.platform != "linux":
        print("10. peers: Linux only")
        return
    tree = f"{PROCESSES}-process tree (fan-out {FANOUT} x depth {DEPTH})"
    print(f"\n10. Beside the peers: a {tree}, stop timeout {TIMEOUT:g} s")
    bin_dir = peers_bin()
    if shutil.which("tini") is None:
        print("   tini is not installed (apt-get install tini): its row is skipped")
    rows = contenders(bin_dir)
    for stubborn in (False, True):
        print(
            "\n   " + ("one leaf ignores its stop" if stubborn else "a well-behaved tree")
            + f": stop to all gone (ms, median (min-max)), cleanups run (of {PROCESSES - stubborn}),"
            f" processes left {LEFT_AFTER:g} s later"
        )
        results: dict[str, list[tuple[float | None, int, int]]] = {name: [] for name in rows}
        for _ in range(reps):
            for name, start in rows.items():  # interleaved
                results[name].append(one_stop(start, stubborn))
        best = None
        for name, got in results.items():
            times = [t * 1000 for t, _, _ in got if t is not None]
            finished = len(times) == len(got)
            shown = f"{statistics.median(times):.1f}  ({min(times):.1f}-{max(times):.1f})" if finished else "-"
            cleanups = statistics.median(c for _, c, _ in got)
            left = max(n for _, _, n in got)
            print(f"   {name:<18}{shown:>28}{cleanups:>10.0f}{left:>8}")
            if finished and not left and (best is None or statistics.median(times) < best[1]):
                best = (name, statistics.median(times))
        if best is not None:
            print(f"   fastest to end everything: {best[0]}")


if __name__ == "__main__":
    os.environ.setdefault("SHUTDOWNBUS_RUNTIME_DIR", tempfile.mkdtemp(prefix="sbp-"))
    main()
