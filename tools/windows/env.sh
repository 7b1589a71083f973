# Sourced by tools/windows/*.sh: where things are, and how to run a Windows
# program under wine safely.
#
# win_run CMD ARGS... runs CMD under wine with every standard stream a pipe.
# Wine hands a regular file or /dev/null to the Windows side as a file handle
# CPython cannot use, and CPython then dies in init_sys_streams; pipes work.
# Its stdin is an empty pipe unless WIN_STDIN is set to a file to feed it.
# Returns CMD's exit status.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WINBUILD="$REPO/build/windows"
WINPY_DIR="$WINBUILD/python"
WINPY="$WINPY_DIR/python.exe"
export WINEPREFIX="${WINEPREFIX:-$WINBUILD/prefix}"
export WINEDEBUG="${WINEDEBUG:--all}"
export WINEARCH=win64
# Debian puts wineserver in /usr/lib/wine (the wine package adds /usr/bin/wineserver).
PATH="$PATH:/usr/lib/wine"

# WINE_CMD is how wine is started: without address space randomization where
# the kernel lets us (setarch -R), unless WINE_ASLR=1.  Wine 8.0 maps the
# shared user data of every new process at a fixed address (0x7ffe0000), just
# above its loader.  The kernel (Linux 6.18 here) puts the loader's heap (brk)
# at a random place up to 1 GiB above the loader, which now and then is that
# address: wine then fails to map it ("err:virtual:virtual_alloc_first_teb
# wine: failed to map the shared user data: c0000018"), the new process dies
# before it runs, and its parent's CreateProcess fails with
# ERROR_INTERNAL_ERROR (WinError 1359).  Measured
# (tools/windows/repro/process_start_conflict.py): 3 of 16,000 starts failed
# with randomization, none of 24,000 without; a suite starts some thousands.
# Wine starts each process from its parent's, which passes the setting on:
# every program of the run starts the same way.
if [ "${WINE_ASLR:-0}" = 1 ]; then
    WINE_CMD=(wine)
elif setarch "$(uname -m)" -R true 2>/dev/null; then
    WINE_CMD=(setarch "$(uname -m)" -R wine)
else
    # A seccomp profile may refuse it (Docker's default does).
    echo "tools/windows/env.sh: setarch -R is refused here; wine runs with address randomization, and a rare start fails (WinError 1359)" >&2
    WINE_CMD=(wine)
fi

win_run() {
    # Wine writes into a pipe read by a cat of its own that nothing waits
    # for: processes that outlive CMD (leaked grandchildren, which inherited
    # the pipe) would otherwise keep a waiting reader blocked until they end.
    # The caller's `wineserver -k` ends them, and so that cat.
    local out rc=0
    exec {out}> >(cat)
    WIN_CAT_PID=$!
    if [ -n "${WIN_STDIN:-}" ]; then
        cat "$WIN_STDIN" | "${WINE_CMD[@]}" "$@" >&"$out" 2>&1 || rc=$?
    else
        printf '' | "${WINE_CMD[@]}" "$@" >&"$out" 2>&1 || rc=$?
    fi
    exec {out}>&-
    return "$rc"
}

# win_boot starts the prefix's wineserver and its services (services.exe,
# winedevice.exe, ...) with /dev/null as their standard streams.  Wine starts
# them with the streams of whichever program comes first; a pipe handed to
# them would stay open until the wineserver ends, and a reader (win_run's
# cat) would hang.  They are not CPython, so /dev/null suits them.
# win_wait_output waits (5 s at most) for the cat of the last win_run, after
# a `wineserver -k`, so that all the output is out before the caller goes on.
win_wait_output() {
    local i
    for i in $(seq 50); do
        [ -n "${WIN_CAT_PID:-}" ] && kill -0 "$WIN_CAT_PID" 2>/dev/null || return 0
        sleep 0.1
    done
}

win_boot() {
    "${WINE_CMD[@]}" wineboot </dev/null >/dev/null 2>&1
}
