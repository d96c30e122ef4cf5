"""Counters, gauges and latency histograms of senders and receivers.

Each sender and receiver keeps its own ``TransportMetrics``; ``snapshot()``
returns plain numbers for logs and tests. Prometheus export is optional:
``register_prometheus()`` adds one collector that reads every live
sender's and receiver's metrics at scrape time, so the hot path never
touches prometheus_client, and the base install does not need it.

Exported series (all prefixed ``numaflow_rdma_transport_``), labelled with
``role`` (sender or receiver), ``name`` (destination or own vertex) and,
where it applies, ``peer`` and ``reason``:

- ``frames_sent_total``, ``bytes_sent_total``, ``frames_received_total``,
  ``bytes_received_total`` by peer;
- ``frames_dropped_total`` by peer and reason (a frame never sent, or given
  up by the receiver); the peer is ``none`` when no peer was chosen;
- ``frames_unconfirmed_total`` by peer: frames sent to a receiver that was
  lost before it confirmed them;
- ``connections_rejected_total`` by reason;
- ``frames_in_flight`` by peer: sent and not yet released by the receiver;
- ``frame_latency_seconds`` (receiver): sender's timestamp to arrival,
  which needs the two clocks in sync (NTP or PTP) to mean anything across
  hosts;
- ``send_duration_seconds`` (sender): ``send`` called to frame transmitted,
  waiting for credit included.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# Seconds: 50 µs to 10 s, dense where a frame hop over RDMA or TCP lands.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

PREFIX = "numaflow_rdma_transport_"


class Histogram:
    """A fixed-bucket histogram of seconds, cumulative like Prometheus's."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Return ``(upper bound, count at or below it)`` pairs, ending with ``+Inf``."""
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            pairs.append((repr(bound), running))
        pairs.append(("+Inf", running + self.counts[-1]))
        return pairs

    def quantile(self, fraction: float) -> float | None:
        """Return the upper bound of the bucket holding the ``fraction`` quantile, or None if empty."""
        if self.count == 0:
            return None
        rank = fraction * self.count
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            if running >= rank:
                return bound
        return float("inf")


@dataclass
class _Peer:
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    frames_unconfirmed: int = 0


class TransportMetrics:
    """The metrics of one sender or receiver; safe to read from any thread."""

    def __init__(self, role: str, name: str) -> None:
        self.role = role
        self.name = name
        self._lock = threading.Lock()
        self._peers: defaultdict[str, _Peer] = defaultdict(_Peer)
        self._dropped: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._rejected: defaultdict[str, int] = defaultdict(int)
        self.latency = Histogram()
        self.send_duration = Histogram()
        self.handler_errors = 0
        self.staged_copies = 0
        """CUDA payloads copied through host memory because the backend cannot move device memory."""
        self.buffer_allocations = 0
        """Receive buffers allocated (or grown); steady at credits x connections when sizes repeat."""
        self.in_flight: Callable[[], dict[str, int]] = dict
        """Return frames in flight by peer; the sender or receiver replaces it."""
        _registry.add(self)

    def frame_sent(self, peer: str, nbytes: int, duration: float) -> None:
        """Count one frame transmitted to ``peer``."""
        with self._lock:
            record = self._peers[peer]
            record.frames_sent += 1
            record.bytes_sent += nbytes
            self.send_duration.observe(duration)

    def frame_received(self, peer: str, nbytes: int, latency: float) -> None:
        """Count one frame received from ``peer``."""
        with self._lock:
            record = self._peers[peer]
            record.frames_received += 1
            record.bytes_received += nbytes
            self.latency.observe(max(latency, 0.0))

    def frame_dropped(self, peer: str | None, reason: str, count: int = 1) -> None:
        """Count ``count`` frames dropped for ``reason``; ``peer`` None when none was chosen."""
        with self._lock:
            self._dropped[(peer or "none", reason)] += count

    def frames_unconfirmed(self, peer: str, count: int) -> None:
        """Count frames sent to ``peer`` that it never confirmed before it was lost."""
        if count:
            with self._lock:
                self._peers[peer].frames_unconfirmed += count

    def connection_rejected(self, reason: str) -> None:
        """Count one connection rejected for ``reason``."""
        with self._lock:
            self._rejected[reason] += 1

    def dropped(self, reason: str | None = None, peer: str | None = None) -> int:
        """Return frames dropped, optionally only for one reason and/or peer."""
        with self._lock:
            return sum(
                count
                for (peer_name, why), count in self._dropped.items()
                if (reason is None or why == reason) and (peer is None or peer_name == peer)
            )

    def snapshot(self) -> dict[str, Any]:
        """Return every counter as plain numbers, for logs, tests and benchmark reports."""
        with self._lock:
            peers = {
                peer: {
                    "frames_sent": record.frames_sent,
                    "bytes_sent": record.bytes_sent,
                    "frames_received": record.frames_received,
                    "bytes_received": record.bytes_received,
                    "frames_unconfirmed": record.frames_unconfirmed,
                }
                for peer, record in self._peers.items()
            }
            dropped: dict[str, int] = defaultdict(int)
            for (_, reason), count in self._dropped.items():
                dropped[reason] += count
            return {
                "role": self.role,
                "name": self.name,
                "frames_sent": sum(p.frames_sent for p in self._peers.values()),
                "bytes_sent": sum(p.bytes_sent for p in self._peers.values()),
                "frames_received": sum(p.frames_received for p in self._peers.values()),
                "bytes_received": sum(p.bytes_received for p in self._peers.values()),
                "frames_unconfirmed": sum(p.frames_unconfirmed for p in self._peers.values()),
                "frames_dropped": dict(dropped),
                "connections_rejected": dict(self._rejected),
                "handler_errors": self.handler_errors,
                "staged_copies": self.staged_copies,
                "buffer_allocations": self.buffer_allocations,
                "frames_in_flight": self.in_flight(),
                "latency_p50_s": self.latency.quantile(0.5),
                "latency_p99_s": self.latency.quantile(0.99),
                "send_duration_p50_s": self.send_duration.quantile(0.5),
                "send_duration_p99_s": self.send_duration.quantile(0.99),
                "peers": peers,
            }

    def _families(self) -> Iterator[tuple[str, str, dict[str, str], Any]]:
        """Yield ``(metric, type, labels, value)`` for the Prometheus collector."""
        base = {"role": self.role, "name": self.name}
        with self._lock:
            for peer, record in self._peers.items():
                labels = {**base, "peer": peer}
                yield "frames_sent_total", "counter", labels, record.frames_sent
                yield "bytes_sent_total", "counter", labels, record.bytes_sent
                yield "frames_received_total", "counter", labels, record.frames_received
                yield "bytes_received_total", "counter", labels, record.bytes_received
                yield "frames_unconfirmed_total", "counter", labels, record.frames_unconfirmed
            for (peer, reason), count in self._dropped.items():
                yield (
                    "frames_dropped_total",
                    "counter",
                    {**base, "peer": peer, "reason": reason},
                    count,
                )
            for reason, count in self._rejected.items():
                yield "connections_rejected_total", "counter", {**base, "reason": reason}, count
            if self.role == "receiver":
                yield "frame_latency_seconds", "histogram", base, self.latency
            else:
                yield "send_duration_seconds", "histogram", base, self.send_duration
        for peer, count in self.in_flight().items():
            yield "frames_in_flight", "gauge", {**base, "peer": peer}, count


_registry: weakref.WeakSet[TransportMetrics] = weakref.WeakSet()
_collector: Any = None

_HELP = {
    "frames_sent_total": "Frames transmitted to a receiver.",
    "bytes_sent_total": "Payload bytes transmitted to a receiver.",
    "frames_received_total": "Frames received from a sender.",
    "bytes_received_total": "Payload bytes received from a sender.",
    "frames_unconfirmed_total": "Frames sent to a receiver that was lost before confirming them.",
    "frames_dropped_total": "Frames dropped, by reason.",
    "connections_rejected_total": "Connections rejected during the handshake or for a bad frame, by reason.",
    "frames_in_flight": "Frames sent and not yet released by the receiver.",
    "frame_latency_seconds": "Sender timestamp to arrival at the receiver.",
    "send_duration_seconds": "Send call to frame transmitted, waiting for credit included.",
}


def register_prometheus(registry: Any = None) -> Any:
    """Register the transport's collector with prometheus_client (once); return it.

    ``registry`` defaults to prometheus_client's global ``REGISTRY``. Raises
    ImportError when prometheus_client is not installed.
    """
    global _collector
    from prometheus_client import REGISTRY
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    if _collector is not None:
        return _collector

    class TransportCollector:
        def collect(self) -> Iterator[Any]:
            families: dict[str, Any] = {}
            for metrics in list(_registry):
                for metric, kind, labels, value in metrics._families():
                    name = PREFIX + metric
                    family: Any = families.get(name)
                    label_names = sorted(labels)
                    if family is None:
                        documentation = _HELP[metric]
                        if kind == "counter":
                            family = CounterMetricFamily(name, documentation, labels=label_names)
                        elif kind == "gauge":
                            family = GaugeMetricFamily(name, documentation, labels=label_names)
                        else:
                            family = HistogramMetricFamily(name, documentation, labels=label_names)
                        families[name] = family
                    label_values = [labels[key] for key in label_names]
                    if kind == "histogram":
                        family.add_metric(label_values, value.cumulative(), sum_value=value.total)
                    else:
                        family.add_metric(label_values, value)
            yield from families.values()

        def describe(self) -> list[Any]:
            return []

    _collector = TransportCollector()
    (registry or REGISTRY).register(_collector)
    return _collector


def start_metrics_server(port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``address:port`` with prometheus_client, registering the collector."""
    from prometheus_client import start_http_server

    register_prometheus()
    start_http_server(port, addr=address)
