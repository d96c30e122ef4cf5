"""Run the benchmark suite and write the page: ``python -m bench [--smoke] [--output-dir DIR]``.

Each benchmark runs in turn. One that cannot run here (a missing program,
no root for namespaces, a component not built yet) is recorded as skipped
with the reason, and one that fails is recorded with its error; the others
still run and the page states what happened to each.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import admission, dnssync, frames, machine, perftest, report, scaling
from bench.common import REPO_ROOT, BenchmarkSkipped, logger, read_json, write_json
from bench.settings import FULL, SMOKE, Settings

BENCHMARKS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "frames": frames.run,
    "perftest": perftest.run,
    "scaling": scaling.run,
    "admission": admission.run,
    "dnssync": dnssync.run,
}
DEFAULT_GPU_RESULTS = REPO_ROOT / "docs" / "benchmarks" / "gpu-frames.json"


def run_benchmark(name: str, settings: Settings) -> dict[str, Any]:
    """Run one benchmark and return its entry: ok with the result, skipped or failed."""
    started = time.monotonic()
    logger.info("Running the %s benchmark.", name)
    try:
        result = BENCHMARKS[name](settings)
    except BenchmarkSkipped as skipped:
        logger.warning("Skipped the %s benchmark: %s", name, skipped)
        return {"status": "skipped", "reason": str(skipped)}
    except Exception as error:  # one broken benchmark must not lose the others' results
        logger.error("The %s benchmark failed: %s", name, error)
        return {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }
    seconds = time.monotonic() - started
    logger.info("The %s benchmark finished in %.0f s.", name, seconds)
    return {"status": "ok", "result": result, "seconds": seconds}


def load_gpu_results(path: Path | None) -> dict[str, Any] | None:
    """Return the saved GPU results with their file name, or None when the file is absent."""
    if path is None or not path.is_file():
        return None
    try:
        source = str(path.relative_to(REPO_ROOT))
    except ValueError:
        source = path.name
    return {"source": source, "data": read_json(path)}


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the suite's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run numaflow-rdma's benchmarks and write benchmarks.md with plots.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run a short version of every benchmark; the figures only show that it works",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="folder for benchmarks.md; plots and results.json go to its benchmarks/ "
        "subfolder (default: docs, or build/bench-smoke with --smoke)",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated benchmarks to run, of {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--gpu-results",
        type=Path,
        default=DEFAULT_GPU_RESULTS,
        help="JSON file written by bench/gpu_frames.py on a GPU machine; its figures go in "
        "the GPU section when it exists",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the page again from the output folder's benchmarks/results.json",
    )
    parser.add_argument("--verbose", action="store_true", help="log each worker process started")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, save the results and write the page."""
    arguments = sys.argv[1:] if argv is None else argv
    args = parse_arguments(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kubernetes", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    settings = SMOKE if args.smoke else FULL
    output_dir: Path = args.output_dir or (
        REPO_ROOT / "build" / "bench-smoke" if args.smoke else REPO_ROOT / "docs"
    )
    results_path = output_dir / report.IMAGE_DIR / "results.json"
    if args.report_only:
        if not results_path.is_file():
            logger.error(
                "No results to report: %s does not exist; run the suite first.", results_path
            )
            return 2
        page = report.write_report(read_json(results_path), output_dir)
        logger.info("Wrote %s.", page)
        return 0

    selected = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = [name for name in selected if name not in BENCHMARKS]
    if unknown:
        logger.error(
            "Unknown benchmark %s: expected some of %s.", ", ".join(unknown), ", ".join(BENCHMARKS)
        )
        return 2

    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine.describe(["bench", *arguments]),
        "smoke": settings.smoke,
        "settings": asdict(settings),
        "benchmarks": {},
    }
    for name in selected:
        results["benchmarks"][name] = run_benchmark(name, settings)
    results["elapsed_s"] = time.monotonic() - started
    results["gpu"] = load_gpu_results(args.gpu_results)

    (output_dir / report.IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    write_json(results_path, results)
    page = report.write_report(results, output_dir)
    logger.info("Wrote %s and %s in %.0f s.", page, results_path, results["elapsed_s"])
    failed = [name for name, entry in results["benchmarks"].items() if entry["status"] == "failed"]
    if failed:
        logger.error("These benchmarks failed: %s.", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
