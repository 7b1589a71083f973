#!/usr/bin/env bash
# Run the test suite with the Windows CPython of tools/windows/setup.sh, under wine.
#
#   tools/windows/run-tests.sh [PYTEST ARGS...]     (default: the whole suite, -n 2)
#   make test-windows ARGS="tests/test_protocol.py -x"
#
# shutdownbus is imported from the repository; see run-python.sh, which this
# runs, for the wine details (and for running any other program the same way).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/windows/env.sh
. "$HERE/env.sh"

if [ "$#" -eq 0 ]; then
    # pytest-xdist works under wine: 2 workers, as `make test` on Linux.
    set -- -n 2 tests examples/test_echo_server.py
fi
# -p no:cacheprovider: nothing is written into the repository.
exec "$HERE/run-python.sh" -m pytest -p no:cacheprovider "$@"
