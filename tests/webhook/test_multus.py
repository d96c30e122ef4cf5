"""Parsing and extending the Multus networks annotation in both of its forms."""

from __future__ import annotations

import json

import pytest

from numaflow_rdma.webhook.multus import (
    NetworkAnnotationError,
    NetworkRef,
    NetworkSelection,
    add_network,
    effective_interfaces,
    parse_network_ref,
    parse_networks,
    validate_interface,
)

RDMA = NetworkRef("infra", "rdma-net")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("  ", []),
        ("rdma-net", [NetworkSelection("rdma-net")]),
        (
            "infra/rdma-net@net2, storage",
            [NetworkSelection("rdma-net", "infra", "net2"), NetworkSelection("storage")],
        ),
        (
            '[{"name": "rdma-net", "interface": "net3"}]',
            [NetworkSelection("rdma-net", None, "net3")],
        ),
        (
            '[{"name": "a", "namespace": "ns", "interfaceRequest": "eth9", "ips": ["10.0.0.1"]}]',
            [NetworkSelection("a", "ns", "eth9")],
        ),
    ],
)
def test_parse_networks_both_forms(value: str | None, expected: list[NetworkSelection]) -> None:
    assert parse_networks(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Upper-Case",
        "a,,b",
        "a,",
        "ns/a/b",
        "a@",
        "a@has space",
        "a@sixteen-chars-xx",
        "a@with/slash",
        '[{"interface": "net1"}]',
        '{"name": "a"}',
        "[not json",
        '["a"]',
        '[{"name": "a", "namespace": 7}]',
    ],
)
def test_parse_networks_rejects_what_multus_rejects(value: str) -> None:
    with pytest.raises(NetworkAnnotationError):
        parse_networks(value)


def test_interface_names_follow_multus_rules() -> None:
    assert validate_interface("net_1") == "net_1"
    assert validate_interface("eth0.100") == "eth0.100"
    assert validate_interface("x" * 15) == "x" * 15
    with pytest.raises(NetworkAnnotationError):
        validate_interface("x" * 16)
    with pytest.raises(NetworkAnnotationError):
        validate_interface("")


def test_effective_interfaces_default_by_position() -> None:
    selections = parse_networks("a, b@ib0, c")
    assert effective_interfaces(selections) == ["net1", "ib0", "net3"]


def test_network_ref_default_namespace() -> None:
    assert parse_network_ref("rdma-net", "pipelines") == NetworkRef("pipelines", "rdma-net")
    assert parse_network_ref("infra/rdma-net", "pipelines") == RDMA
    assert str(RDMA) == "infra/rdma-net"
    with pytest.raises(NetworkAnnotationError):
        parse_network_ref("/rdma-net", "pipelines")


def test_add_network_to_empty_value() -> None:
    update = add_network(None, RDMA, "net1", "pipelines")
    assert update.value == "infra/rdma-net@net1"
    assert update.interface == "net1"
    assert update.changed


def test_add_network_keeps_comma_form_text() -> None:
    update = add_network("storage ,other/fast@fast0", RDMA, "net1", "pipelines")
    # "storage" takes net1 by position, so the RDMA network gets the next free name.
    assert update.value == "storage ,other/fast@fast0,infra/rdma-net@net3"
    assert update.interface == "net3"


def test_add_network_keeps_json_text() -> None:
    value = '[ {"name": "storage", "interface": "st0", "ips": ["10.1.0.5/24"]} ]\n'
    update = add_network(value, RDMA, "net1", "pipelines")
    assert update.value.startswith(
        '[ {"name": "storage", "interface": "st0", "ips": ["10.1.0.5/24"]}'
    )
    assert json.loads(update.value) == [
        {"name": "storage", "interface": "st0", "ips": ["10.1.0.5/24"]},
        {"name": "rdma-net", "namespace": "infra", "interface": "net1"},
    ]


def test_add_network_to_empty_json_list() -> None:
    update = add_network("[]", RDMA, "net1", "pipelines")
    assert json.loads(update.value) == [
        {"name": "rdma-net", "namespace": "infra", "interface": "net1"}
    ]


@pytest.mark.parametrize(
    ("value", "interface"),
    [
        ("infra/rdma-net@ib0", "ib0"),
        ("storage,infra/rdma-net", "net2"),
        ('[{"name": "rdma-net", "namespace": "infra"}]', "net1"),
    ],
)
def test_add_network_never_twice(value: str, interface: str) -> None:
    update = add_network(value, RDMA, "net1", "pipelines")
    assert update.value == value
    assert update.interface == interface
    assert not update.changed


def test_add_network_same_name_in_pod_namespace() -> None:
    # No namespace in the item means the pod's, so this is the same network.
    update = add_network("rdma-net", NetworkRef("pipelines", "rdma-net"), "net1", "pipelines")
    assert not update.changed
    other = add_network("rdma-net", RDMA, "net1", "pipelines")
    assert other.changed
