"""The generated Corefiles run by the real CoreDNS against a real DNS etcd.

Each test starts its own etcd, because some stop it, and its own CoreDNS
processes: the zone's CoreDNS with the generated zone server block, and a
second CoreDNS standing in for cluster DNS with the generated forwarding
stanza merged into a kubeadm-like Corefile. Everything listens on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from numaflow_rdma import certs, corefile, names
from numaflow_rdma.controlplane import binaries
from numaflow_rdma.controlplane.coredns import CoreDns
from numaflow_rdma.controlplane.etcd import Etcd
from numaflow_rdma.controlplane.process import LOOPBACK, ManagedProcess, free_port, free_ports
from numaflow_rdma.corefile import (
    CacheSettings,
    EtcdSettings,
    ForwardSettings,
    ListenSettings,
    ZoneServerSettings,
)

pytestmark = pytest.mark.controlplane

# Port numbers written into a generated Corefile and then swapped for the
# placeholders CoreDns fills in. They lie above Linux's ephemeral port range,
# so no real port of the test can be mistaken for one.
PORT_SENTINELS = {65101: "port", 65102: "ready_port", 65103: "health_port"}
ZONE = names.DEFAULT_ZONE
RECORD_TTL = 2
# Base of the cluster DNS Corefile: what kubeadm writes, less the plugins that
# would reach the API server or the host's resolvers.
CLUSTER_COREFILE = """\
.:65101 {
    bind 127.0.0.1
    errors
    health 127.0.0.1:65103
    ready 127.0.0.1:65102
    loop
    loadbalance
}
"""


def as_template(text: str) -> str:
    """Turn a generated Corefile into a CoreDns template by putting back the port placeholders."""
    template = text
    for number, placeholder in PORT_SENTINELS.items():
        assert f":{number}" in template, f"port {number} is missing from the Corefile"
        template = template.replace(f":{number}", f":{{{placeholder}}}")
    return template


def zone_settings(etcd: EtcdSettings, *, serve_stale: int = 3600) -> ZoneServerSettings:
    return ZoneServerSettings(
        etcd=etcd,
        listen=ListenSettings(port=65101, addresses=(LOOPBACK,)),
        cache=CacheSettings(serve_stale=serve_stale),
        ready_port=65102,
        health_port=65103,
        metrics_port=free_port(),
        lameduck=0,
    )


def query(
    server: CoreDns, name: str, rdtype: str = "A", timeout: float = 15.0
) -> dns.message.Message:
    request = dns.message.make_query(name, rdtype)
    return dns.query.udp(request, LOOPBACK, port=server.port, timeout=timeout)


def addresses(response: dns.message.Message) -> set[str]:
    return {
        record.address
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.A
        for record in rrset
    }


def put_pod_record(client: Any, pod: str, host: str, vertex: str = "infer") -> str:
    key = names.pod_etcd_key(pod, vertex, "video", "frames", ZONE)
    client.put(key, names.record_value(host, names.DEFAULT_TRANSPORT_PORT, RECORD_TTL, "test"))
    return names.vertex_dns_name(vertex, "video", "frames", ZONE)


def start_coredns(work_dir: Path, template: str, name: str) -> CoreDns:
    server = CoreDns(work_dir, "unused", ZONE, corefile_template=template, name=name)
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def dns_etcd(tmp_path: Path) -> Iterator[Etcd]:
    etcd = Etcd("etcd-dns", tmp_path)
    etcd.start()
    try:
        etcd.wait_ready()
        yield etcd
    finally:
        etcd.stop()


@pytest.fixture
def etcd_client(dns_etcd: Etcd) -> Iterator[Any]:
    import pyetcd

    client = pyetcd.client(host=LOOPBACK, port=dns_etcd.client_port)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def zone_dns(tmp_path: Path, dns_etcd: Etcd) -> Iterator[CoreDns]:
    text = corefile.zone_server_block(zone_settings(EtcdSettings(endpoints=(dns_etcd.endpoint,))))
    server = start_coredns(tmp_path, as_template(text), "coredns-zone")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster_dns(tmp_path: Path, zone_dns: CoreDns) -> Iterator[CoreDns]:
    stanza = corefile.forward_server_block(
        ForwardSettings(
            upstreams=(f"{LOOPBACK}:{zone_dns.port}",),
            listen=ListenSettings(port=65101, addresses=(LOOPBACK,)),
        )
    )
    text = corefile.merge_server_block(CLUSTER_COREFILE, stanza, ZONE)
    server = start_coredns(tmp_path, as_template(text), "coredns-cluster")
    try:
        yield server
    finally:
        server.stop()


def test_zone_server_answers_record(zone_dns: CoreDns, etcd_client: Any) -> None:
    name = put_pod_record(etcd_client, "video-infer-0-abcde", "198.18.0.10")
    put_pod_record(etcd_client, "video-infer-1-fghij", "198.18.0.11")

    response = query(zone_dns, name)

    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == {"198.18.0.10", "198.18.0.11"}


def test_zone_server_answers_srv_with_port(zone_dns: CoreDns, etcd_client: Any) -> None:
    name = put_pod_record(etcd_client, "video-infer-0-abcde", "198.18.0.10")

    response = query(zone_dns, name, "SRV")

    ports = {record.port for rrset in response.answer for record in rrset}
    assert response.rcode() == dns.rcode.NOERROR
    assert ports == {names.DEFAULT_TRANSPORT_PORT}


def test_zone_apex_answers_soa(zone_dns: CoreDns) -> None:
    # The install guide checks forwarding with this query before any pod exists.
    response = query(zone_dns, ZONE, "SOA")

    assert response.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.SOA]


def test_zone_server_unknown_name_is_nxdomain(zone_dns: CoreDns, etcd_client: Any) -> None:
    put_pod_record(etcd_client, "video-infer-0-abcde", "198.18.0.10")

    response = query(zone_dns, f"missing.video.frames.{ZONE}")

    assert response.rcode() == dns.rcode.NXDOMAIN


def test_cluster_dns_forwards_zone(cluster_dns: CoreDns, etcd_client: Any) -> None:
    name = put_pod_record(etcd_client, "video-infer-0-abcde", "198.18.0.10")

    response = query(cluster_dns, name)

    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == {"198.18.0.10"}


def test_cluster_dns_leaves_other_names(cluster_dns: CoreDns) -> None:
    # The root block of the test cluster DNS has no backend, so CoreDNS
    # refuses; the point is that the stanza did not take the query.
    response = query(cluster_dns, "kubernetes.default.svc.cluster.local")

    assert response.rcode() in (dns.rcode.REFUSED, dns.rcode.SERVFAIL)
    assert not response.answer


def wait_past_cache_expiry() -> None:
    # The cache keeps an answer for at least its minimum TTL of 5 s, however
    # short the record's TTL is.
    time.sleep(max(RECORD_TTL, 5) + 1.5)


def test_stale_answer_outlives_etcd(
    zone_dns: CoreDns, cluster_dns: CoreDns, dns_etcd: Etcd, etcd_client: Any
) -> None:
    name = put_pod_record(etcd_client, "video-infer-0-abcde", "198.18.0.10")
    assert addresses(query(zone_dns, name)) == {"198.18.0.10"}
    assert addresses(query(cluster_dns, name)) == {"198.18.0.10"}

    dns_etcd.stop()
    # A name never answered has nothing to fall back on: this shows etcd is gone.
    started = time.monotonic()
    unseen = query(zone_dns, f"other.video.frames.{ZONE}")
    assert unseen.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started >= 4.0

    wait_past_cache_expiry()
    first = query(zone_dns, name)
    assert first.rcode() == dns.rcode.NOERROR
    assert addresses(first) == {"198.18.0.10"}
    assert all(rrset.ttl == 0 for rrset in first.answer)

    # By now the background refresh the first stale answer started has failed.
    time.sleep(7.0)
    second = query(zone_dns, name)
    assert second.rcode() == dns.rcode.NOERROR
    assert addresses(second) == {"198.18.0.10"}
    through_cluster = query(cluster_dns, name)
    assert through_cluster.rcode() == dns.rcode.NOERROR
    assert addresses(through_cluster) == {"198.18.0.10"}


def test_stale_answer_lost_when_servfail_cached(
    tmp_path: Path, dns_etcd: Etcd, etcd_client: Any
) -> None:
    # The same outage with the cache's default SERVFAIL caching: the failed
    # background refresh replaces the stale answer. This is why the generator
    # writes "servfail 0" next to serve_stale.
    text = corefile.zone_server_block(zone_settings(EtcdSettings(endpoints=(dns_etcd.endpoint,))))
    assert "        servfail 0\n" in text
    server = start_coredns(
        tmp_path, as_template(text.replace("        servfail 0\n", "")), "coredns-servfail"
    )
    try:
        name = put_pod_record(etcd_client, "video-infer-0-abcde", "198.18.0.10")
        assert addresses(query(server, name)) == {"198.18.0.10"}
        dns_etcd.stop()

        wait_past_cache_expiry()
        assert query(server, name).rcode() == dns.rcode.NOERROR
        time.sleep(7.0)
        assert query(server, name).rcode() == dns.rcode.SERVFAIL
    finally:
        server.stop()


def test_new_record_seen_after_denial_ttl(zone_dns: CoreDns, etcd_client: Any) -> None:
    name = names.vertex_dns_name("late", "video", "frames", ZONE)
    assert query(zone_dns, name).rcode() == dns.rcode.NXDOMAIN

    put_pod_record(etcd_client, "video-late-0-abcde", "198.18.0.20", vertex="late")
    deadline = time.monotonic() + corefile.DEFAULT_CACHE_DENIAL_TTL + 3
    response = query(zone_dns, name)
    while response.rcode() != dns.rcode.NOERROR and time.monotonic() < deadline:
        time.sleep(0.5)
        response = query(zone_dns, name)

    assert addresses(response) == {"198.18.0.20"}


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Start an etcd that serves only TLS and requires client certificates."""
    ca = certs.make_ca("test etcd CA")
    server_pair = certs.issue_certificate(ca, "etcd", hosts=[LOOPBACK, "localhost"])
    client_pair = certs.issue_certificate(ca, "coredns", server=False, client=True)
    paths = {
        name: tmp_path / name
        for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    }
    paths["ca.crt"].write_bytes(ca.certificate_pem)
    server_pair.write(paths["server.crt"], paths["server.key"])
    client_pair.write(paths["client.crt"], paths["client.key"])

    client_port, peer_port, metrics_port = free_ports(3)
    peer = f"http://{LOOPBACK}:{peer_port}"
    process = ManagedProcess(
        "etcd-tls",
        [
            str(binaries.ensure("etcd")),
            "--name=etcd-tls",
            f"--data-dir={tmp_path / 'etcd-tls.data'}",
            f"--listen-client-urls=https://{LOOPBACK}:{client_port}",
            f"--advertise-client-urls=https://{LOOPBACK}:{client_port}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=etcd-tls={peer}",
            f"--listen-metrics-urls=http://{LOOPBACK}:{metrics_port}",
            f"--cert-file={paths['server.crt']}",
            f"--key-file={paths['server.key']}",
            f"--trusted-ca-file={paths['ca.crt']}",
            "--client-cert-auth",
            "--log-level=warn",
            "--unsafe-no-fsync",
        ],
        tmp_path / "etcd-tls.log",
    )

    def healthy() -> bool:
        import urllib.request

        with urllib.request.urlopen(
            f"http://{LOOPBACK}:{metrics_port}/health", timeout=1
        ) as response:
            return b'"health":"true"' in response.read()

    process.start()
    try:
        process.wait_ready(healthy, 20.0)
        yield {"endpoint": f"https://{LOOPBACK}:{client_port}", "port": client_port, **paths}
    finally:
        process.stop()


def test_zone_server_reads_etcd_over_tls(tmp_path: Path, tls_etcd: dict[str, Any]) -> None:
    import pyetcd

    etcd = EtcdSettings(
        endpoints=(tls_etcd["endpoint"],),
        ca_file=str(tls_etcd["ca.crt"]),
        cert_file=str(tls_etcd["client.crt"]),
        key_file=str(tls_etcd["client.key"]),
    )
    server = start_coredns(
        tmp_path, as_template(corefile.zone_server_block(zone_settings(etcd))), "coredns-tls"
    )
    client = pyetcd.client(
        host=LOOPBACK,
        port=tls_etcd["port"],
        ca_cert=str(tls_etcd["ca.crt"]),
        cert_cert=str(tls_etcd["client.crt"]),
        cert_key=str(tls_etcd["client.key"]),
    )
    try:
        name = put_pod_record(client, "video-infer-0-abcde", "198.18.0.30")
        response = query(server, name)
    finally:
        client.close()
        server.stop()

    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == {"198.18.0.30"}
