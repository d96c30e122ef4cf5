"""pytest fixtures over the local control plane.

Load them with ``pytest_plugins = ["numaflow_rdma.controlplane.fixtures"]``.
One control plane is started per test session and shared; a test that must
stop or restart a process starts its own ``Etcd``, ``KubeApiServer`` or
``CoreDns`` instead, so the shared one stays healthy for the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from numaflow_rdma.controlplane.plane import ControlPlane
from numaflow_rdma.names import INJECT_LABEL, INJECT_LABEL_ENABLED

if TYPE_CHECKING:
    import dns.resolver
    from kubernetes.client import ApiClient


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Return the session's control plane: two etcds, kube-apiserver and CoreDNS."""
    work_dir: Path = tmp_path_factory.mktemp("controlplane")
    plane = ControlPlane(work_dir=work_dir)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube_client(control_plane: ControlPlane) -> Iterator[ApiClient]:
    """Return a ``kubernetes`` ApiClient for the session's API server, as its admin."""
    assert control_plane.apiserver is not None
    client = control_plane.apiserver.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def dns_resolver(control_plane: ControlPlane) -> dns.resolver.Resolver:
    """Return a dnspython resolver that asks the session's CoreDNS and nothing else."""
    import dns.resolver

    assert control_plane.coredns is not None
    resolver = dns.resolver.Resolver(configure=False)
    host, port = control_plane.coredns.address
    resolver.nameservers = [host]
    resolver.port = port
    resolver.lifetime = 10.0
    resolver.timeout = 10.0
    resolver.cache = None
    return resolver


@pytest.fixture(scope="session")
def dns_etcd_client(control_plane: ControlPlane) -> Iterator[Any]:
    """Return a pyetcd client of the session's DNS etcd."""
    import pyetcd

    assert control_plane.dns_etcd is not None
    client = pyetcd.client(host="127.0.0.1", port=control_plane.dns_etcd.client_port)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_namespace(kube_client: ApiClient) -> Iterator[Callable[..., str]]:
    """Return a factory of uniquely named namespaces, opted in unless ``opted_in=False``.

    Every namespace it creates is deleted when the test ends.
    """
    from kubernetes import client

    core = client.CoreV1Api(kube_client)
    made: list[str] = []

    def make(opted_in: bool = True, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        labels = {INJECT_LABEL: INJECT_LABEL_ENABLED} if opted_in else {}
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            core.delete_namespace(name)
        except client.ApiException as error:
            if error.status != 404:
                raise
