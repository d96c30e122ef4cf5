"""The whole suite in its smoke version, so every benchmark keeps working.

It runs ``python -m bench --smoke`` into a temporary folder, never over
docs/benchmarks.md. A benchmark may be skipped where this machine cannot run
it (the page then states why), but none may fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(400)]


def test_smoke_run_writes_page(tmp_path: Path) -> None:
    published = REPO_ROOT / "docs" / "benchmarks.md"
    published_before = published.read_bytes() if published.exists() else None

    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-6000:]

    results = json.loads((tmp_path / "benchmarks" / "results.json").read_text())
    statuses = {name: entry["status"] for name, entry in results["benchmarks"].items()}
    assert set(statuses) == {"frames", "perftest", "scaling", "admission", "dnssync"}
    failed = {name: status for name, status in statuses.items() if status == "failed"}
    assert not failed, log[-6000:]

    page = (tmp_path / "benchmarks.md").read_text()
    assert "## Targets" in page
    assert "smoke run" in page
    if statuses["frames"] == "ok":
        assert (tmp_path / "benchmarks" / "frames-fps.png").stat().st_size > 0
    if statuses["admission"] == "ok":
        assert (tmp_path / "benchmarks" / "admission-latency.png").stat().st_size > 0

    published_after = published.read_bytes() if published.exists() else None
    assert published_after == published_before
