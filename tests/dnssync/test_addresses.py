"""Address extraction from Multus network-status annotations."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from numaflow_rdma import names
from numaflow_rdma.dnssync.addresses import (
    NetworkNotAttachedError,
    NetworkSelector,
    NetworkStatusError,
    rdma_address,
)

# The shape Multus v4 writes: the cluster network first, marked default, then
# each attachment named <namespace>/<NetworkAttachmentDefinition>.
DEFAULT_ENTRY = {"name": "k8s-pod-network", "ips": ["10.244.1.7"], "default": True, "dns": {}}
RDMA_ENTRY = {
    "name": "rdma/rdma-net",
    "interface": "net1",
    "ips": ["198.18.0.7"],
    "mac": "7a:bb:87:d9:b4:94",
    "dns": {},
    "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:00.3"}},
    "gateway": ["\u003cnil\u003e"],
}
BY_NETWORK = NetworkSelector(network="rdma/rdma-net", interface="net1")
BY_INTERFACE = NetworkSelector(network="", interface="net1")


def status(*entries: Any) -> dict[str, str]:
    return {names.MULTUS_NETWORK_STATUS_ANNOTATION: json.dumps(list(entries))}


def test_address_by_network_name() -> None:
    assert rdma_address(
        status(DEFAULT_ENTRY, RDMA_ENTRY), "team", BY_NETWORK
    ) == ipaddress.ip_address("198.18.0.7")


def test_address_by_interface_name() -> None:
    assert rdma_address(
        status(DEFAULT_ENTRY, RDMA_ENTRY), "team", BY_INTERFACE
    ) == ipaddress.ip_address("198.18.0.7")


def test_bare_network_name_uses_pod_namespace() -> None:
    entry = {**RDMA_ENTRY, "name": "team/rdma-net"}
    selector = NetworkSelector(network="rdma-net")

    assert str(rdma_address(status(DEFAULT_ENTRY, entry), "team", selector)) == "198.18.0.7"
    with pytest.raises(NetworkNotAttachedError):
        rdma_address(status(DEFAULT_ENTRY, entry), "other", selector)


def test_annotation_missing_means_no_address_yet() -> None:
    assert rdma_address({}, "team", BY_NETWORK) is None
    assert rdma_address(None, "team", BY_NETWORK) is None


def test_legacy_annotation_is_read() -> None:
    annotations = {
        names.MULTUS_LEGACY_NETWORK_STATUS_ANNOTATION: json.dumps([DEFAULT_ENTRY, RDMA_ENTRY])
    }

    assert str(rdma_address(annotations, "team", BY_NETWORK)) == "198.18.0.7"


def test_current_annotation_wins_over_legacy() -> None:
    legacy = {**RDMA_ENTRY, "ips": ["198.18.0.99"]}
    annotations = {
        **status(DEFAULT_ENTRY, RDMA_ENTRY),
        names.MULTUS_LEGACY_NETWORK_STATUS_ANNOTATION: json.dumps([legacy]),
    }

    assert str(rdma_address(annotations, "team", BY_NETWORK)) == "198.18.0.7"


def test_default_network_is_never_used() -> None:
    # Even when the default entry has the configured interface name.
    default_on_net1 = {**DEFAULT_ENTRY, "interface": "net1"}

    with pytest.raises(NetworkNotAttachedError):
        rdma_address(status(default_on_net1), "team", BY_INTERFACE)


def test_ipv6_address_for_aaaa() -> None:
    entry = {**RDMA_ENTRY, "ips": ["fd00:198:18::7"]}

    address = rdma_address(status(DEFAULT_ENTRY, entry), "team", BY_NETWORK)

    assert address == ipaddress.ip_address("fd00:198:18::7")
    assert address is not None and address.version == 6


def test_cidr_notation_is_accepted() -> None:
    entry = {**RDMA_ENTRY, "ips": ["198.18.0.7/15"]}

    assert str(rdma_address(status(entry), "team", BY_NETWORK)) == "198.18.0.7"


def test_first_address_of_dual_stack() -> None:
    entry = {**RDMA_ENTRY, "ips": ["2001:db8::7", "198.18.0.7"]}

    assert str(rdma_address(status(entry), "team", BY_NETWORK)) == "2001:db8::7"


def test_same_network_twice_picks_interface() -> None:
    first = {**RDMA_ENTRY, "interface": "net1", "ips": ["198.18.0.7"]}
    second = {**RDMA_ENTRY, "interface": "net2", "ips": ["198.18.1.7"]}
    selector = NetworkSelector(network="rdma/rdma-net", interface="net2")

    assert str(rdma_address(status(first, second), "team", selector)) == "198.18.1.7"


def test_other_network_only_is_not_attached() -> None:
    other = {**RDMA_ENTRY, "name": "rdma/other-net", "interface": "net2"}

    with pytest.raises(NetworkNotAttachedError, match="rdma/rdma-net"):
        rdma_address(status(DEFAULT_ENTRY, other), "team", BY_NETWORK)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "invalid JSON"),
        ("", "invalid JSON"),
        ('{"name": "rdma/rdma-net"}', "expected a JSON list"),
        ('"rdma/rdma-net"', "expected a JSON list"),
        ("[1, 2]", "expected an object"),
        ('[{"interface": "net1"}]', "has no 'name'"),
        ('[{"name": 7}]', "expected a str"),
        ('[{"name": "rdma/rdma-net", "interface": ["net1"]}]', "expected a str"),
        ('[{"name": "rdma/rdma-net", "default": "no"}]', "expected a bool"),
        ("[" * 100_000 + "]" * 100_000, "nests deeper than"),
        ('[{"name": "rdma/rdma-net", "x": ' + "[" * 200 + "]" * 200 + "}]", "nests deeper than"),
        ('[{"name": "rdma/rdma-net", "ips": [NaN]}]', "NaN is not a JSON value"),
    ],
)
def test_malformed_annotation_is_rejected(raw: str, message: str) -> None:
    annotations = {names.MULTUS_NETWORK_STATUS_ANNOTATION: raw}

    with pytest.raises(NetworkStatusError, match=message):
        rdma_address(annotations, "team", BY_NETWORK)


@pytest.mark.parametrize(
    ("ips", "message"),
    [
        (None, "has no IPs"),
        ([], "has no IPs"),
        ("198.18.0.7", "expected a list"),
        ([7], "expected a string"),
        (["198.18.0.300"], "invalid IP"),
        (["not-an-ip"], "invalid IP"),
    ],
)
def test_bad_ips_are_rejected(ips: Any, message: str) -> None:
    entry = {key: value for key, value in RDMA_ENTRY.items() if key != "ips"}
    if ips is not None:
        entry["ips"] = ips

    with pytest.raises(NetworkStatusError, match=message):
        rdma_address(status(DEFAULT_ENTRY, entry), "team", BY_NETWORK)


def test_problem_reasons_differ() -> None:
    assert NetworkStatusError.reason == "InvalidNetworkStatus"
    assert NetworkNotAttachedError.reason == "RdmaNetworkMissing"
