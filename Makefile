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

# The reliability suites at full length: about 12,000 fuzzed admission requests
# and 2 million atheris inputs, 1,200 pod events while dnssync, etcd and the API
# server fail, and 100,000 frames while receivers, links and DNS fail (about
# 6 minutes on two cores; needs root). Their figures go to build/reliability/
# and are reported in docs/reliability.md. `make test` runs short versions.
chaos: setup
	NUMAFLOW_RDMA_CHAOS=1 $(PYTHON) -m pytest tests/reliability --timeout=1800
