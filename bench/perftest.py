"""UCX's own bandwidth test, ``ucx_perftest -t tag_bw``, as the ceiling for the ucx backend.

The binary is the one in the libucx wheel that ucxx loads, so it runs the same
UCX release as the transport, with the environment the transport's ucx
backend sets. It runs three ways per frame size:

- ``tcp``: ``UCX_TLS=tcp``;
- ``default``: UCX's own transport selection (shared memory and CMA between
  processes on one host). The ucx backend's payload endpoints are made from
  worker addresses without endpoint error handling, so this is the row with
  the same UCX transports as the transport's ucx backend;
- ``error-handling``: the default selection with endpoint error handling on
  (``-e``), as ucxx's listener endpoints have it. UCX then keeps only
  transports that report peer failures.

Server and client run in the benchmark's loopback namespace. ucx_perftest
prints bandwidth in MB/s meaning MiB/s; the results here are in decimal GB/s
like every other figure of the suite. Its bandwidth is measured on the
client when sends complete, which can be slightly above what the receiver
receives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import transport_paths
from bench.common import (
    FRAME_SIZES,
    MIB,
    UCX_ENVIRONMENT,
    BenchmarkSkipped,
    LoopbackNamespace,
    Worker,
    WorkerError,
    logger,
    stopping,
)
from bench.settings import Settings

PORT = 13337
# Each selection: its extra environment and its extra ucx_perftest options.
TRANSPORT_SELECTIONS: dict[str, tuple[dict[str, str], list[str]]] = {
    "tcp": ({"UCX_TLS": "tcp"}, []),
    "default": ({}, []),
    "error-handling": ({}, ["-e"]),
}
# The selection whose transports match the ucx backend's endpoints.
MATCHING_SELECTION = "default"


def libucx_dir() -> Path:
    """Return the folder of the libucx wheel that ucxx loads; raise BenchmarkSkipped without it."""
    import importlib.util

    spec = importlib.util.find_spec("libucx")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkSkipped("the libucx package (a dependency of ucxx) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / "bin" / "ucx_perftest").is_file():
        raise BenchmarkSkipped(f"ucx_perftest is missing from {folder / 'bin'}")
    return folder


def ucx_version(folder: Path) -> str:
    """Return the UCX library version that ``ucx_info -v`` prints, such as 1.21.0."""
    result = subprocess.run(
        [str(folder / "bin" / "ucx_info"), "-v"],
        env={**os.environ, "LD_LIBRARY_PATH": str(folder / "lib")},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    for line in result.stdout.splitlines():
        if line.startswith("# Library version:"):
            return line.removeprefix("# Library version:").strip()
    return "unknown"


def parse_final_line(output: str) -> dict[str, float]:
    """Parse the ``Final:`` row of ucx_perftest's table into bandwidth and overhead figures."""
    for line in output.splitlines():
        if line.startswith("Final:"):
            fields = line.split()[1:]
            if len(fields) < 7:
                break
            overall_mib_per_s = float(fields[5])
            return {
                "iterations": float(fields[0]),
                "overhead_p50_us": float(fields[1]),
                "overhead_mean_us": float(fields[2]),
                "bandwidth_mib_per_s": overall_mib_per_s,
                "gbps": overall_mib_per_s * MIB / 1e9,
            }
    raise ValueError(f"no 'Final:' row in ucx_perftest output:\n{output[-2000:]}")


def run_one(
    folder: Path,
    namespace: LoopbackNamespace,
    size: int,
    iterations: int,
    environment: dict[str, str],
    options: list[str],
    work_dir: Path,
) -> dict[str, Any]:
    """Run one ucx_perftest server and client and return the client's figures."""
    binary = str(folder / "bin" / "ucx_perftest")
    full_environment = {
        **UCX_ENVIRONMENT,
        **environment,
        "LD_LIBRARY_PATH": str(folder / "lib"),
    }
    server = Worker(
        "ucx_perftest server",
        namespace.wrap([binary, "-p", str(PORT), *options]),
        work_dir / f"perftest-server-{size}-{time.monotonic_ns()}.log",
        full_environment,
    )
    client_command = namespace.wrap(
        [
            binary,
            "127.0.0.1",
            "-p",
            str(PORT),
            "-t",
            "tag_bw",
            "-s",
            str(size),
            "-n",
            str(iterations),
            "-w",
            str(max(2, iterations // 20)),
            *options,
        ]
    )
    with stopping(server):
        server.start()
        time.sleep(0.5)
        output = ""
        for _attempt in range(20):
            result = subprocess.run(
                client_command,
                env={**os.environ, **full_environment},
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            output = result.stdout + result.stderr
            if result.returncode == 0:
                break
            if not server.running():
                raise WorkerError(f"ucx_perftest server exited:\n{server.log_tail()}")
            time.sleep(0.25)
        server.wait(30)
    return parse_final_line(output)


def run(settings: Settings) -> dict[str, Any]:
    """Run tag_bw for every frame size with each transport selection."""
    folder = libucx_dir()
    transport_environment = transport_paths.environment("transport-ucx")
    work_dir = Path(tempfile.mkdtemp(prefix="numaflow-rdma-bench-perftest-"))
    rows: list[dict[str, Any]] = []
    try:
        with LoopbackNamespace() as namespace:
            for size in FRAME_SIZES.values():
                for selection, (selection_environment, options) in TRANSPORT_SELECTIONS.items():
                    environment = {**transport_environment, **selection_environment}
                    try:
                        figures = run_one(
                            folder,
                            namespace,
                            size,
                            settings.perftest_iterations(size),
                            environment,
                            options,
                            work_dir,
                        )
                    except (WorkerError, ValueError, subprocess.TimeoutExpired) as error:
                        logger.error(
                            "ucx_perftest %s at %d bytes failed: %s", selection, size, error
                        )
                        rows.append({"size": size, "selection": selection, "error": str(error)})
                        continue
                    logger.info(
                        "ucx_perftest tag_bw %s, %d B: %.2f GB/s", selection, size, figures["gbps"]
                    )
                    rows.append({"size": size, "selection": selection, **figures})
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "rows": rows,
        "ucx_version": ucx_version(folder),
        "environment": transport_environment,
        "iterations": {
            str(size): settings.perftest_iterations(size) for size in FRAME_SIZES.values()
        },
    }
