"""The simulated RDMA network: pod namespaces on a bridge reach each other and the host."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from numaflow_rdma.controlplane.network import SIMULATED_NETWORK, SimulatedNetwork, check_supported

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(check_supported() is not None, reason=str(check_supported())),
]


def ping(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, check=False, timeout=20).returncode


def test_pods_reach_each_other_and_gateway() -> None:
    with SimulatedNetwork() as network:
        first = network.add_pod("a")
        second = network.add_pod("b")
        assert first.address != second.address
        for pod in (first, second):
            assert ipaddress.ip_address(pod.address) in SIMULATED_NETWORK
        assert ping(first.command(["ping", "-c", "1", "-W", "2", second.address])) == 0
        assert ping(second.command(["ping", "-c", "1", "-W", "2", network.gateway])) == 0


def test_link_down_cuts_pod_off() -> None:
    with SimulatedNetwork() as network:
        first = network.add_pod("a")
        network.add_pod("b")
        network.set_link("b", up=False)
        assert ping(first.command(["ping", "-c", "1", "-W", "1", network.pods["b"].address])) != 0
        network.set_link("b", up=True)
        assert ping(first.command(["ping", "-c", "1", "-W", "2", network.pods["b"].address])) == 0


def test_close_removes_namespaces_and_bridge() -> None:
    network = SimulatedNetwork().open()
    pod = network.add_pod("a")
    network.close()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert pod.namespace not in namespaces
    links = subprocess.run(["ip", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert network.bridge not in links
