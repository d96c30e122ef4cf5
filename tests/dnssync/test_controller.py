"""The controller in-process over the session's control plane, where its state is easy to observe."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import Pods, answers, vertex_name, wait_until
from podfactory import RDMA_NETWORK

from numaflow_rdma import names
from numaflow_rdma.controlplane import ControlPlane
from numaflow_rdma.dnssync.controller import Controller, sync_once
from numaflow_rdma.dnssync.etcd import EtcdRecordStore
from numaflow_rdma.dnssync.kube import KubeClient
from numaflow_rdma.dnssync.settings import EtcdSettings, Settings, parse_etcd_endpoints

pytestmark = pytest.mark.controlplane


@pytest.fixture
def settings(control_plane: ControlPlane) -> Settings:
    assert control_plane.dns_etcd is not None
    return Settings(
        etcd=EtcdSettings(parse_etcd_endpoints(control_plane.dns_etcd.endpoint)),
        network=RDMA_NETWORK,
        owner_id=f"inprocess-{uuid.uuid4().hex[:6]}",
        lease_name=f"inprocess-{uuid.uuid4().hex[:6]}",
        lease_duration=3,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[EtcdRecordStore]:
    store = EtcdRecordStore(settings.etcd)
    yield store
    store.close()


@pytest.fixture
def controller(
    settings: Settings, kube_client: Any, store: EtcdRecordStore
) -> Iterator[Controller]:
    controller = Controller(settings, kube_client, store)
    controller.start()
    yield controller
    controller.stop()


def test_sync_once_counts(
    settings: Settings,
    kube: KubeClient,
    store: EtcdRecordStore,
    make_vertex_namespace: Callable[..., str],
    pods: Pods,
) -> None:
    namespace = make_vertex_namespace()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")

    first = sync_once(settings, kube, store)
    second = sync_once(settings, kube, store)

    assert first.created == 2
    assert first.desired >= 2
    assert second.created == second.updated == second.deleted == 0
    assert second.owned == first.owned
    assert store.get_prefix(names.vertex_etcd_prefix("infer", "video", namespace)).keys() == {
        names.pod_etcd_key("video-infer-0-aaaaa", "infer", "video", namespace),
        names.pod_etcd_key("video-infer-1-bbbbb", "infer", "video", namespace),
    }


def test_readiness_and_latency_metric(
    controller: Controller, make_vertex_namespace: Callable[..., str], pods: Pods, dns_resolver: Any
) -> None:
    wait_until(lambda: controller.readiness()[1].startswith("ok: leader"), what="ready as leader")
    assert controller.readiness()[0]
    assert controller.liveness() == (True, "ok")
    namespace = make_vertex_namespace()

    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1"}, what="the record"
    )
    histogram = controller.metrics.event_to_write_seconds
    count = next(
        sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    )
    assert count >= 1
    assert controller.last_result is not None


def test_stop_ends_threads_and_releases_lease(
    settings: Settings, kube_client: Any, store: EtcdRecordStore, kube: KubeClient
) -> None:
    controller = Controller(settings, kube_client, store)
    controller.start()
    wait_until(controller.is_leader, what="leadership")

    controller.stop()

    assert all(not thread.is_alive() for thread in controller._threads)
    lease = kube.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{settings.lease_name}"
    )
    assert not lease["spec"].get("holderIdentity")
