"""Fixtures that run the real ``numaflow-rdma webhook`` command: gunicorn over TLS on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from webhookserver import RunningWebhook, start_webhook_server

from numaflow_rdma.controlplane.process import ManagedProcess


@pytest.fixture
def start_webhook(tmp_path: Path) -> Iterator[Callable[..., RunningWebhook]]:
    """Return a function that starts ``numaflow-rdma webhook`` and waits until ``/readyz`` is ok.

    Every server started through it is stopped by its PID when the test ends.
    """
    started: list[ManagedProcess] = []

    def start(arguments: Sequence[str], workers: int = 2) -> RunningWebhook:
        webhook = start_webhook_server(tmp_path, arguments, workers)
        started.append(webhook.process)
        return webhook

    yield start
    for process in started:
        process.stop()
