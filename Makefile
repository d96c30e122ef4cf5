# Each target does its own set-up first (hack/setup.sh), so every one of
# them works on a fresh machine.
.PHONY: setup test lint demo bench chaos

PYTHON := .venv/bin/python

setup:
	hack/setup.sh

# The test command: everything that runs in CI.
test: setup
	$(PYTHON) -m pytest

lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

# The main job: the whole system on this machine (needs root).
demo: setup
	.venv/bin/numaflow-rdma demo

# The benchmark suite: measures everything and rewrites docs/benchmarks.md and
# its plots (about 20 minutes; needs root for network namespaces). Run it on a
# quiet machine, because other load skews every figure.
bench: setup
	$(PYTHON) -m bench

# A short run of every benchmark into build/bench-smoke/, to check that the
# suite still works; its figures mean nothing.
.PHONY: bench-smoke
bench-smoke: setup
	$(PYTHON) -m bench --smoke
