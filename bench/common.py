"""Helpers every benchmark shares: statistics, worker processes, CPU accounting, namespaces.

Worker processes run in their own session and are ended by the PID they were
started with, never by name. Network namespaces are made with a random name
and removed by the same object, so the servers and load generators of a run
can only reach loopback addresses of their own namespace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

logger = logging.getLogger("bench")

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

MIB = 1024 * 1024
# Frame sizes of the frame benchmarks: 1 MiB, 1080p RGB and 4K RGB (uint8).
FRAME_SIZES: dict[str, int] = {
    "1 MiB": MIB,
    "1080p RGB": 1920 * 1080 * 3,
    "4K RGB": 3840 * 2160 * 3,
}


class BenchmarkSkipped(RuntimeError):
    """A benchmark could not run here; the message states why and goes on the page."""


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Return count, mean, p50, p90, p99 and max of ``values`` (NaN when empty)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        nan = math.nan
        return {"count": 0, "mean": nan, "p50": nan, "p90": nan, "p99": nan, "max": nan}
    return {
        "count": int(array.size),
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


def median(values: Sequence[float]) -> float:
    """Return the median of ``values``, or NaN for none."""
    return float(np.median(values)) if len(values) else math.nan


def ratio(numerator: float | None, denominator: float | None) -> float:
    """Return numerator / denominator, or NaN when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or not denominator:
        return math.nan
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON through a temporary file, so readers never see half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_text())


@dataclass
class CpuSample:
    """User and system CPU seconds of a set of processes at one moment."""

    user: float = 0.0
    system: float = 0.0

    @property
    def total(self) -> float:
        """Return user plus system seconds."""
        return self.user + self.system


def cpu_times(pid: int, include_children: bool = True) -> CpuSample:
    """Return the CPU seconds used so far by ``pid`` and, optionally, its live descendants.

    A process that already exited counts as zero; sample before stopping it.
    """
    import psutil

    sample = CpuSample()
    try:
        root = psutil.Process(pid)
        processes = [root, *(root.children(recursive=True) if include_children else [])]
    except psutil.NoSuchProcess:
        return sample
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            sample.user += times.user
            sample.system += times.system
    return sample


def resident_bytes(pid: int, include_children: bool = True) -> int:
    """Return the resident set size of ``pid`` and its descendants, in bytes (0 when gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *(root.children(recursive=True) if include_children else [])]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


class CpuClock:
    """This process's CPU seconds since the clock was made, for a worker's result.

    Workers make it after their set-up, so imports and buffer allocation are
    left out of the figures.
    """

    def __init__(self) -> None:
        self._start = os.times()

    def elapsed(self) -> dict[str, float]:
        """Return the user and system CPU seconds used since the clock was made."""
        now = os.times()
        return {"user": now.user - self._start.user, "system": now.system - self._start.system}


class WorkerError(RuntimeError):
    """A worker process failed, timed out or wrote no result."""


@dataclass
class Worker:
    """A child process started in its own session, with its output in a log file."""

    name: str
    command: list[str]
    log_path: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        """Start the process; return self."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.environment},
                start_new_session=True,
            )
        logger.debug("Started %s as PID %d: %s", self.name, self.process.pid, self.command)
        return self

    @property
    def pid(self) -> int:
        """Return the PID; raise WorkerError before the start."""
        if self.process is None:
            raise WorkerError(f"{self.name} was not started")
        return self.process.pid

    def running(self) -> bool:
        """Tell whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the exit; kill the process group and raise after it."""
        if self.process is None:
            raise WorkerError(f"{self.name} was not started")
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise WorkerError(
                f"{self.name} did not finish within {timeout:.0f} s and was killed; "
                f"its log is {self.log_path}:\n{self.log_tail()}"
            ) from None

    def stop(self, grace: float = 5.0) -> None:
        """End the process group by PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log_tail(self, lines: int = 15) -> str:
        """Return the last ``lines`` lines of the log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_for_file(path: Path, worker: Worker, timeout: float) -> str:
    """Wait until ``path`` exists and return its text; raise WorkerError if the worker exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if not worker.running():
            raise WorkerError(
                f"{worker.name} exited before it was ready; its log is {worker.log_path}:\n"
                f"{worker.log_tail()}"
            )
        time.sleep(0.02)
    raise WorkerError(f"{worker.name} was not ready within {timeout:.0f} s:\n{worker.log_tail()}")


@contextlib.contextmanager
def stopping(*workers: Worker) -> Iterator[None]:
    """Stop every worker on exit from the block, whatever happened inside."""
    try:
        yield
    finally:
        for worker in workers:
            try:
                worker.stop()
            except Exception:
                logger.exception("Stopping %s failed.", worker.name)


def network_namespaces_supported() -> str | None:
    """Return why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the 'ip' command is missing; install iproute2"
    return None


class LoopbackNamespace:
    """A network namespace with only ``lo`` up, for processes that must reach nothing else.

    Without root it falls back to the host's namespace; callers then keep every
    server on 127.0.0.1 and set ``UCX_NET_DEVICES=lo`` for UCX.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        self.fallback_reason = network_namespaces_supported()

    def open(self) -> LoopbackNamespace:
        """Create the namespace and bring ``lo`` up, unless namespaces are not supported."""
        if self.fallback_reason:
            logger.warning("Running without a network namespace: %s.", self.fallback_reason)
            return self
        name = f"nfrb-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.name = name
        subprocess.run(
            ["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True
        )
        return self

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """Return ``argv`` wrapped to run inside the namespace (unchanged in the fallback)."""
        if self.name is None:
            return list(argv)
        return ["ip", "netns", "exec", self.name, *argv]

    def close(self) -> None:
        """Delete the namespace."""
        if self.name is not None:
            result = subprocess.run(
                ["ip", "netns", "delete", self.name], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                logger.warning("Deleting namespace %s failed: %s", self.name, result.stderr)
            self.name = None

    def __enter__(self) -> LoopbackNamespace:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# UCX settings for every UCX process of the suite: loopback only, and no
# warning about UCX_MEMTYPE_CACHE, which ucxx sets but UCX 1.21 no longer recognizes.
UCX_ENVIRONMENT: dict[str, str] = {
    "UCX_NET_DEVICES": "lo",
    "UCX_WARN_UNUSED_ENV_VARS": "n",
}
