#!/usr/bin/env bash
# Run the test suite with the Windows CPython of tools/windows/setup.sh, under wine.
#
#   tools/windows/run-tests.sh [PYTEST ARGS...]     (default: the whole suite, -n 2)
#   make test-windows ARGS="tests/test_protocol.py -x"
#
# shutdownbus is imported from the repository (PYTHONPATH).  Every standard
# stream of wine is a pipe (see env.sh), and the wine prefix's wineserver is
# killed at the end whatever happens, which ends every Windows process still
# running in it: nothing is left behind.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/windows/env.sh
. "$HERE/env.sh"

if [ ! -f "$WINPY" ] || [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "run-tests: no Windows python under $WINBUILD; run tools/windows/setup.sh first" >&2
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

if [ "$#" -eq 0 ]; then
    # pytest-xdist works under wine: 2 workers, as `make test` on Linux.
    set -- -n 2 tests examples/test_echo_server.py
fi
# Start the wineserver and its services first (detached from our pipes, see
# env.sh), so that their start-up is not counted in the first test's time.
# -p no:cacheprovider: nothing is written into the repository.
win_boot
win_run "$WINPY" -m pytest -p no:cacheprovider "$@"
