"""Shared set-up of the reliability suites: the helper folders they reuse, and their figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# The suites reuse the helpers of the component tests (webhookpods, harness,
# podfactory, netnamespaces, the chart's RBAC checks) rather than copies of them.
_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("webhook", "dnssync", "transport", "charts"):
    _path = str(_TESTS / _folder)
    if _path not in sys.path:
        sys.path.append(_path)

from runsize import FULL_RUN, RECORDED, output_dir  # noqa: E402


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the reliability suites recorded in this run."""
    if not RECORDED:
        return
    terminalreporter.section(f"reliability figures ({'full' if FULL_RUN else 'short'} run)")
    for suite, case in RECORDED:
        document = json.loads((output_dir() / f"{suite}.json").read_text())
        figures = document["cases"][case]
        text = ", ".join(f"{key}={value}" for key, value in sorted(figures.items()))
        terminalreporter.write_line(f"{suite}/{case}: {text}")
