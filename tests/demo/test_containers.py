"""The UDF container's environment and downward-API files, built from a stored pod."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from numaflow_rdma import names
from numaflow_rdma.demo import containers
from numaflow_rdma.fixtures import load_pods
from numaflow_rdma.transport.environment import read_annotations

CAPACITY = containers.NodeCapacity(cpu=Decimal(16), memory=Decimal(64 * 2**30))


def infer_pod() -> dict[str, Any]:
    pod = copy.deepcopy(load_pods("video", "sidecar", namespace="team")[2])
    pod["metadata"]["annotations"]["note"] = 'say "hi"\nand\tbye \\ done'
    return pod


def container_with(env: list[dict[str, Any]], resources: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "udf", "env": env, "resources": resources or {}}


def test_user_container_found_in_sidecars() -> None:
    pod = infer_pod()

    container = containers.user_container(pod)

    assert container["name"] == "udf"
    assert container in pod["spec"]["initContainers"]


def test_user_container_missing_raises() -> None:
    pod = infer_pod()
    pod["spec"]["initContainers"] = [c for c in pod["spec"]["initContainers"] if c["name"] != "udf"]

    with pytest.raises(containers.ContainerConfigError, match="no user container"):
        containers.user_container(pod)


def test_field_refs_read_stored_pod() -> None:
    pod = infer_pod()
    container = containers.user_container(pod)

    environment = containers.container_environment(pod, container, CAPACITY)

    assert environment["NUMAFLOW_POD"] == pod["metadata"]["name"]
    assert environment["NUMAFLOW_NAMESPACE"] == "team"
    assert environment["NUMAFLOW_REPLICA"] == "0"
    assert environment["NUMAFLOW_VERTEX_NAME"] == "infer"


def test_values_expand_earlier_variables() -> None:
    env = [
        {"name": "A", "value": "one"},
        {"name": "B", "value": "$(A)-two-$(MISSING)-$$(A)"},
    ]

    environment = containers.container_environment(infer_pod(), container_with(env), CAPACITY)

    assert environment["B"] == "one-two-$(MISSING)-$(A)"


@pytest.mark.parametrize(
    ("reference", "resources", "expected"),
    [
        ({"resource": "limits.cpu", "divisor": "0"}, {"limits": {"cpu": "1500m"}}, "2"),
        ({"resource": "requests.cpu", "divisor": "1m"}, {"requests": {"cpu": "250m"}}, "250"),
        ({"resource": "limits.memory", "divisor": "1Mi"}, {"limits": {"memory": "1Gi"}}, "1024"),
        ({"resource": "limits.cpu"}, {}, "16"),
        ({"resource": "requests.memory"}, {"limits": {"memory": "2Ki"}}, "2048"),
        ({"resource": "requests.memory"}, {}, "0"),
    ],
)
def test_resource_refs_round_up(
    reference: dict[str, str], resources: dict[str, Any], expected: str
) -> None:
    env = [{"name": "VALUE", "valueFrom": {"resourceFieldRef": reference}}]

    environment = containers.container_environment(infer_pod(), container_with(env, resources), CAPACITY)

    assert environment["VALUE"] == expected


def test_missing_secret_raises() -> None:
    env = [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]

    with pytest.raises(containers.ContainerConfigError, match="secret team/creds not found"):
        containers.container_environment(infer_pod(), container_with(env), CAPACITY)


def test_optional_secret_skipped() -> None:
    env = [
        {
            "name": "S",
            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k", "optional": True}},
        }
    ]

    environment = containers.container_environment(infer_pod(), container_with(env), CAPACITY)

    assert "S" not in environment


def test_secret_value_decoded() -> None:
    env = [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]

    def read(kind: str, namespace: str, name: str) -> dict[str, Any]:
        assert (kind, namespace, name) == ("secrets", "team", "creds")
        return {"data": {"k": "c2VjcmV0"}}

    environment = containers.container_environment(
        infer_pod(), container_with(env), CAPACITY, read_object=read
    )

    assert environment["S"] == "secret"


def test_annotations_file_round_trips(tmp_path: Path) -> None:
    pod = infer_pod()
    pod["spec"]["volumes"].append(
        {
            "name": names.PODINFO_VOLUME,
            "downwardAPI": {
                "items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]
            },
        }
    )
    container = containers.user_container(pod)
    container["volumeMounts"] = [
        {"name": names.PODINFO_VOLUME, "mountPath": names.PODINFO_MOUNT_PATH, "readOnly": True}
    ]

    mounted = containers.write_downward_volumes(pod, container, tmp_path)
    remapped = containers.remap_mount_paths(
        {names.ENV_ANNOTATIONS_FILE: names.PODINFO_ANNOTATIONS_FILE, "OTHER": "/etc/other"},
        mounted,
    )

    annotations_file = Path(remapped[names.ENV_ANNOTATIONS_FILE])
    assert annotations_file == tmp_path / names.PODINFO_VOLUME / "annotations"
    assert remapped["OTHER"] == "/etc/other"
    assert read_annotations(annotations_file) == pod["metadata"]["annotations"]


def test_go_quote_escapes() -> None:
    assert containers.go_quote('a"b\\c\nd\x01') == '"a\\"b\\\\c\\nd\\x01"'
