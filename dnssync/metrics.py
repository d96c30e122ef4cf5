"""The Prometheus metrics of one dnssync instance.

Each instance registers its metrics in its own registry, so several
controllers in one test process do not collide; ``/metrics`` serves it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "numaflow_rdma_dnssync"

# Event-to-write latency is expected in the millisecond range; the top buckets
# catch etcd outages and backoff.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters, gauges and histograms, registered in ``self.registry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.records = Gauge(
            "records",
            "Records in etcd that this instance owns, after the last sync.",
            namespace=NAMESPACE,
            registry=registry,
        )

        self.desired_records = Gauge(
            "desired_records",
            "Pods that should have a record, at the last sync.",
            namespace=NAMESPACE,
            registry=registry,
        )

        self.plan_size = Gauge(
            "plan_size",
            "Changes in the last plan, by action (create, update, delete).",
            ["action"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.changes = Counter(
            "changes",
            "Changes written to etcd, by action (create, update, delete).",
            ["action"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.apply_errors = Counter(
            "apply_errors",
            "Plan changes not made: conflict (the key changed since it was read) or "
            "unavailable (etcd did not respond).",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.conflicts = Gauge(
            "conflicts",
            "Keys the last plan left alone and reported, by kind.",
            ["kind"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.etcd_errors = Counter(
            "etcd_errors",
            "Failed etcd request attempts, by operation (GET, PUT, DELETE).",
            ["operation"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.event_to_write_seconds = Histogram(
            "event_to_write_seconds",
            "Seconds from a pod or namespace event to the etcd write it caused.",
            namespace=NAMESPACE,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )

        self.sync_seconds = Histogram(
            "sync_seconds",
            "Seconds one sync took, planning and applying.",
            ["kind"],
            namespace=NAMESPACE,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )

        self.skipped_pods = Gauge(
            "skipped_pods",
            "Pods without a record at the last sync, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.pod_problems = Gauge(
            "pod_problems",
            "Pods skipped for invalid input at the last sync, by Event reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.watch_relists = Counter(
            "watch_relists",
            "Full lists of a watched resource, including the first.",
            ["resource"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.watch_errors = Counter(
            "watch_errors",
            "Watch connections that failed and were retried.",
            ["resource"],
            namespace=NAMESPACE,
            registry=registry,
        )

        self.is_leader = Gauge(
            "is_leader",
            "1 while this instance holds the Lease and writes records, else 0.",
            namespace=NAMESPACE,
            registry=registry,
        )

        self.ready = Gauge(
            "ready",
            "1 while /readyz reports ready, else 0.",
            namespace=NAMESPACE,
            registry=registry,
        )
