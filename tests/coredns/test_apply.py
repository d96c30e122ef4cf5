"""``numaflow-rdma coredns --apply`` against the real kube-apiserver.

Each test writes into ConfigMaps of its own namespace (``--cluster-dns-configmap``),
so the tests never touch kube-system.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from numaflow_rdma import coredns
from numaflow_rdma.config import ConfigError
from numaflow_rdma.controlplane.plane import ControlPlane

pytestmark = pytest.mark.controlplane

KUBEADM_COREFILE = (
    ".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    reload\n}\n"
)
STANZA_KEY = "numaflow-rdma.vertexdomain.local.server"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    coredns.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def apply_args(control_plane: ControlPlane) -> Callable[..., argparse.Namespace]:
    assert control_plane.apiserver is not None
    kubeconfig = str(control_plane.apiserver.kubeconfig_path)

    def build(*argv: str) -> argparse.Namespace:
        return parse("--apply", "--kubeconfig", kubeconfig, *argv)

    return build


@pytest.fixture
def zone_service(kube_client: Any, make_namespace: Callable[..., str]) -> tuple[str, str]:
    """Create the zone's CoreDNS Service and return its NAMESPACE/NAME and cluster IP."""
    namespace = make_namespace(opted_in=False, prefix="dns")
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name="zone-dns"),
        spec=client.V1ServiceSpec(
            selector={"app": "zone-dns"},
            ports=[client.V1ServicePort(name="dns", port=53, target_port=1053, protocol="UDP")],
        ),
    )
    created = client.CoreV1Api(kube_client).create_namespaced_service(namespace, service)
    assert created.spec is not None and created.spec.cluster_ip
    return f"{namespace}/zone-dns", created.spec.cluster_ip


def read_data(kube_client: Any, namespace: str, name: str) -> dict[str, str]:
    config_map = client.CoreV1Api(kube_client).read_namespaced_config_map(name, namespace)
    return dict(config_map.data or {})


def test_kubeadm_apply_merges_and_removes(
    kube_client: Any,
    make_namespace: Callable[..., str],
    zone_service: tuple[str, str],
    apply_args: Callable[..., argparse.Namespace],
) -> None:
    service, cluster_ip = zone_service
    namespace = make_namespace(opted_in=False, prefix="kubeadm")
    client.CoreV1Api(kube_client).create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="coredns"), data={"Corefile": KUBEADM_COREFILE}
        ),
    )
    target = ("--form", "forward-kubeadm", "--cluster-dns-configmap", f"{namespace}/coredns")

    assert coredns.run(apply_args(*target, "--upstream-service", service)) == 0
    merged = read_data(kube_client, namespace, "coredns")["Corefile"]
    assert merged.startswith(KUBEADM_COREFILE)
    assert f"forward . {cluster_ip}:53\n" in merged

    assert coredns.run(apply_args(*target, "--upstream-service", service)) == 0
    assert read_data(kube_client, namespace, "coredns")["Corefile"] == merged

    assert coredns.run(apply_args(*target, "--remove")) == 0
    assert read_data(kube_client, namespace, "coredns")["Corefile"] == KUBEADM_COREFILE


def test_custom_apply_keeps_other_keys(
    kube_client: Any,
    make_namespace: Callable[..., str],
    zone_service: tuple[str, str],
    apply_args: Callable[..., argparse.Namespace],
) -> None:
    service, cluster_ip = zone_service
    namespace = make_namespace(opted_in=False, prefix="custom")
    target = ("--form", "forward-custom", "--cluster-dns-configmap", f"{namespace}/coredns-custom")

    # The ConfigMap does not exist yet, as on a fresh k3s cluster.
    assert coredns.run(apply_args(*target, "--upstream-service", service)) == 0
    assert (
        f"forward . {cluster_ip}:53\n"
        in read_data(kube_client, namespace, "coredns-custom")[STANZA_KEY]
    )

    core = client.CoreV1Api(kube_client)
    core.patch_namespaced_config_map(
        "coredns-custom", namespace, {"data": {"other.server": "example.test:53 {\n}\n"}}
    )
    assert coredns.run(apply_args(*target, "--remove")) == 0

    data = read_data(kube_client, namespace, "coredns-custom")
    assert STANZA_KEY not in data
    assert data["other.server"] == "example.test:53 {\n}\n"


def test_remove_from_missing_custom_configmap(
    make_namespace: Callable[..., str], apply_args: Callable[..., argparse.Namespace]
) -> None:
    namespace = make_namespace(opted_in=False, prefix="custom")
    args = apply_args(
        "--form",
        "forward-custom",
        "--cluster-dns-configmap",
        f"{namespace}/coredns-custom",
        "--remove",
    )
    assert coredns.run(args) == 0


def test_apply_missing_service_fails(
    make_namespace: Callable[..., str], apply_args: Callable[..., argparse.Namespace]
) -> None:
    namespace = make_namespace(opted_in=False, prefix="custom")
    args = apply_args(
        "--form",
        "forward-custom",
        "--cluster-dns-configmap",
        f"{namespace}/coredns-custom",
        "--upstream-service",
        f"{namespace}/absent",
    )
    with pytest.raises(ConfigError, match="HTTP 404"):
        coredns.run(args)


def test_kubeadm_apply_missing_configmap_fails(
    make_namespace: Callable[..., str], apply_args: Callable[..., argparse.Namespace]
) -> None:
    namespace = make_namespace(opted_in=False, prefix="kubeadm")
    args = apply_args(
        "--form",
        "forward-kubeadm",
        "--cluster-dns-configmap",
        f"{namespace}/coredns",
        "--upstreams",
        "10.96.0.9",
    )
    with pytest.raises(ConfigError, match="check --cluster-dns-configmap"):
        coredns.run(args)
