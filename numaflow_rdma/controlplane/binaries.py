"""Build the Go programs of the local control plane at pinned releases, once.

The tests, the demo and the benchmarks run the real etcd, kube-apiserver,
CoreDNS, Helm, NATS server and network-resources-injector. None of them is
packaged for Debian at a usable version (Debian's etcd is 3.4.23, which
Kubernetes 1.31 and later do not accept), so each is built from its Go module
through the Go module proxy and cached outside the checkout, one file per
program and version: ``$NUMAFLOW_RDMA_CACHE/bin/<program>-<version>``, by
default under ``~/.cache/numaflow-rdma``. A cached file is never built again.

kube-apiserver needs one extra step. ``k8s.io/kubernetes`` replaces its
``k8s.io/*`` staging modules with folders of its own repository, which the
module proxy does not serve, so the build module replaces each of them with
its published version (``v0.X.Y`` for Kubernetes ``v1.X.Y``), as
controller-runtime's envtest does.

Run ``python -m numaflow_rdma.controlplane.binaries [PROGRAM ...]`` to build
ahead of time; the first build of everything takes about 10 minutes on two
cores, most of it kube-apiserver.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ETCD_VERSION = "v3.6.16"
KUBERNETES_VERSION = "v1.34.4"
COREDNS_VERSION = "v1.12.4"
HELM_VERSION = "v3.21.4"
NATS_SERVER_VERSION = "v2.15.3"
NETWORK_RESOURCES_INJECTOR_VERSION = "v1.9.0"

_ETCD_MAIN = """package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""

_KUBE_APISERVER_MAIN = """package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
"""


class BuildError(RuntimeError):
    """A Go program of the control plane could not be built."""


def cache_dir() -> Path:
    """Return the cache folder: ``$NUMAFLOW_RDMA_CACHE`` or ``~/.cache/numaflow-rdma``."""
    configured = os.environ.get("NUMAFLOW_RDMA_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "numaflow-rdma"


def _go(args: list[str], cwd: Path, what: str) -> None:
    environment = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    result = subprocess.run(
        ["go", *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(
            f"building {what} failed at 'go {' '.join(args)}' (exit {result.returncode}):\n"
            f"{result.stderr.strip()[-4000:]}\n"
            "Check that the Go toolchain is installed and the Go module proxy is reachable."
        )


def _build_main(output: Path, work: Path, main_go: str, requirement: str) -> None:
    (work / "main.go").write_text(main_go)
    _go(["mod", "init", "local/build"], work, output.name)
    _go(["get", requirement], work, output.name)
    _go(["mod", "tidy"], work, output.name)
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(output), "."], work, output.name)


def _build_etcd(output: Path, work: Path) -> None:
    _build_main(output, work, _ETCD_MAIN, f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}")


def _kubernetes_staging_modules(work: Path) -> list[str]:
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(
            f"downloading k8s.io/kubernetes@{KUBERNETES_VERSION} failed:\n{result.stderr}"
        )
    go_mod = Path(json.loads(result.stdout)["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[a-z0-9-]+) => \./staging/", go_mod, re.MULTILINE)))


def _build_kube_apiserver(output: Path, work: Path) -> None:
    staging_version = "v0." + KUBERNETES_VERSION.removeprefix("v1.")
    replaces = "\n".join(
        f"replace {module} => {module} {staging_version}"
        for module in _kubernetes_staging_modules(work)
    )
    (work / "go.mod").write_text(
        f"module local/kube-apiserver\n\ngo 1.24\n\nrequire k8s.io/kubernetes {KUBERNETES_VERSION}\n\n"
        f"{replaces}\n"
    )
    (work / "main.go").write_text(_KUBE_APISERVER_MAIN)
    _go(["mod", "tidy"], work, output.name)

    # Stamp the release into the binary, as Kubernetes' own build does; without
    # it /version reports v0.0.0-master and clients that check it (Helm's
    # kubeVersion) refuse to work.
    major, minor, _ = KUBERNETES_VERSION.removeprefix("v").split(".")
    stamp = " ".join(
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    )
    _go(
        ["build", "-trimpath", "-ldflags", f"-s -w {stamp}", "-o", str(output), "."],
        work,
        output.name,
    )


def _go_install(package: str) -> Callable[[Path, Path], None]:
    def build(output: Path, work: Path) -> None:
        gobin = work / "bin"
        environment = {
            **os.environ,
            "GOBIN": str(gobin),
            "CGO_ENABLED": "0",
            "GOFLAGS": "-buildvcs=false",
        }
        result = subprocess.run(
            ["go", "install", "-trimpath", "-ldflags", "-s -w", package],
            cwd=work,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"'go install {package}' failed:\n{result.stderr.strip()[-4000:]}")
        built = list(gobin.iterdir())
        if len(built) != 1:
            raise BuildError(f"'go install {package}' produced {len(built)} files, expected one")
        shutil.move(str(built[0]), output)

    return build


def _supplied_by_hand(name: str, instructions: str) -> Callable[[Path, Path], None]:
    # NOTE: a program the module proxy does not serve is built by hand from its
    # source and copied into the cache, where ensure() finds it.
    def build(output: Path, work: Path) -> None:
        raise BuildError(f"{instructions} {PROGRAMS[name].path}")

    return build


@dataclass(frozen=True)
class Program:
    """A Go program of the control plane, pinned to one release."""

    name: str
    version: str
    build: Callable[[Path, Path], None]
    # Bumped when the build recipe changes, so an older cached binary is not reused.
    recipe: int = 1

    @property
    def path(self) -> Path:
        """Return where the built program is cached."""
        suffix = f"-r{self.recipe}" if self.recipe > 1 else ""
        return cache_dir() / "bin" / f"{self.name}-{self.version}{suffix}"


PROGRAMS: dict[str, Program] = {
    program.name: program
    for program in (
        Program("etcd", ETCD_VERSION, _build_etcd),
        Program("kube-apiserver", KUBERNETES_VERSION, _build_kube_apiserver, recipe=2),
        Program(
            "coredns", COREDNS_VERSION, _go_install(f"github.com/coredns/coredns@{COREDNS_VERSION}")
        ),
        Program("helm", HELM_VERSION, _go_install(f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}")),
        Program(
            "nats-server",
            NATS_SERVER_VERSION,
            _go_install(f"github.com/nats-io/nats-server/v2@{NATS_SERVER_VERSION}"),
        ),
        Program(
            "network-resources-injector",
            NETWORK_RESOURCES_INJECTOR_VERSION,
            _supplied_by_hand(
                "network-resources-injector",
                "the Go module proxy reachable here answers 403 for "
                "github.com/k8snetworkplumbingwg/network-resources-injector; build "
                f"./cmd/webhook from its {NETWORK_RESOURCES_INJECTOR_VERSION} source with "
                "'go build' and copy the binary to"
            ),
        ),
    )
}

# What the tests and the demo need; the benchmarks build the others on demand.
DEFAULT_PROGRAMS = ("etcd", "coredns", "kube-apiserver", "helm")


def ensure(name: str) -> Path:
    """Return the path of program ``name``, building it first if it is not cached."""
    try:
        program = PROGRAMS[name]
    except KeyError:
        raise BuildError(
            f"unknown program {name!r}: expected one of {', '.join(PROGRAMS)}"
        ) from None
    if program.path.is_file():
        return program.path
    if shutil.which("go") is None:
        raise BuildError(
            f"{name} {program.version} is not cached at {program.path} and the 'go' command is "
            "not installed: install Go 1.24 or later, or copy a built binary to that path."
        )

    program.path.parent.mkdir(parents=True, exist_ok=True)
    logger.info(
        "Building %s %s from its Go module; this runs once and takes minutes.",
        name,
        program.version,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"build-{name}-", dir=program.path.parent) as work:
        partial = Path(work) / "output"
        program.build(partial, Path(work))
        partial.chmod(0o755)
        os.replace(partial, program.path)
    logger.info(
        "Built %s %s in %.0f s at %s.",
        name,
        program.version,
        time.monotonic() - started,
        program.path,
    )
    return program.path


def main(argv: list[str]) -> int:
    """Build the named programs, or the default set, and print their paths."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for name in argv or DEFAULT_PROGRAMS:
            print(ensure(name))
    except BuildError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
