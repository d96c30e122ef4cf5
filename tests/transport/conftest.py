"""Skip the UCX cases of the transport tests where ucxx is not installed."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip UCX cases when ucxx is not installed."""
    import importlib.util

    if importlib.util.find_spec("ucxx") is not None:
        return
    skip = pytest.mark.skip(reason="ucxx is not installed (numaflow-rdma[ucx])")
    for item in items:
        if "ucx" in item.keywords:
            item.add_marker(skip)
