#!/usr/bin/env bash
# Run the Windows CPython of tools/windows/setup.sh under wine, in the
# repository, with shutdownbus imported from it (PYTHONPATH).
#
#   tools/windows/run-python.sh examples/abc.py term
#   tools/windows/run-python.sh benchmarks/wake_latency.py --rounds 5
#
# Every standard stream of wine is a pipe (see env.sh), and the wine prefix's
# wineserver is killed at the end whatever happens, which ends every Windows
# process still running in it: nothing is left behind.  Exits with python's
# status.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/windows/env.sh
. "$HERE/env.sh"

if [ ! -f "$WINPY" ] || [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "$(basename "$0"): no Windows python under $WINBUILD; run tools/windows/setup.sh first" >&2
    exit 2
fi

cleanup() {
    wineserver -k >/dev/null 2>&1 || true
    win_wait_output
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$REPO"
# Z: is wine's drive for /.
export PYTHONPATH="Z:${REPO//\//\\}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONUTF8=1
# Wine may present a pipe as a console: no colour codes in logs unless asked for.
export PY_COLORS="${PY_COLORS:-0}"
# The Windows side need not see the Linux virtualenv.
unset VIRTUAL_ENV PYTHONHOME

# Start the wineserver and its services first (detached from our pipes, see env.sh).
win_boot
win_run "$WINPY" "$@"
