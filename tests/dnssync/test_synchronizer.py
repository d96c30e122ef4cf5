"""One sync at a time: remembered etcd values, full reads, conflicts, reports, and metrics."""

from __future__ import annotations

import logging

import pytest
from memorystore import MemoryStore
from podfactory import RDMA_NETWORK, opted_in, vertex_pod

from numaflow_rdma import names
from numaflow_rdma.dnssync.controller import Synchronizer, record_settings
from numaflow_rdma.dnssync.desired import desired_state
from numaflow_rdma.dnssync.etcd import EtcdUnavailableError
from numaflow_rdma.dnssync.metrics import Metrics
from numaflow_rdma.dnssync.reporting import ProblemReporter, RateLimiter
from numaflow_rdma.dnssync.retry import Backoff, retry_message
from numaflow_rdma.dnssync.settings import EtcdSettings, Settings, parse_etcd_endpoints

SETTINGS = Settings(
    etcd=EtcdSettings(parse_etcd_endpoints("http://127.0.0.1:2379")),
    network=RDMA_NETWORK,
    owner_id="me",
)
NAMESPACES = {"team": opted_in()}


def desired(*pods: dict[str, object]):  # type: ignore[no-untyped-def]
    return desired_state(pods, NAMESPACES, record_settings(SETTINGS))


def key(pod: str) -> str:
    return names.pod_etcd_key(pod, "infer", "video", "team")


class UnavailableStore(MemoryStore):
    def put(self, key: str, value: str, *, expected: str | None) -> bool:
        raise EtcdUnavailableError(f"PUT {key} failed: test")


def test_first_sync_reads_and_creates() -> None:
    store = MemoryStore()
    synchronizer = Synchronizer(SETTINGS, store, Metrics())

    result = synchronizer.sync(desired(vertex_pod("p1", address="198.18.0.1")), {"me"}, full=False)

    assert result.full  # Nothing was read before, so the first sync reads.
    assert (result.created, result.updated, result.deleted, result.owned) == (1, 0, 0, 1)
    assert store.values == {key("p1"): names.record_value("198.18.0.1", 7470, 30, "me")}


def test_event_sync_reuses_remembered_values() -> None:
    store = MemoryStore()
    synchronizer = Synchronizer(SETTINGS, store, Metrics())
    synchronizer.sync(desired(vertex_pod("p1")), {"me"}, full=True)
    # Someone deletes the record behind dnssync's back; an event sync does not notice.
    store.values.clear()

    assert synchronizer.sync(desired(vertex_pod("p1")), {"me"}, full=False).created == 0
    assert store.values == {}
    # A full sync reads etcd again and repairs it.
    assert synchronizer.sync(desired(vertex_pod("p1")), {"me"}, full=True).created == 1
    assert key("p1") in store.values


def test_failed_compare_forces_next_read(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    metrics = Metrics()
    synchronizer = Synchronizer(SETTINGS, store, metrics)
    synchronizer.sync(desired(vertex_pod("p1", address="198.18.0.1")), {"me"}, full=True)
    store.values[key("p1")] = '{"host": "198.18.9.9", "owner": "other"}'

    with caplog.at_level(logging.WARNING):
        result = synchronizer.sync(
            desired(vertex_pod("p1", address="198.18.0.2")), {"me"}, full=False
        )

    assert result.failed_compares == 1
    assert "its value changed after it was read" in caplog.text
    assert metrics.apply_errors.labels("conflict")._value.get() == 1
    assert synchronizer.current is None
    # The next sync reads the new owner and leaves the key alone.
    result = synchronizer.sync(desired(vertex_pod("p1", address="198.18.0.2")), {"me"}, full=False)
    assert result.conflicts == 1
    assert store.values[key("p1")] == '{"host": "198.18.9.9", "owner": "other"}'


def test_unavailable_etcd_forgets_remembered_values() -> None:
    synchronizer = Synchronizer(SETTINGS, UnavailableStore(), Metrics())

    with pytest.raises(EtcdUnavailableError):
        synchronizer.sync(desired(vertex_pod("p1")), {"me"}, full=True)

    assert synchronizer.current is None
    assert synchronizer.metrics.apply_errors.labels("unavailable")._value.get() == 1


def test_adopted_records_are_counted_until_taken_over() -> None:
    store = MemoryStore({key("p1"): names.record_value("198.18.0.1", 7470, 30, "old-leader")})
    synchronizer = Synchronizer(SETTINGS, store, Metrics())

    result = synchronizer.sync(
        desired(vertex_pod("p1", address="198.18.0.1")), {"me", "old-leader"}, full=True
    )

    assert result.updated == 1
    assert synchronizer.former_owner_records == 0
    assert '"owner":"me"' in store.values[key("p1")]


def test_sync_sets_metrics() -> None:
    metrics = Metrics()
    synchronizer = Synchronizer(SETTINGS, MemoryStore(), metrics)

    synchronizer.sync(
        desired(
            vertex_pod("p1"), vertex_pod("p2", ready=False), vertex_pod("p3", vertex="Bad_Name")
        ),
        {"me"},
        full=True,
    )

    assert metrics.records._value.get() == 1
    assert metrics.desired_records._value.get() == 1
    assert metrics.plan_size.labels("create")._value.get() == 1
    assert metrics.changes.labels("create")._value.get() == 1
    assert metrics.skipped_pods.labels("not-ready")._value.get() == 1
    assert metrics.pod_problems.labels("InvalidDnsName")._value.get() == 1


def test_problems_are_reported_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    reporter = ProblemReporter(None, "test", interval=60, clock=lambda: now[0])
    synchronizer = Synchronizer(SETTINGS, MemoryStore(), Metrics(), reporter)
    bad = vertex_pod("bad", vertex="Bad_Name")

    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            synchronizer.sync(desired(bad), {"me"}, full=True)
        assert caplog.text.count("Skipping pod team/bad") == 1
        now[0] = 61
        synchronizer.sync(desired(bad), {"me"}, full=True)
        assert caplog.text.count("Skipping pod team/bad") == 2

    assert reporter.suppressed == 4


def test_fixed_problem_that_returns_is_reported_again() -> None:
    limiter = RateLimiter(interval=600, clock=lambda: 0.0)

    assert limiter.allow("a")
    assert not limiter.allow("a")
    limiter.retain([])
    assert limiter.allow("a")


def test_backoff_doubles_up_to_maximum() -> None:
    backoff = Backoff(initial=0.2, maximum=1.0)

    assert [backoff.delay(attempt) for attempt in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.delay(10_000) == 1.0


def test_retry_message_shape() -> None:
    assert (
        retry_message(2, 5, 1.0, "PUT /skydns/x", "etcd connection failed")
        == "attempt 2/5 failed; will retry in 1.0s: PUT /skydns/x -> etcd connection failed"
    )
    assert retry_message(5, 5, None, "PUT /k", "e") == "attempt 5/5 failed; escalating: PUT /k -> e"
    assert (
        retry_message(3, None, 0.5, "WATCH pods", "e")
        == "attempt 3 failed; will retry in 0.5s: WATCH pods -> e"
    )
