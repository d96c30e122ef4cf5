#!/usr/bin/env bash
# Install everything the tests and the demo need, on a fresh Debian machine
# or an existing one; each step is skipped when its result is already there.
#
#   1. Debian packages: iproute2 (network namespaces), iputils-ping, procps.
#   2. A virtual environment at .venv with numaflow-rdma and its dev extras.
#   3. The Go programs of the local control plane (etcd, kube-apiserver,
#      CoreDNS, Helm), built from their Go modules and cached under
#      ${NUMAFLOW_RDMA_CACHE:-~/.cache/numaflow-rdma}. The first build takes
#      about 5 to 10 minutes on two cores.
#
# Needs root for the Debian packages (skipped when they are installed), the
# Go toolchain 1.24 or later, and access to the Debian, PyPI and Go module
# registries.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

packages=(iproute2 iputils-ping procps ca-certificates)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages: ${missing[*]}; run this script as root or install them first"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
    log "the 'go' command is missing: install Go 1.24 or later (Debian's golang-go is too old for Kubernetes)"
    exit 1
fi

python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    log "creating the virtual environment .venv with $("$python" --version)"
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c 'import numaflow_rdma, pytest, ucxx, pyetcd, flask' >/dev/null 2>&1 \
    || [[ pyproject.toml -nt .venv/.installed ]]; then
    log "installing numaflow-rdma with its dev extras into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch .venv/.installed
fi

log "building or finding the control-plane programs"
.venv/bin/python -c 'import sys; from numaflow_rdma.controlplane import binaries; sys.exit(binaries.main(sys.argv[1:]))' \
    etcd kube-apiserver coredns helm >/dev/null
log "ready"
