"""Outages on a private control plane: DNS etcd restarts, and a watch that expires (410 Gone)."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from harness import DnssyncProcess, Pods, answers, create_namespace, vertex_name, wait_until

from numaflow_rdma.controlplane import ControlPlane
from numaflow_rdma.dnssync.controller import POD_RESOURCE
from numaflow_rdma.dnssync.kube import KubeClient
from numaflow_rdma.dnssync.metrics import Metrics
from numaflow_rdma.dnssync.watch import (
    ObjectCache,
    Reflector,
    WatchExpiredError,
    open_watch,
    watch_request,
)

pytestmark = pytest.mark.controlplane


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this module's own, because its tests stop and restart its processes."""
    with ControlPlane(work_dir=tmp_path_factory.mktemp("outage-plane")) as private:
        yield private


@pytest.fixture(scope="module")
def kube(plane: ControlPlane) -> Iterator[KubeClient]:
    assert plane.apiserver is not None
    api_client = plane.apiserver.api_client()
    yield KubeClient(api_client)
    api_client.close()


@pytest.fixture
def resolver(plane: ControlPlane) -> dns.resolver.Resolver:
    assert plane.coredns is not None
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [plane.coredns.address[0]]
    resolver.port = plane.coredns.address[1]
    resolver.lifetime = resolver.timeout = 10.0
    resolver.cache = None
    return resolver


@pytest.fixture
def namespace(kube: KubeClient) -> str:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    create_namespace(kube, name)
    return name


@pytest.fixture
def dnssync(plane: ControlPlane, tmp_path: Path) -> Iterator[DnssyncProcess]:
    assert plane.apiserver is not None and plane.dns_etcd is not None
    process = DnssyncProcess(
        tmp_path,
        "dnssync",
        kubeconfig=plane.apiserver.kubeconfig_path,
        etcd_endpoint=plane.dns_etcd.endpoint,
        owner_id="outage-test",
        lease_name=f"outage-{uuid.uuid4().hex[:8]}",
        extra=("--resync-interval=5",),
    )
    process.start()
    yield process
    process.stop()


def etcd_client(port: int) -> Any:
    import pyetcd

    return pyetcd.client(host="127.0.0.1", port=port, timeout=5)


def remove_pod_behind_api_server(plane: ControlPlane, namespace: str, name: str) -> None:
    """With the API server stopped, delete a pod straight from its etcd and compact the history.

    No watch can see this deletion, and no watch can resume from a resource
    version before it, so only a new list shows that the pod is gone.
    """
    assert plane.api_etcd is not None
    client = etcd_client(plane.api_etcd.client_port)
    try:
        client.delete(f"/registry/pods/{namespace}/{name}")
        revision = client.put("/numaflow-rdma-test/marker", "compact here").header.revision
        client.compact(revision, physical=True)
    finally:
        client.close()


def test_dns_etcd_restart_is_survived(
    plane: ControlPlane, dnssync: DnssyncProcess, namespace: str, kube: KubeClient, resolver: Any
) -> None:
    assert plane.dns_etcd is not None
    pods = Pods(kube)
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    wait_until(
        lambda: answers(resolver, vertex_name(namespace)) == {"198.18.0.1", "198.18.0.2"},
        what="records",
    )

    plane.dns_etcd.stop()
    # The pods change while etcd is down; dnssync keeps the state and reports not ready.
    pods.delete(namespace, "video-infer-0-aaaaa")
    pods.start(namespace, "video-infer-2-ccccc", "198.18.0.3")
    status, reason = wait_until(
        lambda: (lambda probe: probe if probe[0] == 503 else None)(dnssync.probe("/readyz")),
        what="not ready during the outage",
    )
    assert status == 503
    assert reason.startswith("etcd is unavailable")
    log = dnssync.log()
    assert re.search(
        r"attempt 1/5 failed; will retry in 0\.2s: (GET|PUT|DELETE) /skydns/local/vertexdomain/",
        log,
    )
    assert re.search(
        r"attempt 5/5 failed; escalating: (GET|PUT|DELETE) /skydns/local/vertexdomain/", log
    )
    assert "etcd is unavailable; keeping the state of " in log
    assert dnssync.metric("numaflow_rdma_dnssync_ready") == 0.0
    plane.dns_etcd.start()
    plane.dns_etcd.wait_ready()

    wait_until(
        lambda: answers(resolver, vertex_name(namespace)) == {"198.18.0.2", "198.18.0.3"},
        timeout=60,
        what="convergence after etcd returns",
    )
    wait_until(lambda: dnssync.probe("/readyz")[0] == 200, what="ready again")
    assert dnssync.probe("/healthz")[0] == 200


def test_watch_expiry_relists(
    plane: ControlPlane, dnssync: DnssyncProcess, namespace: str, kube: KubeClient, resolver: Any
) -> None:
    assert plane.apiserver is not None
    pods = Pods(kube)
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    wait_until(
        lambda: answers(resolver, vertex_name(namespace)) == {"198.18.0.1", "198.18.0.2"},
        what="records",
    )

    plane.apiserver.stop()
    remove_pod_behind_api_server(plane, namespace, "video-infer-0-aaaaa")
    plane.apiserver.start()
    plane.apiserver.wait_ready()

    wait_until(
        lambda: answers(resolver, vertex_name(namespace)) == {"198.18.0.2"},
        timeout=60,
        what="relist",
    )
    assert "The watch of pods expired at resource version" in dnssync.log()
    assert "listing again" in dnssync.log()
    # Watching goes on after the relist.
    pods.start(namespace, "video-infer-2-ccccc", "198.18.0.3")
    wait_until(
        lambda: answers(resolver, vertex_name(namespace)) == {"198.18.0.2", "198.18.0.3"},
        what="watch",
    )


def test_compacted_resource_version_expires(
    plane: ControlPlane, kube: KubeClient, namespace: str
) -> None:
    assert plane.api_etcd is not None
    Pods(kube).create(namespace, "video-infer-0-aaaaa")
    client = etcd_client(plane.api_etcd.client_port)
    try:
        revision = client.put("/numaflow-rdma-test/marker", "compact here").header.revision
        client.compact(revision, physical=True)
    finally:
        client.close()

    with pytest.raises(WatchExpiredError):
        for _ in watch_request(open_watch(kube, POD_RESOURCE, "2", timeout_seconds=5)):
            pass


def test_reflector_relist_drops_missed_deletes(
    plane: ControlPlane, kube: KubeClient, namespace: str
) -> None:
    assert plane.apiserver is not None
    pods = Pods(kube)
    pods.create(namespace, "video-infer-0-aaaaa")
    pods.create(namespace, "video-infer-1-bbbbb")
    stop = threading.Event()
    metrics = Metrics()
    cache = ObjectCache("pods")
    reflector = Reflector(kube, POD_RESOURCE, cache, stop, metrics=metrics, watch_timeout=30)
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    try:

        def names_in_namespace() -> set[str]:
            return {
                obj["metadata"]["name"]
                for obj in cache.objects()
                if obj["metadata"]["namespace"] == namespace
            }

        wait_until(
            lambda: names_in_namespace() == {"video-infer-0-aaaaa", "video-infer-1-bbbbb"},
            what="list",
        )
        pods.create(namespace, "video-infer-2-ccccc")
        wait_until(lambda: "video-infer-2-ccccc" in names_in_namespace(), what="watch event")

        plane.apiserver.stop()
        remove_pod_behind_api_server(plane, namespace, "video-infer-1-bbbbb")
        plane.apiserver.start()
        plane.apiserver.wait_ready()

        wait_until(
            lambda: names_in_namespace() == {"video-infer-0-aaaaa", "video-infer-2-ccccc"},
            timeout=60,
            what="relist without the pod deleted behind the API server",
        )
        assert metrics.watch_relists.labels("pods")._value.get() == 2
        assert metrics.watch_errors.labels("pods")._value.get() >= 1
    finally:
        stop.set()
        reflector.interrupt()
        thread.join(10)
    assert not thread.is_alive()
