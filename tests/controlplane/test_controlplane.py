"""The local control plane runs the real programs, and CoreDNS behaves as the design needs.

The CoreDNS etcd plugin's behaviours pinned here are the ones dnssync and the
transport are built on: a name answers with every record in its subtree, one
value under a prefix that is not JSON turns lookups above it into SERVFAIL,
and JSON fields the plugin does not know are ignored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest
import yaml
from kubernetes import client

from numaflow_rdma import names
from numaflow_rdma.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

CRD_PATH = (
    Path(names.__file__).parent / "controlplane" / "crds" / "network-attachment-definition.yaml"
)


@pytest.fixture
def vertex(dns_etcd_client: Any) -> Iterator[tuple[str, str, str]]:
    """Return a fresh (vertex, pipeline, namespace) and delete its records afterwards."""
    identity = ("infer", f"p{uuid.uuid4().hex[:8]}", "cams")
    yield identity
    dns_etcd_client.delete_prefix(names.vertex_etcd_prefix(*identity))


def put_record(
    etcd: Any, pod: str, vertex: tuple[str, str, str], ip: str, port: int = 7470
) -> None:
    etcd.put(names.pod_etcd_key(pod, *vertex), names.record_value(ip, port, 5, "test"))


def query(control_plane: ControlPlane, name: str, rdtype: str) -> dns.message.Message:
    assert control_plane.coredns is not None
    host, port = control_plane.coredns.address
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=10)


def test_apiserver_accepts_crd_and_pod(kube_client: client.ApiClient, make_namespace: Any) -> None:
    extensions = client.ApiextensionsV1Api(kube_client)
    manifest = yaml.safe_load(CRD_PATH.read_text())
    try:
        extensions.create_custom_resource_definition(manifest)
    except client.ApiException as error:
        assert error.status == 409, error.body
    stored = extensions.read_custom_resource_definition(manifest["metadata"]["name"])
    assert stored.spec.names.kind == "NetworkAttachmentDefinition"

    namespace = make_namespace(opted_in=False)
    core = client.CoreV1Api(kube_client)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox")]),
    )
    core.create_namespaced_pod(namespace, pod)
    assert core.read_namespaced_pod("plain", namespace).status.phase == "Pending"


def test_coredns_answers_vertex_name_with_a_and_srv(
    control_plane: ControlPlane,
    dns_etcd_client: Any,
    dns_resolver: dns.resolver.Resolver,
    vertex: tuple[str, str, str],
) -> None:
    put_record(dns_etcd_client, "pod-a", vertex, "198.18.0.10")
    put_record(dns_etcd_client, "pod-b", vertex, "198.18.0.11")
    name = names.vertex_dns_name(*vertex)

    addresses = sorted(rdata.address for rdata in dns_resolver.resolve(name, "A"))
    assert addresses == ["198.18.0.10", "198.18.0.11"]

    services = dns_resolver.resolve(name, "SRV")
    assert sorted(rdata.port for rdata in services) == [7470, 7470]
    targets = sorted(str(rdata.target).rstrip(".") for rdata in services)
    assert targets == [f"pod-a.{name}", f"pod-b.{name}"]


def test_coredns_answers_pod_name(
    dns_etcd_client: Any, dns_resolver: dns.resolver.Resolver, vertex: tuple[str, str, str]
) -> None:
    put_record(dns_etcd_client, "pod-a", vertex, "198.18.0.10")
    put_record(dns_etcd_client, "pod-b", vertex, "198.18.0.11")
    pod_name = names.pod_dns_name("pod-b", names.vertex_dns_name(*vertex))

    assert [rdata.address for rdata in dns_resolver.resolve(pod_name, "A")] == ["198.18.0.11"]
    assert [rdata.port for rdata in dns_resolver.resolve(pod_name, "SRV")] == [7470]


def test_coredns_answers_ipv6_as_aaaa(
    dns_etcd_client: Any, dns_resolver: dns.resolver.Resolver, vertex: tuple[str, str, str]
) -> None:
    put_record(dns_etcd_client, "pod-a", vertex, "2001:db8::7")
    answer = dns_resolver.resolve(names.vertex_dns_name(*vertex), "AAAA")
    assert [rdata.address for rdata in answer] == ["2001:db8::7"]


def test_name_answers_whole_subtree(
    dns_etcd_client: Any, dns_resolver: dns.resolver.Resolver, vertex: tuple[str, str, str]
) -> None:
    put_record(dns_etcd_client, "pod-a", vertex, "198.18.0.10")
    other_vertex = ("decode", vertex[1], vertex[2])
    put_record(dns_etcd_client, "pod-c", other_vertex, "198.18.0.20")
    try:
        pipeline_name = names.vertex_dns_name(*vertex).split(".", 1)[1]
        addresses = sorted(rdata.address for rdata in dns_resolver.resolve(pipeline_name, "A"))
        assert addresses == ["198.18.0.10", "198.18.0.20"]
    finally:
        dns_etcd_client.delete_prefix(names.vertex_etcd_prefix(*other_vertex))


def test_unparsable_value_turns_names_above_into_servfail(
    control_plane: ControlPlane, dns_etcd_client: Any, vertex: tuple[str, str, str]
) -> None:
    put_record(dns_etcd_client, "pod-a", vertex, "198.18.0.10")
    name = names.vertex_dns_name(*vertex)
    assert query(control_plane, name, "A").rcode() == dns.rcode.NOERROR

    dns_etcd_client.put(names.pod_etcd_key("broken", *vertex), "this is not json")
    assert query(control_plane, name, "A").rcode() == dns.rcode.SERVFAIL
    pipeline_name = name.split(".", 1)[1]
    assert query(control_plane, pipeline_name, "A").rcode() == dns.rcode.SERVFAIL

    dns_etcd_client.delete(names.pod_etcd_key("broken", *vertex))
    assert query(control_plane, name, "A").rcode() == dns.rcode.NOERROR


def test_unknown_json_fields_are_ignored(
    dns_etcd_client: Any, dns_resolver: dns.resolver.Resolver, vertex: tuple[str, str, str]
) -> None:
    value = {"host": "198.18.0.30", "port": 7470, "ttl": 5, "owner": "someone", "extra": {"a": [1]}}
    dns_etcd_client.put(names.pod_etcd_key("pod-x", *vertex), json.dumps(value))
    answer = dns_resolver.resolve(names.vertex_dns_name(*vertex), "A")
    assert [rdata.address for rdata in answer] == ["198.18.0.30"]


def test_unknown_name_is_nxdomain(control_plane: ControlPlane) -> None:
    response = query(control_plane, names.vertex_dns_name("absent", "nothing", "here"), "A")
    assert response.rcode() == dns.rcode.NXDOMAIN


def test_record_ttl_is_served(
    control_plane: ControlPlane, dns_etcd_client: Any, vertex: tuple[str, str, str]
) -> None:
    put_record(dns_etcd_client, "pod-a", vertex, "198.18.0.10")
    response = query(control_plane, names.vertex_dns_name(*vertex), "A")
    assert [rrset.ttl for rrset in response.answer] == [5]


def test_stop_ends_every_process(tmp_path: Path) -> None:
    plane = ControlPlane(work_dir=tmp_path).start()
    processes = [plane.api_etcd, plane.dns_etcd, plane.apiserver, plane.coredns]
    pids = [component.pid for component in processes if component is not None]
    assert len(pids) == 4
    plane.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
