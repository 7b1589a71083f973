# shutdownbus: `make help` lists the targets.  Everything runs in .venv,
# which the targets create when it is missing (only python3 is needed).
PYTHON ?= python3
VENV := .venv
ifeq ($(OS),Windows_NT)
# A Windows virtualenv keeps its programs in Scripts (make runs recipes with Git's sh there).
PY := $(VENV)/Scripts/python.exe
else
PY := $(VENV)/bin/python
endif
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test programs test-windows lint typecheck bench bench-quick fuzz stress clean node-deps

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) ## Run the A->B->C demo: A stops B's subtree through the bus
	$(PY) examples/abc.py term

# The Node.js member (node/): its locked dependencies, where node is installed (its tests skip otherwise).
NODE_STAMP := node/node_modules/.installed
$(NODE_STAMP): node/package.json node/package-lock.json
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
		cd node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "node or npm is not installed: the Node.js member's tests are skipped"; fi

node-deps: $(NODE_STAMP) ## Install the Node.js member's dependencies (npm ci in node/)

# `make test ARGS="tests/test_cli.py -k foo"`: pytest with those arguments instead of the
# whole suite, and nothing else (lint, type checks and the stress run are for the whole suite).
test: $(STAMP) programs node-deps ## Lint, type checks, a small stress run and the whole suite (ARGS="tests/test_cli.py -k foo": those tests only)
ifeq ($(ARGS),)
	$(PY) -m ruff check shutdownbus tests examples benchmarks
	$(PY) -m mypy
	$(PY) benchmarks/stress.py --rounds 2 --fanout 3 --depth 2 --cycles 50
endif
	$(PY) -m pytest -n 2 -p no:cacheprovider $(or $(ARGS),tests examples/test_echo_server.py)

# The real programs the tests stop that do not come from the package index:
# nginx from Debian (as root, with apt-get; elsewhere its tests are skipped).
programs:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -q nginx-light >/dev/null 2>&1 \
		     || { apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null; }; }; } \
		|| echo "nginx is not installed: its tests are skipped (apt-get install nginx-light)"

test-windows: $(STAMP) ## The suite with a Windows CPython 3.12 under wine (sets it up first; ARGS=pytest args)
	HOST_PYTHON=$(PY) tools/windows/setup.sh
	tools/windows/run-tests.sh $(ARGS)

bench: $(STAMP) node-deps ## Benchmarks against signal-based stops, tini and the other supervisors (Linux; some minutes)
	@command -v tini >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y -q tini >/dev/null; } || echo "tini is not installed: section 7 and its row of section 10 are skipped"
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/bench_node.py
	$(PY) benchmarks/bench_peers.py

bench-quick: $(STAMP) node-deps ## A fast smoke run of the benchmarks (under a minute)
	$(PY) benchmarks/bench.py --quick
	$(PY) benchmarks/bench_node.py --quick
	$(PY) benchmarks/bench_peers.py --quick

stress: $(STAMP) ## 20 rounds of a 111-process tree and 1000 spawn/stop cycles: nothing may be left
	$(PY) benchmarks/stress.py

# The tests marked fuzz: the protocol's property tests (hypothesis) and the live endpoint fuzz.
# make test runs them with a short budget (tests/conftest.py); this runs 20,000 examples each.
fuzz: $(STAMP) ## The fuzz tests with 20,000 examples each instead of make test's short run (ARGS=pytest args)
	SHUTDOWNBUS_FUZZ_EXAMPLES=20000 $(PY) -m pytest -p no:cacheprovider -q -m fuzz tests $(ARGS)

lint: $(STAMP) ## Lint only
	$(PY) -m ruff check shutdownbus tests examples benchmarks

typecheck: $(STAMP) ## Type-check only
	$(PY) -m mypy

clean: ## Remove .venv and build leftovers
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
