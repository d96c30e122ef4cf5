"""Sample where a Python process tree spends its CPU time, with py-spy.

Used in a separate run after the measured ones, because sampling slows the
process it samples.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

from bench.common import Worker, logger


def py_spy_path() -> str | None:
    """Return the py-spy command, beside this Python or on PATH; None when it is not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


def start_profile(pid: int, seconds: float, output: Path) -> Worker | None:
    """Start sampling ``pid`` and its children for ``seconds``; None without py-spy."""
    command = py_spy_path()
    if command is None:
        logger.warning("py-spy is not installed; no profile is taken.")
        return None
    return Worker(
        "py-spy",
        [
            command,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
            # Only threads that hold the GIL: where CPU time goes, not where threads wait.
            "--gil",
        ],
        output.with_suffix(".log"),
    ).start()


def top_frames(collapsed: Path, count: int = 12) -> list[tuple[str, float]]:
    """Return the functions with the most samples at the top of the stack, with their share in %.

    ``collapsed`` contains py-spy's raw output: one ``frame;frame;...;frame N`` line per stack.
    """
    if not collapsed.is_file():
        return []
    totals: Counter[str] = Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.split(";")[-1]
        totals[leaf] += int(samples)
    all_samples = sum(totals.values())
    if not all_samples:
        return []
    return [(frame, 100.0 * hits / all_samples) for frame, hits in totals.most_common(count)]


def finish_profile(worker: Worker | None, output: Path, timeout: float) -> list[tuple[str, float]]:
    """Wait for py-spy to finish and return the top frames (empty when it failed)."""
    if worker is None:
        return []
    try:
        status = worker.wait(timeout)
    except Exception as error:  # a failed profile must not fail the benchmark
        logger.warning("py-spy failed: %s", error)
        return []
    if status != 0:
        logger.warning("py-spy exited with status %d:\n%s", status, worker.log_tail())
    try:
        return top_frames(output)
    except OSError as error:
        logger.warning("Reading the py-spy profile failed: %s", error)
        return []
