"""Everything that differs between operating systems, in one place, one module per mechanism.

Rules of this package:

* Callers never test ``sys.platform`` themselves; they call a function here
  (the OS flags `WINDOWS` and `LINUX` are for what no function covers).
* Each function documents what it does on Linux, on the other POSIX
  systems and on Windows, and does just that on each: a Linux-only reader
  of /proc raises ``OSError`` elsewhere rather than answer ("cannot tell" is
  never "gone"); tests/test_platform.py runs each with /proc hidden.
* One module per mechanism, each opening with what it promises per OS:
  `_waking` (the main thread, the bus thread), `_exits` (exit watching),
  `_requests` (the polite request and return codes), `_procfs` (reading
  /proc), `_init_duties` (parent death, subreaper, reaping), `_pipes`,
  `_jobs` (Windows Job Objects: never orphaned), `_console` (Windows
  console control events: CTRL_BREAK), `_windows` (Win32 through ctypes),
  `_os` (the flags, prctl, the C heap).  The rest of the
  package uses the names below, so that moving a function between these
  modules changes no call site.
* Its names are loaded on first use (PEP 562), each from its module:
  ``list`` needs two of the modules, not all ten.  A process that joins or
  spawns loads them all at once (`load_all`, from the bus), so that nothing
  is imported on its exit path.
* ``list`` loads this package: at their top the modules import only what
  costs next to nothing or what every command line has loaded already.
  ``signal``, ``threading`` and ``select`` are imported by the functions
  that use them; by then a process that calls them has them loaded (a
  member's bus, ``run``, a stop).
"""

from __future__ import annotations

from .. import _lazy

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from ._console import (
        break_process_groups,
        has_console,
        install_ctrl_c_forwarder,
        send_ctrl_break,
    )
    from ._exits import ExitWatch, exit_fd, wait_exited
    from ._init_duties import (
        SignalsHeld,
        child_preparation,
        clear_parent_death_signal,
        exit_status_unreaped,
        has_children,
        in_a_lasting_thread,
        is_unreaped_child,
        make_child_subreaper,
        orphans_stay_in_the_tree,
        reap_adopted,
        start_orphan_reaper,
        wait_alone_in_namespace,
    )
    from ._jobs import ChildJob, contain, resume_process, suspended_creation_flag
    from ._os import LINUX, WINDOWS, release_free_memory
    from ._pipes import read_available
    from ._procfs import (
        KERNEL_LISTS_CHILDREN,
        MEMBER_THREAD_NAME,
        ProcUnavailable,
        child_pids,
        has_exited,
        joined_the_bus,
        mark_member,
        parent_of,
        pid_namespace,
        pids_of_this_user,
        started_at,
        threads_left,
    )
    from ._requests import (
        CTRL_BREAK,
        TERMINATE,
        creation_flags,
        default_request,
        interrupted_returncode,
        join_grace,
        polite_returncode,
        request_is_final,
        request_name,
        request_returncode,
        send_request,
        stopped_returncodes,
    )
    from ._waking import (
        CaughtSignals,
        WakeChannel,
        install_main_thread_waker,
        raise_in_main_thread,
        wake_main_thread,
        wake_signal,
        wake_signal_choices,
    )

#: Where each name of the package is defined.
_WHERE = {
    "CTRL_BREAK": "_requests",
    "CaughtSignals": "_waking",
    "ChildJob": "_jobs",
    "ExitWatch": "_exits",
    "KERNEL_LISTS_CHILDREN": "_procfs",
    "LINUX": "_os",
    "MEMBER_THREAD_NAME": "_procfs",
    "ProcUnavailable": "_procfs",
    "SignalsHeld": "_init_duties",
    "TERMINATE": "_requests",
    "WINDOWS": "_os",
    "WakeChannel": "_waking",
    "break_process_groups": "_console",
    "child_pids": "_procfs",
    "child_preparation": "_init_duties",
    "clear_parent_death_signal": "_init_duties",
    "contain": "_jobs",
    "creation_flags": "_requests",
    "default_request": "_requests",
    "exit_fd": "_exits",
    "exit_status_unreaped": "_init_duties",
    "has_children": "_init_duties",
    "has_console": "_console",
    "has_exited": "_procfs",
    "in_a_lasting_thread": "_init_duties",
    "install_ctrl_c_forwarder": "_console",
    "install_main_thread_waker": "_waking",
    "is_unreaped_child": "_init_duties",
    "interrupted_returncode": "_requests",
    "join_grace": "_requests",
    "joined_the_bus": "_procfs",
    "make_child_subreaper": "_init_duties",
    "mark_member": "_procfs",
    "orphans_stay_in_the_tree": "_init_duties",
    "parent_of": "_procfs",
    "pid_namespace": "_procfs",
    "pids_of_this_user": "_procfs",
    "polite_returncode": "_requests",
    "raise_in_main_thread": "_waking",
    "read_available": "_pipes",
    "reap_adopted": "_init_duties",
    "release_free_memory": "_os",
    "request_is_final": "_requests",
    "request_name": "_requests",
    "request_returncode": "_requests",
    "resume_process": "_jobs",
    "send_ctrl_break": "_console",
    "send_request": "_requests",
    "start_orphan_reaper": "_init_duties",
    "started_at": "_procfs",
    "stopped_returncodes": "_requests",
    "suspended_creation_flag": "_jobs",
    "threads_left": "_procfs",
    "wait_alone_in_namespace": "_init_duties",
    "wake_main_thread": "_waking",
    "wake_signal": "_waking",
    "wake_signal_choices": "_waking",
    "wait_exited": "_exits",
}


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, globals(), _WHERE, name)


def load_all() -> None:
    """Load every name now (a process that joins or spawns: see the rules)."""
    for name in _WHERE:
        if name not in globals():
            __getattr__(name)


__all__ = [
    "CTRL_BREAK",
    "KERNEL_LISTS_CHILDREN",
    "LINUX",
    "MEMBER_THREAD_NAME",
    "TERMINATE",
    "WINDOWS",
    "CaughtSignals",
    "ChildJob",
    "ExitWatch",
    "ProcUnavailable",
    "SignalsHeld",
    "WakeChannel",
    "break_process_groups",
    "child_pids",
    "child_preparation",
    "clear_parent_death_signal",
    "contain",
    "creation_flags",
    "default_request",
    "exit_fd",
    "exit_status_unreaped",
    "has_children",
    "has_console",
    "has_exited",
    "in_a_lasting_thread",
    "install_ctrl_c_forwarder",
    "install_main_thread_waker",
    "interrupted_returncode",
    "is_unreaped_child",
    "join_grace",
    "joined_the_bus",
    "make_child_subreaper",
    "mark_member",
    "orphans_stay_in_the_tree",
    "parent_of",
    "pid_namespace",
    "pids_of_this_user",
    "polite_returncode",
    "raise_in_main_thread",
    "read_available",
    "reap_adopted",
    "release_free_memory",
    "request_is_final",
    "request_name",
    "request_returncode",
    "resume_process",
    "send_ctrl_break",
    "send_request",
    "start_orphan_reaper",
    "started_at",
    "stopped_returncodes",
    "suspended_creation_flag",
    "threads_left",
    "wait_alone_in_namespace",
    "wait_exited",
    "wake_main_thread",
    "wake_signal",
    "wake_signal_choices",
]
