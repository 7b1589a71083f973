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
* ``list`` loads this package: at their top the modules import only what
  costs next to nothing or what every command line has loaded already.
  ``signal``, ``threading`` and ``select`` are imported by the functions
  that use them; by then a process that calls them has them loaded (a
  member's bus, ``run``, a stop).
"""

from __future__ import annotations

from ._console import (
    break_process_groups,
    has_console,
    install_ctrl_c_forwarder,
    send_ctrl_break,
)
from ._exits import ExitWatch, exit_fd
from ._init_duties import (
    SignalsHeld,
    child_preparation,
    clear_parent_death_signal,
    has_children,
    in_a_lasting_thread,
    make_child_subreaper,
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
    "has_children",
    "has_console",
    "has_exited",
    "in_a_lasting_thread",
    "install_ctrl_c_forwarder",
    "install_main_thread_waker",
    "interrupted_returncode",
    "join_grace",
    "joined_the_bus",
    "make_child_subreaper",
    "mark_member",
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
    "wait_alone_in_namespace",
    "wake_main_thread",
    "wake_signal",
    "wake_signal_choices",
]
