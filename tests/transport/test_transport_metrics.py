"""Counters, histograms and the Prometheus export."""

from __future__ import annotations

import pytest

from numaflow_rdma.transport.metrics import Histogram, TransportMetrics, register_prometheus


def test_histogram_quantiles() -> None:
    histogram = Histogram((0.001, 0.01, 0.1))
    for seconds in (0.0005, 0.002, 0.003, 0.05, 5.0):
        histogram.observe(seconds)
    assert histogram.count == 5
    assert histogram.quantile(0.5) == 0.01
    assert histogram.quantile(1.0) == float("inf")
    assert histogram.cumulative() == [("0.001", 1), ("0.01", 3), ("0.1", 4), ("+Inf", 5)]


def test_snapshot_counts_per_peer_and_reason() -> None:
    metrics = TransportMetrics("sender", "infer.video.default.vertexdomain.local")
    metrics.frame_sent("198.18.0.2:7470", 100, 0.001)
    metrics.frame_sent("198.18.0.3:7470", 50, 0.002)
    metrics.frame_dropped("198.18.0.3:7470", "timeout")
    metrics.frame_dropped(None, "no_peer", 2)
    metrics.frames_unconfirmed("198.18.0.3:7470", 3)
    snapshot = metrics.snapshot()
    assert snapshot["frames_sent"] == 2
    assert snapshot["bytes_sent"] == 150
    assert snapshot["frames_dropped"] == {"timeout": 1, "no_peer": 2}
    assert snapshot["frames_unconfirmed"] == 3
    assert metrics.dropped(peer="none") == 2


def test_prometheus_export() -> None:
    prometheus = pytest.importorskip("prometheus_client")
    registry = prometheus.CollectorRegistry()
    import numaflow_rdma.transport.metrics as module

    module._collector = None
    register_prometheus(registry)
    metrics = TransportMetrics("receiver", "sink")
    metrics.frame_received("s1", 6_220_800, 0.004)
    metrics.frame_dropped("s1", "too_large")
    metrics.in_flight = lambda: {"s1": 2}
    labels = {"role": "receiver", "name": "sink", "peer": "s1"}
    value = registry.get_sample_value
    assert value("numaflow_rdma_transport_frames_received_total", labels) == 1
    assert value("numaflow_rdma_transport_bytes_received_total", labels) == 6_220_800
    assert (
        value("numaflow_rdma_transport_frames_dropped_total", {**labels, "reason": "too_large"})
        == 1
    )
    assert value("numaflow_rdma_transport_frames_in_flight", labels) == 2
    histogram = {"role": "receiver", "name": "sink", "le": "0.005"}
    assert value("numaflow_rdma_transport_frame_latency_seconds_bucket", histogram) == 1
    module._collector = None
