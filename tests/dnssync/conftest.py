"""Fixtures for dnssync integration tests over the session's control plane."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from harness import DnssyncProcess, Pods, create_namespace, delete_namespace

from numaflow_rdma import names
from numaflow_rdma.controlplane import ControlPlane
from numaflow_rdma.dnssync.kube import KubeClient

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@pytest.fixture
def kube(kube_client: ApiClient) -> KubeClient:
    return KubeClient(kube_client)


@pytest.fixture
def pods(kube: KubeClient) -> Pods:
    return Pods(kube)


@pytest.fixture
def make_vertex_namespace(kube: KubeClient, dns_etcd_client: Any) -> Iterator[Callable[..., str]]:
    """Return a factory of unique namespaces; each is emptied, deleted and its records removed at the end."""
    made: list[str] = []

    def make(opted_in: bool = True) -> str:
        name = f"dns-{uuid.uuid4().hex[:8]}"
        create_namespace(kube, name, opted_in)
        made.append(name)
        return name

    yield make
    for name in made:
        delete_namespace(kube, name)
        dns_etcd_client.delete_prefix(names.zone_etcd_prefix() + name + "/")


@pytest.fixture
def start_dnssync(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[Callable[..., DnssyncProcess]]:
    """Return a starter of ``numaflow-rdma dnssync`` processes on the session's control plane.

    Each test gets its own Lease, so leaders of earlier tests do not delay it.
    Every process still running at the end is stopped by its PID.
    """
    assert control_plane.apiserver is not None and control_plane.dns_etcd is not None
    lease = f"dnssync-{uuid.uuid4().hex[:8]}"
    started: list[DnssyncProcess] = []

    def start(
        name: str = "dnssync",
        *,
        owner_id: str | None = None,
        wait_ready: bool = True,
        extra: tuple[str, ...] = (),
    ) -> DnssyncProcess:
        assert control_plane.apiserver is not None and control_plane.dns_etcd is not None
        process = DnssyncProcess(
            tmp_path,
            f"{name}-{len(started)}",
            kubeconfig=control_plane.apiserver.kubeconfig_path,
            etcd_endpoint=control_plane.dns_etcd.endpoint,
            owner_id=owner_id or f"{name}-{uuid.uuid4().hex[:6]}",
            lease_name=lease,
            extra=("--resync-interval=5", "--lease-duration=3", *extra),
        )
        started.append(process)
        return process.start(wait_ready=wait_ready)

    yield start
    for process in started:
        process.stop()
