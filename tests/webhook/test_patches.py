"""The JSON Patch builders: missing parents, escaping, and nothing twice."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from numaflow_rdma.names import PODINFO_MOUNT_PATH, PODINFO_VOLUME
from numaflow_rdma.webhook import patches
from numaflow_rdma.webhook.vertex import ContainerRef


def ref(container: dict[str, Any], index: int = 0) -> ContainerRef:
    return ContainerRef("containers", index, container["name"], container)


def apply(doc: dict[str, Any], ops: list[patches.Operation]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(doc, ops)
    return result


def test_escape_token_rfc6901() -> None:
    assert patches.escape_token("k8s.v1.cni.cncf.io/networks") == "k8s.v1.cni.cncf.io~1networks"
    assert patches.escape_token("a~/b") == "a~0~1b"


def test_annotation_ops_create_missing_map() -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}}
    patched = apply(pod, patches.annotation_ops(pod, {"a/b": "1"}))
    assert patched["metadata"]["annotations"] == {"a/b": "1"}


def test_annotation_ops_create_missing_metadata() -> None:
    patched = apply({}, patches.annotation_ops({}, {"a": "1"}))
    assert patched == {"metadata": {"annotations": {"a": "1"}}}


def test_annotation_ops_keep_others() -> None:
    pod = {"metadata": {"annotations": {"keep": "x", "a~b/c": "old"}}}
    patched = apply(pod, patches.annotation_ops(pod, {"a~b/c": "new", "d": "2"}))
    assert patched["metadata"]["annotations"] == {"keep": "x", "a~b/c": "new", "d": "2"}
    assert patches.annotation_ops(patched, {"a~b/c": "new"}) == []


@pytest.mark.parametrize(
    "resources",
    [
        None,
        {},
        {"limits": {"cpu": "1"}},
        {"requests": {"memory": "1Gi"}},
        {"limits": {}, "requests": {}},
    ],
)
def test_resource_ops_any_starting_shape(resources: dict[str, Any] | None) -> None:
    container: dict[str, Any] = {"name": "udf"}
    if resources is not None:
        container["resources"] = resources
    pod = {"spec": {"containers": [container]}}
    patched = apply(pod, patches.resource_ops(ref(container), "rdma/hca", "1"))
    result = patched["spec"]["containers"][0]["resources"]
    assert result["limits"]["rdma/hca"] == "1"
    assert result["requests"]["rdma/hca"] == "1"
    for field, values in (resources or {}).items():
        for key, value in values.items():
            assert result[field][key] == value


def test_capability_ops_keep_others() -> None:
    container = {
        "name": "udf",
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
    }
    pod = {"spec": {"containers": [container]}}
    patched = apply(pod, patches.capability_ops(ref(container)))
    capabilities = patched["spec"]["containers"][0]["securityContext"]["capabilities"]
    assert capabilities == {"add": ["NET_ADMIN", "IPC_LOCK"], "drop": ["ALL"]}
    assert patches.capability_ops(ref(patched["spec"]["containers"][0])) == []


@pytest.mark.parametrize(
    "security",
    [None, {}, {"runAsUser": 0}, {"capabilities": {}}, {"capabilities": {"drop": ["NET_RAW"]}}],
)
def test_capability_ops_missing_parents(security: dict[str, Any] | None) -> None:
    container: dict[str, Any] = {"name": "udf"}
    if security is not None:
        container["securityContext"] = security
    pod = {"spec": {"containers": [container]}}
    patched = apply(pod, patches.capability_ops(ref(container)))
    assert patched["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] == [
        "IPC_LOCK"
    ]


def test_env_ops_user_value_wins() -> None:
    container = {
        "name": "udf",
        "env": [{"name": "A", "value": "mine"}, {"name": "B", "value": "same"}],
    }
    ops, overridden = patches.env_ops(ref(container), {"A": "ours", "B": "same", "C": "new"})
    assert overridden == ["A"]
    patched = apply({"spec": {"containers": [container]}}, ops)
    assert patched["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "mine"},
        {"name": "B", "value": "same"},
        {"name": "C", "value": "new"},
    ]


def test_env_ops_missing_list() -> None:
    container = {"name": "udf"}
    ops, _ = patches.env_ops(ref(container), {"C": "new"})
    patched = apply({"spec": {"containers": [container]}}, ops)
    assert patched["spec"]["containers"][0]["env"] == [{"name": "C", "value": "new"}]


def test_volume_ops_missing_list_and_reinvocation() -> None:
    pod: dict[str, Any] = {"spec": {"containers": []}}
    patched = apply(pod, patches.volume_ops(pod))
    assert [volume["name"] for volume in patched["spec"]["volumes"]] == [PODINFO_VOLUME]
    # The API server adds defaults; the volume is still recognized.
    patched["spec"]["volumes"][0]["downwardAPI"]["defaultMode"] = 420
    patched["spec"]["volumes"][0]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] = "v1"
    assert patches.volume_ops(patched) == []


def test_volume_ops_foreign_volume_conflicts() -> None:
    pod = {"spec": {"volumes": [{"name": PODINFO_VOLUME, "emptyDir": {}}]}}
    with pytest.raises(patches.PatchConflictError, match="rename that volume"):
        patches.volume_ops(pod)


def test_volume_mount_ops_read_only() -> None:
    container = {"name": "udf"}
    patched = apply({"spec": {"containers": [container]}}, patches.volume_mount_ops(ref(container)))
    mount = patched["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": PODINFO_VOLUME, "mountPath": PODINFO_MOUNT_PATH, "readOnly": True}
    assert patches.volume_mount_ops(ref(patched["spec"]["containers"][0])) == []


def test_volume_mount_ops_path_taken() -> None:
    container = {
        "name": "udf",
        "volumeMounts": [{"name": "other", "mountPath": PODINFO_MOUNT_PATH}],
    }
    with pytest.raises(patches.PatchConflictError, match="other"):
        patches.volume_mount_ops(ref(container))


def test_numaflow_annotation_guard() -> None:
    with pytest.raises(AssertionError):
        patches.check_numaflow_annotations_untouched(
            [
                {
                    "op": "replace",
                    "path": "/metadata/annotations/numaflow.numaproj.io~1hash",
                    "value": "x",
                }
            ]
        )
    patches.check_numaflow_annotations_untouched(
        [{"op": "add", "path": "/metadata/annotations/numaflow-rdma~1injected", "value": "x"}]
    )
