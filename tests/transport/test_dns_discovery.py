"""Receivers are found, added and dropped through real CoreDNS serving records from etcd.

Each test runs in a forked child with its own network namespace, where it
starts its own etcd and CoreDNS on loopback. A pod is published by putting
its record at its etcd key, as dnssync does.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from netnamespaces import BACKENDS, requires_root, run_isolated

from numaflow_rdma import names
from numaflow_rdma.controlplane import CoreDns, Etcd
from numaflow_rdma.transport import NameNotFoundError, Receiver, Sender
from numaflow_rdma.transport.discovery import DnsDiscovery, PeerAddress
from numaflow_rdma.transport.errors import DiscoveryError

pytestmark = [pytest.mark.controlplane, pytest.mark.netns, requires_root]

VERTEX = ("infer", "video", "default")
IDENTITY = {"namespace": "default", "pipeline": "video"}
DNS_NAME = names.vertex_dns_name(*VERTEX)


@contextmanager
def _dns() -> Iterator[tuple[CoreDns, Any]]:
    # The records go in through etcd's JSON gateway: these tests run in a
    # forked child, where a gRPC client would dial from the parent's namespace.
    with tempfile.TemporaryDirectory() as work:
        etcd = Etcd("dns-etcd", Path(work))
        etcd.start()
        coredns: CoreDns | None = None
        try:
            etcd.wait_ready()
            coredns = CoreDns(Path(work), etcd.endpoint)
            coredns.start()
            coredns.wait_ready()
            yield coredns, etcd
        finally:
            if coredns is not None:
                coredns.stop()
            etcd.stop()


def _publish(client: Any, pod: str, port: int, host: str = "127.0.0.1", ttl: int = 1) -> None:
    client.put(names.pod_etcd_key(pod, *VERTEX), names.record_value(host, port, ttl, "test"))


def _unpublish(client: Any, pod: str) -> None:
    client.delete(names.pod_etcd_key(pod, *VERTEX))


def _eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def _check_lookups() -> None:
    with _dns() as (coredns, client):
        _publish(client, "pod-a", 7470, "198.18.0.2", ttl=7)
        _publish(client, "pod-b", 7471, "198.18.0.3", ttl=9)
        discovery = DnsDiscovery(DNS_NAME, 7000, coredns.address)
        resolution = asyncio.run(discovery.resolve())
        assert resolution.peers == {
            PeerAddress("198.18.0.2", 7470),
            PeerAddress("198.18.0.3", 7471),
        }
        assert resolution.ttl == 7

        missing = DnsDiscovery("nobody." + DNS_NAME, 7000, coredns.address)
        with pytest.raises(NameNotFoundError, match="does not exist"):
            asyncio.run(missing.resolve())

        # No DNS server listens on this port inside the namespace.
        silent = DnsDiscovery(DNS_NAME, 7000, ("127.0.0.1", 9), timeout=0.5)
        with pytest.raises(DiscoveryError, match="failed"):
            asyncio.run(silent.resolve())


def test_lookup_returns_pods_with_srv_ports() -> None:
    run_isolated(_check_lookups, timeout=120)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _peers_used(sender: Sender, receivers: dict[str, Receiver], count: int) -> set[str]:
    used = set()
    for _ in range(count):
        result = sender.send(b"frame", timeout=5)
        assert result.sent, result
        used.add(result.peer or "")
        frame = receivers[result.peer or ""].receive(timeout=5)
        assert frame is not None
        frame.release()
    return used


def _check_churn(backend: str) -> None:
    warnings = _Warnings()
    logging.getLogger("numaflow_rdma.transport").addHandler(warnings)
    with _dns() as (coredns, client):
        first = Receiver("127.0.0.1", 0, backend=backend, name="pod-a", **IDENTITY)
        second = Receiver("127.0.0.1", 0, backend=backend, name="pod-b", **IDENTITY)
        by_peer = {f"127.0.0.1:{first.port}": first, f"127.0.0.1:{second.port}": second}
        nameserver = f"{coredns.address[0]}:{coredns.address[1]}"
        _publish(client, "pod-a", first.port)
        with Sender(DNS_NAME, nameserver=nameserver, backend=backend, **IDENTITY) as sender:
            assert sender.wait_for_peers(1, timeout=10) == 1
            assert _peers_used(sender, by_peer, 4) == {f"127.0.0.1:{first.port}"}

            # A pod added to DNS is used within a TTL or two.
            _publish(client, "pod-b", second.port)
            assert sender.wait_for_peers(2, timeout=10) == 2
            assert _peers_used(sender, by_peer, 6) == set(by_peer)

            # A pod removed from DNS is dropped, though it still runs.
            _unpublish(client, "pod-a")
            _eventually(
                lambda: f"127.0.0.1:{first.port}" not in sender.peers(), 10, "dropping pod-a"
            )
            assert _peers_used(sender, by_peer, 6) == {f"127.0.0.1:{second.port}"}

            # With the name gone (NXDOMAIN) the last known receiver is kept, with a warning.
            _unpublish(client, "pod-b")
            _eventually(
                lambda: any("NXDOMAIN" in message for message in warnings.messages),
                10,
                "a warning about the missing name",
            )
            assert _peers_used(sender, by_peer, 3) == {f"127.0.0.1:{second.port}"}
        first.close(timeout=1)
        second.close(timeout=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pods_added_and_removed_in_dns(backend: str) -> None:
    run_isolated(_check_churn, backend, timeout=180)
