#!/usr/bin/env bash
# Regenerate the Numaflow pod fixtures in numaflow_rdma/fixtures/numaflow/
# from Numaflow's own controller code at the release pinned in go.mod.
#
# Usage, from anywhere:
#   hack/numaflow-pods/generate.sh
#       Builds against github.com/numaproj/numaflow from the Go module proxy.
#   NUMAFLOW_SOURCE=/path/to/numaflow hack/numaflow-pods/generate.sh
#       Builds against a checkout of Numaflow at the pinned tag instead, through
#       a temporary go.work, for when the module proxy does not serve Numaflow.
#       Make the checkout with:
#         git clone --branch v1.8.3 --depth 1 https://github.com/numaproj/numaflow
#
# Numaflow's other dependencies always come from the Go module proxy. The
# first build downloads and compiles them, a few minutes on two cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

if [[ -n "${NUMAFLOW_SOURCE:-}" ]]; then
    if [[ ! -f "$NUMAFLOW_SOURCE/go.mod" ]]; then
        echo "generate.sh: NUMAFLOW_SOURCE=$NUMAFLOW_SOURCE has no go.mod; expected a Numaflow checkout" >&2
        exit 2
    fi
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    go_version="$(awk '/^go /{print $2; exit}' go.mod)"
    numaflow_version="$(awk '$1 == "require" && $2 == "github.com/numaproj/numaflow" {print $3}' go.mod)"
    printf 'go %s\n\nuse %s\n\nreplace github.com/numaproj/numaflow %s => %s\n' \
        "$go_version" "$here" "$numaflow_version" "$(cd "$NUMAFLOW_SOURCE" && pwd)" >"$work/go.work"
    export GOWORK="$work/go.work"
    # Numaflow's go.sum holds the checksums of its dependencies.
    cp "$NUMAFLOW_SOURCE/go.sum" "$work/go.work.sum"
else
    go mod tidy
fi

go run . -manifests manifests -output ../../numaflow_rdma/fixtures/numaflow
