"""How long the reliability suites run, and where they write their figures.

The suites run short in every ``pytest`` run. With ``NUMAFLOW_RDMA_CHAOS=1``
(``make chaos``) they run their full counts, which take about 6 minutes
on two cores.
Each suite records what it did (requests sent, faults injected, records and
frames checked) in ``build/reliability/<suite>.json``, or under
``NUMAFLOW_RDMA_RELIABILITY_DIR`` when that is set.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, TypeVar

CHAOS_ENV = "NUMAFLOW_RDMA_CHAOS"
OUTPUT_ENV = "NUMAFLOW_RDMA_RELIABILITY_DIR"
REPO = Path(__file__).resolve().parents[2]

FULL_RUN = os.environ.get(CHAOS_ENV, "") not in ("", "0")

Number = TypeVar("Number", int, float)

_lock = threading.Lock()

RECORDED: list[tuple[str, str]] = []
"""The (suite, case) pairs recorded by this process, in order."""


def scaled(short: Number, full: Number) -> Number:
    """Return ``full`` in a full run and ``short`` otherwise."""
    return full if FULL_RUN else short


def output_dir() -> Path:
    """Return the folder the figures go to, creating it."""
    directory = Path(os.environ.get(OUTPUT_ENV) or REPO / "build" / "reliability")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def record_figures(suite: str, case: str, figures: dict[str, Any]) -> None:
    """Store the figures of one test case in ``<suite>.json``, replacing that case's earlier ones."""
    path = output_dir() / f"{suite}.json"
    with _lock:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            document = {}
        if document.get("full_run") != FULL_RUN:
            document = {"full_run": FULL_RUN, "cases": {}}
        document["cases"][case] = figures
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        RECORDED.append((suite, case))
