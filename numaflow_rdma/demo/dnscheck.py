"""Compare CoreDNS's answers for each vertex name with the Ready pods the API server stores.

The questions go to CoreDNS on the simulated network's gateway, the server
the UDF processes use. The expected addresses come from the API: the RDMA
address in ``network-status`` of every vertex pod that is Ready and not
being deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver

from numaflow_rdma import names
from numaflow_rdma.demo.kube import DemoKube
from numaflow_rdma.dnssync.addresses import NetworkSelector, NetworkStatusError, rdma_address
from numaflow_rdma.dnssync.desired import is_pod_ready


@dataclass(frozen=True)
class DnsCheck:
    """One vertex name at one step: what DNS answered and what the API says it should."""

    step: str
    vertex: str
    name: str
    expected: tuple[str, ...]
    answered: tuple[str, ...]
    seconds: float
    """How long DNS took to agree with the API, or the time waited when it never did."""

    @property
    def matches(self) -> bool:
        """Return True when DNS answered exactly the Ready pods' addresses."""
        return self.expected == self.answered


def ready_addresses(
    pods: Iterable[dict[str, Any]], vertex: str, network: str
) -> tuple[str, ...]:
    """Return the RDMA addresses of ``vertex``'s Ready pods that are not being deleted, sorted."""
    addresses = []
    selector = NetworkSelector(network=network)
    for pod in pods:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if not names.is_vertex_pod_labels(labels) or labels.get(names.LABEL_VERTEX_NAME) != vertex:
            continue
        if metadata.get("deletionTimestamp") or not is_pod_ready(pod):
            continue
        try:
            address = rdma_address(metadata.get("annotations"), metadata.get("namespace", ""), selector)
        except NetworkStatusError:
            continue
        if address is not None:
            addresses.append(str(address))
    return tuple(sorted(addresses))


class DnsProbe:
    """Asks CoreDNS on the gateway for the A records of vertex names."""

    def __init__(self, server: str, port: int) -> None:
        self.resolver = dns.resolver.Resolver(configure=False)
        self.resolver.nameservers = [server]
        self.resolver.port = port
        self.resolver.cache = None
        self.resolver.lifetime = 3.0
        self.resolver.timeout = 3.0

    def addresses(self, name: str) -> tuple[str, ...]:
        """Return the sorted A records of ``name``; empty for NXDOMAIN or no data."""
        try:
            answer = self.resolver.resolve(name, "A", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ()
        return tuple(sorted(record.address for record in answer))

    def wait_until_agreed(
        self,
        kube: DemoKube,
        namespace: str,
        pipeline: str,
        vertices: Iterable[str],
        network: str,
        step: str,
        timeout: float,
    ) -> list[DnsCheck]:
        """Poll until every vertex name answers its Ready pods' addresses, or ``timeout`` passes.

        Returns one check per vertex, also when DNS never agreed; the caller decides.
        """
        started = time.monotonic()
        deadline = started + timeout
        wanted = list(vertices)
        while True:
            pods = kube.list_pods(namespace)
            checks = []
            for vertex in wanted:
                name = names.vertex_dns_name(vertex, pipeline, namespace)
                try:
                    answered = self.addresses(name)
                except dns.exception.DNSException as error:
                    answered = (f"error: {type(error).__name__}",)
                checks.append(
                    DnsCheck(
                        step=step,
                        vertex=vertex,
                        name=name,
                        expected=ready_addresses(pods, vertex, network),
                        answered=answered,
                        seconds=time.monotonic() - started,
                    )
                )
            if all(check.matches for check in checks) or time.monotonic() >= deadline:
                return checks
            time.sleep(0.1)
