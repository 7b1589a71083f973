"""The ``shutdownbus`` command line: run, send-stop, list, tree.

Rules of this module:

* argparse does the parsing; every command returns an exit status.
* Exit statuses: 0 everything stopped cleanly; 1 the stop completed but
  escalation was needed or a process failed; 2 usage error, unknown target,
  registry, permission or authentication problem.  ``run`` exits with its
  command's status (128+N when a signal N ended it, on POSIX), 0 for the
  statuses of ``--clean-exit`` after a stop that needed no escalation, 127
  when the command is not found and 126 when it cannot be run.
* Errors are one line on stderr, starting with ``shutdownbus:``; never a
  traceback.
* Start-up is part of every command's cost: at import, this module loads
  argparse and nothing else that ``--help`` and ``list`` do without (not
  the bus, pyzmq, psutil, typing or signal); each command imports what it
  uses.  ``make bench`` (section 8) measures it against ``python -c pass``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

from ._errors import ChildExited, ShutdownBusError

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

EXIT_OK, EXIT_NOT_CLEAN, EXIT_ERROR = 0, 1, 2
#: The reader of our output went away (``shutdownbus list | head -1``): the
#: status of a process that SIGPIPE ended, as a shell shows it (128 + 13).
EXIT_READER_GONE = 141
#: How long run's last word to the service manager waits for its STOPPING=1.
NOTIFY_ORDER_WAIT = 1.0
#: The default of ``run --stop-timeout``: with escalation, a stop takes at most
#: this plus twice `ESCALATION_MARGIN` (docs/lifecycle.md), inside the 10 s
#: that ``docker stop`` and Kubernetes' default grace leave before SIGKILL.
RUN_STOP_TIMEOUT = 8.0

EPILOG = """examples:
  shutdownbus run --name web -- python server.py     # run a stoppable tree named 'web'
  shutdownbus send-stop web                          # stop it from another terminal
  shutdownbus send-stop web --timeout 5 --json       # ... with a deadline, report as JSON
  shutdownbus send-stop --pid 4242                   # the tree whose root has pid 4242
  shutdownbus list                                   # the running trees
  shutdownbus tree web                               # the processes of one tree

exit status: 0 stopped cleanly; 1 stopped, but escalation was needed or a process
failed; 2 usage error, unknown target, registry, permission or authentication problem.
"""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line that says where to look.

    argparse prints the usage (several lines) and ``PROG: error: ...``; every
    other error of the command line is one line starting ``shutdownbus:``.
    The subcommands' parsers are of this class too (`add_subparsers` makes
    them of their parent's class).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"shutdownbus: {message}; see '{self.prog} --help'\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, told the terminal's width.

    Without a width, argparse imports shutil for it (and shutil bz2 and
    lzma), some milliseconds of every command's start, since a formatter is
    made for each argument added, help or not.  The width is found as
    `shutil.get_terminal_size` finds it, less 2, as argparse does.
    """

    def __init__(self, prog: str, **options: Any) -> None:
        if options.get("width") is None:
            options["width"] = _terminal_columns() - 2
        super().__init__(prog, **options)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``shutdownbus`` command."""
    from . import __version__

    parser = _Parser(
        prog="shutdownbus",
        description="Stop whole process trees cleanly, on every OS, without signals.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a command as the root of a stoppable, named tree",
        description="Run CMD as a child on the bus and register NAME, so that 'shutdownbus send-stop NAME'"
        " stops CMD's whole tree. Stdin, stdout and stderr pass straight through; Ctrl-C works natively."
        " Exits with CMD's exit status (128+N if signal N ended it, on POSIX). On a terminal, a stop that"
        " SIGTERM started, or the wait for CMD after Ctrl-C, shows what it waits for once it takes a second.",
        epilog="examples:\n  shutdownbus run -- python server.py\n"
        "  shutdownbus run --name echo --ready-timeout 10 -- python examples/echo_server.py\n"
        "  shutdownbus run --name api --clean-exit 143 -- java -jar api.jar   # a JVM exits 143 on SIGTERM\n\n"
        "exit status: CMD's status, also after a stop (send-stop, SIGTERM) and after Ctrl-C: 0 for a member\n"
        "that stopped cleanly, 143 (128+15) for a program that died of the polite SIGTERM, 130 (128+2) for\n"
        "one that died of Ctrl-C's SIGINT. --clean-exit turns the given statuses into 0 after such a stop.\n"
        "After escalation: 143 if the deadline's SIGTERM ended CMD, 137 (128+9) if it was killed; never\n"
        "mapped. 127: CMD not found; 126: CMD cannot be run; 2: usage, registry or --ready-timeout error.",
        formatter_class=_Formatter,
    )
    run.add_argument("--name", help="the name send-stop finds the tree by (default: CMD's basename)")
    run.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=RUN_STOP_TIMEOUT,
        metavar="S",
        help=f"seconds a stop gives the tree before escalating (default {RUN_STOP_TIMEOUT:g}: with escalation,"
        " the whole stop ends within a container runtime's 10 s)",
    )
    run.add_argument("--ready-timeout", type=_seconds, metavar="S", help="fail unless CMD calls ready() within S")
    run.add_argument(
        "--stop-signal",
        metavar="SIG",
        help="CMD does not join the bus: ask it to go with SIG the moment a stop starts (QUIT for nginx, INT"
        " for uWSGI; a name or a number; Windows: CTRL_BREAK or TERMINATE)",
    )
    run.add_argument(
        "--stop-as-group",
        action="store_true",
        help="send the stop signal to CMD's whole process group (POSIX; CMD then leads a group of its own, out of"
        " the terminal's foreground: run forwards Ctrl-C to it, and it must not read the terminal, for services)",
    )
    run.add_argument(
        "--no-join",
        action="store_true",
        help="CMD does not join the bus: its stop signal (default SIGTERM) goes the moment a stop starts,"
        " with no join grace",
    )
    run.add_argument(
        "--clean-exit",
        type=_exit_status_arg,
        action="append",
        default=[],
        metavar="STATUS",
        help="after a stop (send-stop, SIGTERM, Ctrl-C), exit 0 when CMD exits with STATUS: a number (143), or a"
        " signal's name (TERM: 128+15, as a shell shows a death by SIGTERM); repeatable. Never after escalation,"
        " nor when CMD exits with no stop asked",
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]", help="the command to run")

    stop = sub.add_parser(
        "send-stop",
        help="stop a running tree by name (or --pid)",
        description="Send an authenticated stop to a registered tree and wait until every process of it is gone;"
        " print what happened to each. On a terminal, a line on stderr says what the stop waits for while it"
        " takes more than a second (the processes left, the slowest by name[pid], the time before escalation).",
        epilog="examples:\n  shutdownbus send-stop web\n  shutdownbus send-stop --pid 4242 --timeout 3 --json\n"
        "  shutdownbus send-stop web --no-wait --reason deploy",
        formatter_class=_Formatter,
    )
    stop.add_argument("target", nargs="?", metavar="NAME", help="a registered name (a number is a name too)")
    stop.add_argument("--pid", type=_pid, metavar="N", help="the tree whose root has pid N, instead of NAME")
    stop.add_argument(
        "--timeout", type=_seconds, metavar="S", help="seconds before escalation (default: the root's --stop-timeout)"
    )
    stop.add_argument("--reason", default="stop", help="reason sent with the stop (default: stop)")
    stop.add_argument("--json", action="store_true", help="print the report as JSON")
    stop.add_argument("--no-wait", action="store_true", help="return once the stop was delivered")

    lst = sub.add_parser(
        "list",
        help="list the running trees",
        description="List the registered roots: name, pid, uptime, processes in the tree, command line."
        " Entries of processes that are gone are pruned.",
        epilog="examples:\n  shutdownbus list\n  shutdownbus list --json",
        formatter_class=_Formatter,
    )
    lst.add_argument("--json", action="store_true", help="print JSON")

    tree = sub.add_parser(
        "tree",
        help="show the live process tree under a root",
        description="Show the processes under a registered root: pid, name, whether it was started on the bus, state.",
        epilog="examples:\n  shutdownbus tree web\n  shutdownbus tree --pid 4242",
        formatter_class=_Formatter,
    )
    tree.add_argument("target", nargs="?", metavar="NAME", help="a registered name (a number is a name too)")
    tree.add_argument("--pid", type=_pid, metavar="N", help="the tree whose root has pid N, instead of NAME")
    return parser


#: The longest timeout the command line takes: a week, `_deadlines.MAX_BUDGET`
#: (not imported: it loads the platform layer, which ``--help`` does without;
#: tests/test_operators.py checks that the two agree).
MAX_SECONDS = 7 * 24 * 3600.0


def _pid(text: str) -> int:
    if not (text.isdigit() and 0 < int(text) < 2**31):
        raise argparse.ArgumentTypeError(f"{text!r} is not a pid")
    return int(text)


def _target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The registry entry that ``NAME`` or ``--pid N`` names (exactly one of them).

    Raises:
        ShutdownBusError: neither or both were given (a usage error: exit 2).
        RegistryError: none matches (see `_registry.find`).
    """
    from . import _registry

    if (args.target is None) == (args.pid is None):
        what = "a NAME or --pid N" if args.target is None else "a NAME or --pid N, not both"
        raise ShutdownBusError(f"{args.command} needs {what}; see 'shutdownbus {args.command} --help'")
    return _registry.find(args.target) if args.pid is None else _registry.find_pid(args.pid)


def _seconds(text: str) -> float:
    """A timeout option's value: a number of seconds, more than 0, at most `MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (examples: 5, 0.5, 90)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds (examples: 5, 0.5, 90)")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} seconds is too long: the limit is {MAX_SECONDS:.0f} seconds (a week)"
        )
    return value


def _exit_status_arg(text: str) -> int:
    """``--clean-exit``'s value: an exit status 0-255, or a signal's name (``TERM``, ``SIGTERM``) for 128+N."""
    if text.isdigit():
        if int(text) <= 255:
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not an exit status: statuses are 0 to 255")
    import signal

    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    number = getattr(signal, name, None)
    if not isinstance(number, int) or name.startswith("SIG_") or name in ("SIGRTMIN", "SIGRTMAX"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an exit status (0-255) nor a signal's name (examples: 143, TERM, SIGINT)"
        )
    return 128 + number


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: The arguments; None: ``sys.argv``'s, and this process is the
            command.  Then, once the command is done, the process exits
            without the interpreter's teardown (`_cpython.exit_without_teardown`:
            the threads are waited for and the atexit handlers run, as
            always); where that cannot be done, the final garbage collections
            are at least spared what exists by then (`gc.freeze`).  Either
            way some milliseconds of every command: the teardown walks every
            object of argparse, pyzmq and psutil (docs/performance.md).
    """
    try:
        status = _main(argv)
        if argv is None:
            sys.stdout.flush()  # here, where a reader that went away can be told
    except BrokenPipeError:
        status = _reader_gone()
    finally:  # also after --help and usage errors, which leave by SystemExit
        if argv is None:
            import gc

            gc.freeze()
    if argv is None:
        from ._cpython import exit_without_teardown

        exit_without_teardown(status)
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"run": cmd_run, "send-stop": cmd_send_stop, "list": cmd_list, "tree": cmd_tree}
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        return commands[args.command](args, parser)
    except ShutdownBusError as exc:
        return _fail(str(exc))
    except PermissionError as exc:
        return _fail(f"permission denied: {exc.filename or exc}")
    except KeyboardInterrupt:
        return 128 + 2


def _reader_gone() -> int:
    """Our reader closed the pipe: stop writing, quietly (the interpreter would
    print a traceback when it flushes the rest at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_READER_GONE


def _fail(message: str) -> int:
    print(f"shutdownbus: {message}", file=sys.stderr)
    return EXIT_ERROR


# -- run ----------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``shutdownbus run``.

    Its main thread only waits for the command, and takes no exception while
    it does: an exception that lands between the command's exit and
    ``Popen`` storing its status loses the status (the second wait finds no
    child, and ``Popen`` calls that 0).  So Ctrl-C is only noted (the
    command got it too, from the terminal), a stop from ``send-stop`` reaches
    the command through the bus, and SIGTERM starts the same stop on a thread.
    """
    import functools
    import signal
    import threading

    from ._child import spawn
    from ._member import _register, on_stop, report_own_exit, stop_requested, wait_for_stop
    from ._platform import CTRL_BREAK, WINDOWS, SignalsHeld, send_request, start_orphan_reaper, wait_alone_in_namespace
    from ._policy import StopPolicy
    from ._sdnotify import Notifier

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        return _fail("run needs a command: shutdownbus run [options] -- CMD [ARG...]; see 'shutdownbus run --help'")
    try:
        policy = StopPolicy.declare(False if args.no_join else None, args.stop_signal, args.stop_as_group)
    except ValueError as exc:
        return _fail(f"--stop-signal: {exc}" if args.stop_signal is not None else str(exc))
    # This process runs no code but ours, and a stop moves through its threads
    # (the main thread's wait, the bus, the stop's deadlines, the watch of the
    # descendants): each step wakes a thread that then waits for the GIL while
    # another computes, up to the switch interval (5 ms by default).  That
    # made a stop's passage through run some 5 ms longer (docs/performance.md).
    sys.setswitchinterval(RUN_SWITCH_INTERVAL)
    notifier = Notifier.from_environment()  # before the spawn: the command must not inherit it
    if args.name is not None:
        from ._registry import check_name

        check_name(args.name)  # --name '' is refused, not taken for the default
    name = args.name or os.path.basename(cmd[0])
    _register(name, fast_exit=True, wrapper=True, stop_timeout=args.stop_timeout, policy=policy.describe())
    interrupted = threading.Event()  # Ctrl-C (SIGINT) reached run
    stopping = threading.Event()  # a SIGTERM started a stop
    finished = threading.Event()  # the command has exited
    spawned: list[Any] = []  # the command, once started (a Ctrl-C may come before)
    shown: list[_Progress] = []  # the progress lines of run's own stop, on a terminal

    def on_interrupt(signum: int, frame: object) -> None:
        if spawned and (policy.group or policy.request == CTRL_BREAK):
            # A group of its own does not get the terminal's (console's) Ctrl-C:
            # run passes it on, as SIGINT to the group (POSIX) or Ctrl-Break (Windows).
            send_request(spawned[0], policy.request if policy.request == CTRL_BREAK else "SIGINT", group=True)
        if interrupted.is_set():
            return
        interrupted.set()
        watching = _Progress.on_terminal(name)
        if watching is not None and spawned and not stopping.is_set():
            shown.append(watching)
            watch = functools.partial(_watch_interrupted, spawned[0], watching, finished)
            try:
                threading.Thread(target=watch, name="shutdownbus-progress", daemon=True).start()
            except RuntimeError:  # no thread to be had: no line, and no exception in the main thread's wait
                pass

    def stop_on_sigterm(signum: int, frame: object) -> None:
        # Whoever sends us SIGTERM (a service manager, kill, a container
        # runtime) means "stop the tree": do it gracefully, through the bus,
        # instead of dying and orphaning the tree.
        if spawned and not stopping.is_set():
            stopping.set()
            if notifier is not None:
                notifier.notify(STOPPING=1, STATUS=f"{name}: stopping (SIGTERM)")
            watching = _Progress.on_terminal(name)
            shown.extend([watching] if watching is not None else [])
            stop = functools.partial(spawned[0].stop, "SIGTERM", progress=watching)
            threading.Thread(target=stop, name="shutdownbus-sigterm").start()

    try:
        # If run is killed, its command gets its polite request (Linux: spawn's
        # parent-death signal) rather than serve on with nobody able to stop
        # it; a member undoes this when it joins.  The signals run handles are
        # held back while the command starts (see `_platform.SignalsHeld`),
        # and their handlers are in place before they are let through: a
        # SIGTERM the moment the command is up stops it, never kills run.
        with SignalsHeld(_forwarded()) as hand_back:
            # Ctrl-C reaches the command from the terminal; here it is only
            # noted (and, on a terminal, what the command's exit waits for shown).
            signal.signal(signal.SIGINT, on_interrupt)
            if hasattr(signal, "SIGTERM") and not WINDOWS:
                signal.signal(signal.SIGTERM, stop_on_sigterm)
            child = spawn(
                cmd,
                stop_timeout=args.stop_timeout,
                clean_exits=args.clean_exit,
                preexec_fn=hand_back,
                joins=policy.joins,
                stop_signal=policy.request if policy.joins is False else None,
                stop_as_group=policy.group,
            )
            spawned.append(child)  # before the held signals come: a Ctrl-C among them is passed on
    except OSError as exc:
        return _cannot_run(cmd[0], exc)
    # As a subreaper (and as a container's init) we adopt orphans: reap them.
    start_orphan_reaper(child.pid, lambda: stopping.is_set() or stop_requested())
    if notifier is not None:
        notifier.notify(MAINPID=os.getpid(), STATUS=f"{name}: starting {os.path.basename(cmd[0])} (pid {child.pid})")
        def stopping_now(reason: str) -> None:
            notifier.notify(STOPPING=1, STATUS=f"{name}: stopping ({reason})")

        on_stop(stopping_now)
    if args.ready_timeout is not None:
        try:
            child.wait_ready(args.ready_timeout)
        except (ChildExited, TimeoutError) as exc:
            if not (stopping.is_set() or stop_requested()):
                stopping.set()  # the orphan reaper leaves what this stop reaps (and reports) to it
                child.stop(reason="not-ready")
                return _fail(str(exc).splitlines()[0])
        else:
            if notifier is not None:
                notifier.notify(READY=1, STATUS=f"{name}: ready")
    elif notifier is not None:
        threading.Thread(target=_announce_ready, args=(child, name, notifier), daemon=True).start()
    rc = child.wait()
    finished.set()
    report = child.stop()  # the same report as the stop that ended it, if one did; else it sweeps what is left
    for watching in shown:
        watching.clear()
    status = _exit_status(rc)
    asked = stopping.is_set() or stop_requested() or interrupted.is_set()
    if status in args.clean_exit and asked and not _escalated(report, child.pid):
        status = EXIT_OK  # the command's way of saying "stopped as asked" (a JVM's 143)
    if notifier is not None:
        if stop_requested():
            # STOPPING=1 goes first: the stop's callbacks send it on the bus
            # thread, which may still be at it when the command has exited.
            wait_for_stop(NOTIFY_ORDER_WAIT)
        notifier.notify(STATUS=f"{name}: exited with status {status}")
    if report_own_exit(status):
        # As a container's init, our exit would kill the admin that stopped
        # us before it printed its report: it finishes on this last word,
        # and we wait for it to leave (see _admin._our_init_is_done).
        wait_alone_in_namespace(ADMIN_LEAVES)
    return status


#: ``run``'s status when its command cannot be started, as a shell's: not found, or found but not runnable.
EXIT_NOT_FOUND, EXIT_CANNOT_RUN = 127, 126


def _cannot_run(program: str, exc: OSError) -> int:
    """Say why ``program`` could not be started, and what to check; the shell's status for it."""
    import errno

    if exc.errno == errno.ENOENT:
        why = "no such program: give its path, or check that it is on PATH"
        if os.sep in program or (os.altsep and os.altsep in program):
            why = "no such file (or its #! line names an interpreter that is not installed)"
        status = EXIT_NOT_FOUND
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied: is it executable (chmod +x) and not a directory?"
        status = EXIT_CANNOT_RUN
    elif exc.errno == errno.ENOEXEC:
        why = "not a program this system can run (a script needs a #! line)"
        status = EXIT_CANNOT_RUN
    else:
        why, status = exc.strerror or str(exc), EXIT_CANNOT_RUN
    print(f"shutdownbus: cannot run {program!r}: {why}", file=sys.stderr)
    return status


def _watch_interrupted(child: Any, progress: _Progress, finished: Any) -> None:
    """After Ctrl-C, until the command exited: show what its exit waits for
    (there is no deadline: Ctrl-C is the command's own business)."""
    from ._progress import of_tree
    from ._tree import Tree

    tree = Tree([child.pid])
    try:
        while not finished.wait(0.25):
            tree.refresh()
            progress(of_tree(tree, (child.pid, child.name), progress.start, None))
    finally:
        tree.watch.close()


def _announce_ready(child: Any, name: str, notifier: Any) -> None:
    """READY=1 when the command calls ready(), or once the join grace passed
    without it joining (a command that never joins has no other way to say it)."""
    from ._deadlines import JOIN_GRACE

    try:
        try:
            child.wait_ready(JOIN_GRACE)
        except TimeoutError:
            if child.joined:
                child.wait_ready(None)  # a member: its ready() says it
    except ChildExited:
        return
    notifier.notify(READY=1, STATUS=f"{name}: ready")


def _forwarded() -> tuple[int, ...]:
    """The signals that ``run`` handles itself and that its command must have
    native (see `_platform.SignalsHeld`)."""
    import signal

    return tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))

#: How long ``run``, as a PID namespace's init, waits for an admin to leave.
ADMIN_LEAVES = 1.0

#: ``run``'s GIL switch interval, in seconds (see `cmd_run`).
RUN_SWITCH_INTERVAL = 0.001


def _escalated(report: Any, pid: int) -> bool:
    """Whether the stop in ``report`` had to escalate ``pid`` (terminate or kill it past its deadline)."""
    from ._outcome import Outcome

    return any(e.pid == pid and e.outcome in (Outcome.TERMINATED, Outcome.KILLED) for e in report.entries)


def _exit_status(rc: int | None) -> int:
    """A child's return code as an exit status: 128+N for signal N (POSIX)."""
    if rc is None:
        return 1
    return rc if rc >= 0 else 128 - rc


# -- send-stop ------------------------------------------------------------------


def cmd_send_stop(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``shutdownbus send-stop``."""
    from ._admin import send_stop

    entry = _target(args, parser)
    progress = None if args.no_wait else _Progress.on_terminal(entry.name, json=args.json)
    try:
        timeout = entry.stop_timeout if args.timeout is None else args.timeout
        report = send_stop(entry, reason=args.reason, timeout=timeout, wait=not args.no_wait, progress=progress)
    finally:
        if progress is not None:
            progress.clear()
    if report is None:
        print(f"stop sent to {entry.name!r} (pid {entry.pid})")
    else:
        print(report.to_json(indent=2) if args.json else report.format_table())
    sys.stdout.flush()
    # Housekeeping, once the stop is done: the ipc directories of processes
    # that were killed (and so could not remove theirs), a killed root's among
    # them, where the tree made them: the root's endpoint names the place
    # (without the import of tempfile, 7.5 ms, that our own would cost).
    from ._transport import base_of, runtime_base, sweep_stale_runtime_dirs

    sweep_stale_runtime_dirs(base_of(entry.endpoint) or runtime_base())
    return EXIT_OK if report is None or report.ok else EXIT_NOT_CLEAN


class _Progress:
    """One line on the terminal (stderr) that says what a long stop waits for,
    redrawn in place, and gone when the stop is done.

    Shown once the stop has taken `PROGRESS_AFTER` seconds (a quick stop
    shows nothing), as systemd shows "A stop job is running for X (5s /
    1min 30s)".  Only for a terminal: see `_Progress.on_terminal`.
    """

    def __init__(self, name: str) -> None:
        import threading

        self.name = name
        self.start = time.monotonic()
        self.shown = False
        self.closed = False
        self.lock = threading.Lock()  # run draws from a stop's thread and clears from its main thread

    @staticmethod
    def on_terminal(name: str, *, json: bool = False) -> _Progress | None:
        """A progress line for ``name`` if stderr is a terminal and the output is not JSON; else None."""
        try:
            terminal = sys.stderr.isatty()
        except (AttributeError, ValueError):  # closed, or replaced by something that is not a file
            terminal = False
        return _Progress(name) if terminal and not json else None

    def __call__(self, progress: Any) -> None:
        from ._progress import line

        if time.monotonic() - self.start < PROGRESS_AFTER:
            return
        with self.lock:
            if self.closed:
                return
            try:
                width = os.get_terminal_size(sys.stderr.fileno()).columns or 80  # 0: a terminal of no known size
            except (AttributeError, ValueError, OSError):
                width = 80
            # One character short of the width: a line that fills it wraps on
            # some terminals, and the next carriage return redraws only the wrap.
            sys.stderr.write("\r" + line(self.name, progress, max(20, width - 1)) + "\033[K")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        """Remove the line, if shown, and draw no more."""
        with self.lock:
            self.closed = True
            if self.shown:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()


#: How long a stop runs before its progress line appears.
PROGRESS_AFTER = 1.0


# -- list and tree ----------------------------------------------------------------


def cmd_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``shutdownbus list``."""
    from . import _registry

    live, broken = _registry.entries()
    for problem in broken:  # each affects its own name only
        print(f"shutdownbus: {problem.message()}", file=sys.stderr)
    rows = [_describe(entry) for entry in live]
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = [("NAME", "PID", "UPTIME", "PROCS", "STOP", "COMMAND")]
    for r in rows:
        # A root in another PID namespace: its pid means another process here.
        pid, procs = (str(r["pid"]), str(r["processes"])) if r["here"] else (f"{r['pid']}*", "?")
        table.append((r["name"], pid, _duration(r["uptime"]), procs, r["stop_policy"] or "-", r["command"]))
    for problem in broken:
        table.append((problem.name, "?", "?", "?", "?", "(broken registry entry: see above)"))
    _print_table(table)
    if not all(r["here"] for r in rows):
        print("* in another PID namespace (a container?): stop it from there")
    return EXIT_OK


def _describe(entry: Any) -> dict[str, Any]:
    from . import _registry
    from ._tree import tree_size

    here = entry.here()
    return {
        "name": entry.name,
        "pid": entry.pid,
        "here": here,
        "uptime": round(_registry.uptime(entry), 3),
        "processes": tree_size(entry.pid) if here else None,
        "stop_timeout": entry.stop_timeout,
        "stop_policy": entry.policy or None,
        "command": " ".join(entry.argv),
    }


def cmd_tree(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``shutdownbus tree``."""
    entry = _target(args, parser)
    rows = live_view(entry.pid)
    if rows is None:
        return _fail(f"the tree {entry.name!r} is gone")
    table = [("PID", "NAME", "MEMBER", "STATE", "COMMAND")]
    for pid, depth, name, member, state, command in rows:
        if depth == 1 and member != "yes" and entry.policy:  # run's command: how a stop asks it to go
            member = f"{member} ({entry.policy})"
        table.append((str(pid), "  " * depth + name, member, state, command))
    _print_table(table)
    return EXIT_OK


def live_view(pid: int, width: int = 70) -> list[tuple[int, int, str, str, str, str]] | None:
    """The processes under ``pid`` as ``shutdownbus tree`` shows them, ``pid`` first.

    Each row: pid, depth, name (`describe`), member (``root`` for ``pid``;
    ``yes``/``no`` as `_platform.joined_the_bus` tells, ``?`` where it
    cannot; ``-`` for a zombie), state, command line (``<defunct>`` for a
    zombie, as ``ps`` writes it).  Children come in pid order, depth first.

    Returns:
        The rows, or None if ``pid`` is gone.
    """
    import psutil

    from . import _platform
    from ._processes import describe_process
    from ._tree import ProcessTable

    table = ProcessTable()
    rows = []
    stack = [(pid, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            proc = psutil.Process(current)
            state = str(proc.status())
        except psutil.Error:
            if current == pid:
                return None
            continue
        zombie = state == psutil.STATUS_ZOMBIE
        name, _ = describe_process(proc)
        try:
            command = " ".join(proc.cmdline()) or ("<defunct>" if zombie else "?")
        except (psutil.Error, OSError):
            command = "<defunct>" if zombie else "?"
        if len(command) > width:
            command = command[: width - 3] + "..."
        joined = _platform.joined_the_bus(current)
        member = "root" if depth == 0 else "-" if zombie else "?" if joined is None else "yes" if joined else "no"
        rows.append((current, depth, name, member, state, command))
        stack += [(child, depth + 1) for child in sorted(table.children(current), reverse=True)]
    return rows


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    from ._text import printable  # names and command lines come from other processes

    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
