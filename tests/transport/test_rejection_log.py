"""Rejected handshakes are logged at most once per interval and reason, with a count of the rest."""

from __future__ import annotations

import logging
import time

import pytest

from numaflow_rdma.transport import inbound
from numaflow_rdma.transport.backends.tcp import TcpBackend
from numaflow_rdma.transport.errors import HandshakeRejectedError
from numaflow_rdma.transport.handshake import Identity
from numaflow_rdma.transport.inbound import ReceiverCore
from numaflow_rdma.transport.metrics import TransportMetrics
from numaflow_rdma.transport.options import ReceiverOptions


def _core() -> ReceiverCore:
    return ReceiverCore(
        TcpBackend(),
        "127.0.0.1",
        0,
        Identity("ns", "video", "receiver"),
        None,
        ReceiverOptions(),
        TransportMetrics("receiver", "receiver"),
        True,
    )


def _rejection(reason: str) -> HandshakeRejectedError:
    return HandshakeRejectedError(f"pipeline mismatch ({reason})", "127.0.0.1:5000", reason)


def test_repeated_rejections_log_once_per_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    interval = 0.5
    monkeypatch.setattr(inbound, "REJECTION_LOG_INTERVAL", interval)
    core = _core()
    caplog.set_level(logging.WARNING, logger=inbound.__name__)

    started = time.monotonic()
    for _ in range(5):
        core._log_rejection(_rejection("identity"))
    core._log_rejection(_rejection("secret"))
    assert time.monotonic() - started < interval, "the machine was too slow for this check"
    time.sleep(interval)
    core._log_rejection(_rejection("identity"))

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "reason identity)" in messages[0]
    assert "reason secret)" in messages[1]
    assert "4 more with this reason were not logged" in messages[2]
