"""The webhook's policy over Numaflow's own pods and hand-made edge cases.

Every case applies the patch with jsonpatch and checks the patched pod.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webhookpods import env_of, user_container, vertex_pod

from numaflow_rdma.fixtures import LAYOUTS, load_other_pods, load_pods
from numaflow_rdma.names import (
    ENV_ANNOTATIONS_FILE,
    ENV_DESTINATIONS,
    ENV_INTERFACE,
    ENV_NETWORK,
    ENV_PORT,
    ENV_VERTEX,
    INJECTED_ANNOTATION,
    MULTUS_NETWORKS_ANNOTATION,
    PODINFO_ANNOTATIONS_FILE,
    PODINFO_MOUNT_PATH,
    PODINFO_VOLUME,
    USER_CONTAINER_NAMES,
    parse_destinations,
)
from numaflow_rdma.webhook.injection import (
    INJECTED,
    REJECTED,
    SKIPPED,
    UNCHANGED,
    Decision,
    Settings,
    decide,
)
from numaflow_rdma.webhook.multus import NetworkRef
from numaflow_rdma.webhook.nad import NetworkLookupError, NetworkNotFoundError, fixed_resource_name

RESOURCE = "rdma/hca_shared_devices_a"
SETTINGS = Settings(network="infra/rdma-net").validate()
RESOLVE = fixed_resource_name(RESOURCE)
ZONE = "vertexdomain.local"

# The downstream vertices of each generated pipeline, from hack/numaflow-pods/manifests/.
EDGES = {
    "sample": {"in": ["cat"], "cat": ["count", "log"], "count": ["out"], "out": [], "log": []},
    "video": {"decode": ["infer"], "infer": ["out"], "out": []},
}


def decide_and_apply(
    pod: dict[str, Any], namespace: str = "pipelines", resolve: Any = RESOLVE
) -> tuple[Decision, dict[str, Any]]:
    decision = decide(copy.deepcopy(pod), namespace, SETTINGS, resolve)
    patched: dict[str, Any] = (
        jsonpatch.apply_patch(pod, decision.patch) if decision.patch else copy.deepcopy(pod)
    )
    return decision, patched


def injected(pod: dict[str, Any], **kwargs: Any) -> tuple[Decision, dict[str, Any]]:
    decision, patched = decide_and_apply(pod, **kwargs)
    assert decision.outcome == INJECTED, decision.message
    return decision, patched


def user_containers_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        container
        for list_name in ("initContainers", "containers")
        for container in pod["spec"].get(list_name) or []
        if container["name"] in USER_CONTAINER_NAMES
    ]


def numaflow_annotations(pod: dict[str, Any]) -> dict[str, str]:
    annotations = pod["metadata"].get("annotations") or {}
    return {
        key: value for key, value in annotations.items() if key.startswith("numaflow.numaproj.io/")
    }


def fixture_cases() -> list[Any]:
    return [
        pytest.param(
            pipeline,
            layout,
            index,
            id=f"{pipeline}-{layout}-{pod['metadata']['name'].rsplit('-', 1)[0]}",
        )
        for pipeline in EDGES
        for layout in LAYOUTS
        for index, pod in enumerate(load_pods(pipeline, layout))
    ]


@pytest.mark.parametrize(("pipeline", "layout", "index"), fixture_cases())
def test_generated_vertex_pod_injected(pipeline: str, layout: str, index: int) -> None:
    pod = load_pods(pipeline, layout)[index]
    vertex = pod["metadata"]["labels"]["numaflow.numaproj.io/vertex-name"]
    decision, patched = decide_and_apply(pod)
    users = user_containers_of(patched)
    if not users:
        assert decision.outcome == SKIPPED
        assert decision.patch == []
        return
    assert decision.outcome == INJECTED, decision.message
    assert decision.warnings == []

    # The network, the record, and Numaflow's annotations untouched.
    annotations = patched["metadata"]["annotations"]
    assert annotations[MULTUS_NETWORKS_ANNOTATION] == "infra/rdma-net@net1"
    record = json.loads(annotations[INJECTED_ANNOTATION])
    assert record["network"] == "infra/rdma-net"
    assert record["resource"] == RESOURCE
    assert numaflow_annotations(patched) == numaflow_annotations(pod)

    # The environment and the annotations file in every user container.
    expected_destinations = {
        target: f"{target}.{pipeline}.pipelines.{ZONE}" for target in EDGES[pipeline][vertex]
    }
    for container in users:
        env = env_of(container)
        assert env[ENV_VERTEX] == f"{vertex}.{pipeline}.pipelines.{ZONE}"
        assert parse_destinations(env[ENV_DESTINATIONS]) == expected_destinations
        assert env[ENV_NETWORK] == "infra/rdma-net"
        assert env[ENV_INTERFACE] == "net1"
        assert env[ENV_PORT] == "7470"
        assert env[ENV_ANNOTATIONS_FILE] == PODINFO_ANNOTATIONS_FILE
        assert env["NUMAFLOW_UD_CONTAINER_TYPE"] == container["name"]
        assert {
            "name": PODINFO_VOLUME,
            "mountPath": PODINFO_MOUNT_PATH,
            "readOnly": True,
        } in container["volumeMounts"]
    assert PODINFO_VOLUME in [volume["name"] for volume in patched["spec"]["volumes"]]

    # The device and IPC_LOCK in the default container only.
    default_name = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
    for container in users:
        resources = container.get("resources") or {}
        has_device = RESOURCE in (resources.get("limits") or {})
        capabilities = ((container.get("securityContext") or {}).get("capabilities") or {}).get(
            "add"
        ) or []
        assert has_device == (container["name"] == default_name)
        assert ("IPC_LOCK" in capabilities) == (container["name"] == default_name)
        if has_device:
            assert resources["requests"][RESOURCE] == "1"
            assert resources["limits"][RESOURCE] == "1"

    # Nothing outside the user containers changed.
    for list_name in ("initContainers", "containers"):
        for before, after in zip(
            pod["spec"].get(list_name) or [], patched["spec"].get(list_name) or [], strict=True
        ):
            if before["name"] not in USER_CONTAINER_NAMES:
                assert before == after

    # Reinvocation on the patched pod adds nothing.
    again = decide(patched, "pipelines", SETTINGS, RESOLVE)
    assert again.outcome == UNCHANGED
    assert again.patch == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_other_pods_skipped(layout: str) -> None:
    pods = load_other_pods(layout)
    components = {pod["metadata"]["labels"]["app.kubernetes.io/component"] for pod in pods}
    assert {
        "daemon",
        "side-inputs-manager",
        "job",
        "mono-vertex",
        "mono-vertex-daemon",
    } <= components
    for pod in pods:
        decision = decide(pod, "pipelines", SETTINGS, RESOLVE)
        assert decision.outcome == SKIPPED, pod["metadata"]["name"]
        assert decision.patch == []


def test_existing_networks_comma_form_kept() -> None:
    pod = vertex_pod(annotations={MULTUS_NETWORKS_ANNOTATION: "storage, infra/fast@fast0"})
    _, patched = injected(pod)
    assert patched["metadata"]["annotations"][MULTUS_NETWORKS_ANNOTATION] == (
        "storage, infra/fast@fast0,infra/rdma-net@net3"
    )
    assert env_of(user_container(patched, "udf"))[ENV_INTERFACE] == "net3"


def test_existing_networks_json_form_kept() -> None:
    value = '[{"name": "storage", "ips": ["10.1.0.5/24"]}]'
    _, patched = injected(vertex_pod(annotations={MULTUS_NETWORKS_ANNOTATION: value}))
    assert json.loads(patched["metadata"]["annotations"][MULTUS_NETWORKS_ANNOTATION]) == [
        {"name": "storage", "ips": ["10.1.0.5/24"]},
        {"name": "rdma-net", "namespace": "infra", "interface": "net2"},
    ]


def test_existing_rdma_network_not_added_twice() -> None:
    pod = vertex_pod(
        annotations={
            MULTUS_NETWORKS_ANNOTATION: '[{"name":"rdma-net","namespace":"infra","interface":"ib0"}]'
        }
    )
    decision, patched = injected(pod)
    assert (
        patched["metadata"]["annotations"][MULTUS_NETWORKS_ANNOTATION]
        == pod["metadata"]["annotations"][MULTUS_NETWORKS_ANNOTATION]
    )
    assert env_of(user_container(patched, "udf"))[ENV_INTERFACE] == "ib0"
    assert not any(op["path"].endswith("networks") for op in decision.patch)


def test_invalid_networks_annotation_rejected() -> None:
    decision, _ = decide_and_apply(
        vertex_pod(annotations={MULTUS_NETWORKS_ANNOTATION: "a@this-is-far-too-long"})
    )
    assert decision.outcome == REJECTED
    assert decision.code == 400
    assert MULTUS_NETWORKS_ANNOTATION in decision.message
    assert "at most 15" in decision.message


def test_missing_annotations_map_created() -> None:
    pod = vertex_pod()
    del pod["metadata"]["annotations"]
    _, patched = injected(pod)
    assert set(patched["metadata"]["annotations"]) == {
        MULTUS_NETWORKS_ANNOTATION,
        INJECTED_ANNOTATION,
    }


def test_user_resource_kept_with_warning() -> None:
    pod = vertex_pod()
    pod["spec"]["initContainers"][1]["resources"] = {
        "limits": {RESOURCE: "2"},
        "requests": {RESOURCE: "2"},
    }
    decision, patched = injected(pod)
    resources = user_container(patched, "udf")["resources"]
    assert resources == {"limits": {RESOURCE: "2"}, "requests": {RESOURCE: "2"}}
    assert any(RESOURCE in warning and "kept" in warning for warning in decision.warnings)


def test_resource_of_other_container_not_doubled() -> None:
    pod = vertex_pod(user_containers=("udsource", "transformer"))
    pod["spec"]["initContainers"][2]["resources"] = {
        "limits": {RESOURCE: "1"},
        "requests": {RESOURCE: "1"},
    }
    decision, patched = injected(pod)
    assert RESOURCE not in (user_container(patched, "udsource")["resources"].get("limits") or {})
    assert any("'transformer' already requests" in warning for warning in decision.warnings)


def test_user_env_kept_with_warning() -> None:
    pod = vertex_pod()
    pod["spec"]["initContainers"][1]["env"].append({"name": ENV_PORT, "value": "9000"})
    decision, patched = injected(pod)
    env = env_of(user_container(patched, "udf"))
    assert env[ENV_PORT] == "9000"
    assert env[ENV_NETWORK] == "infra/rdma-net"
    assert [
        name
        for name in (item["name"] for item in user_container(patched, "udf")["env"])
        if name == ENV_PORT
    ] == [ENV_PORT]
    assert any(ENV_PORT in warning for warning in decision.warnings)


def test_env_in_every_user_container() -> None:
    pod = vertex_pod(user_containers=("udsource", "transformer"), sidecar=False)
    _, patched = injected(pod)
    for name in ("udsource", "transformer"):
        assert env_of(user_container(patched, name))[ENV_VERTEX] == f"infer.video.pipelines.{ZONE}"
    assert RESOURCE in user_container(patched, "udsource")["resources"]["limits"]
    assert "resources" not in user_container(patched, "transformer") or RESOURCE not in (
        user_container(patched, "transformer")["resources"].get("limits") or {}
    )


def test_no_user_container_skipped() -> None:
    decision, patched = decide_and_apply(vertex_pod(user_containers=()))
    assert decision.outcome == SKIPPED
    assert "no user container" in decision.message
    assert patched == vertex_pod(user_containers=())


def test_undecodable_vertex_object_still_gets_network() -> None:
    decision, patched = injected(vertex_pod(vertex_object_value="%%%"))
    env = env_of(user_container(patched, "udf"))
    assert ENV_DESTINATIONS not in env
    assert env[ENV_VERTEX] == f"infer.video.pipelines.{ZONE}"
    assert RESOURCE in user_container(patched, "udf")["resources"]["limits"]
    assert MULTUS_NETWORKS_ANNOTATION in patched["metadata"]["annotations"]
    assert any("destinations could not be derived" in warning for warning in decision.warnings)
    assert decide(patched, "pipelines", SETTINGS, RESOLVE).patch == []


def test_sink_gets_empty_destinations() -> None:
    _, patched = injected(vertex_pod(vertex="out", to=(), user_containers=("udsink",)))
    assert env_of(user_container(patched, "udsink"))[ENV_DESTINATIONS] == ""


def test_opted_out_pod_skipped() -> None:
    decision, _ = decide_and_apply(vertex_pod(annotations={"numaflow-rdma/inject": "False"}))
    assert decision.outcome == SKIPPED


def test_request_namespace_used() -> None:
    pod = vertex_pod()
    del pod["metadata"]["namespace"]
    _, patched = injected(pod, namespace="other")
    assert env_of(user_container(patched, "udf"))[ENV_VERTEX] == f"infer.video.other.{ZONE}"


def test_non_root_container_warned() -> None:
    pod = vertex_pod()
    pod["spec"]["securityContext"] = {"runAsUser": 1000}
    decision, _ = injected(pod)
    assert any(
        "non-root" in warning and "runAsUser 1000" in warning for warning in decision.warnings
    )
    pod["spec"]["initContainers"][1]["securityContext"] = {"runAsUser": 0}
    decision, _ = injected(pod)
    assert not any("non-root" in warning for warning in decision.warnings)


def test_missing_nad_rejected() -> None:
    def missing(network: NetworkRef) -> str | None:
        raise NetworkNotFoundError(f"NetworkAttachmentDefinition {network} not found")

    decision, _ = decide_and_apply(vertex_pod(), resolve=missing)
    assert decision.outcome == REJECTED
    assert "infra/rdma-net not found" in decision.message


def test_failed_nad_lookup_rejected_503() -> None:
    def failing(network: NetworkRef) -> str | None:
        raise NetworkLookupError("reading failed: HTTP 500")

    decision, _ = decide_and_apply(vertex_pod(), resolve=failing)
    assert decision.outcome == REJECTED
    assert decision.code == 503


def test_nad_without_resource_name_warned() -> None:
    decision, patched = injected(vertex_pod(), resolve=lambda network: None)
    assert "resources" not in user_container(patched, "udf") or RESOURCE not in user_container(
        patched, "udf"
    )["resources"].get("limits", {})
    assert any("no RDMA device is requested" in warning for warning in decision.warnings)


@settings(max_examples=60, deadline=None)
@given(
    sidecar=st.booleans(),
    containers=st.lists(st.sampled_from(USER_CONTAINER_NAMES), min_size=1, max_size=3, unique=True),
    preset_env=st.dictionaries(
        st.sampled_from([ENV_PORT, ENV_VERTEX, ENV_INTERFACE, "OTHER"]),
        st.text(max_size=5),
        max_size=3,
    ),
    networks=st.sampled_from([None, "", "storage", "a,b@net1", '[{"name":"x"}]', "infra/rdma-net"]),
    drop_annotations=st.booleans(),
    drop_volumes=st.booleans(),
)
def test_patch_applies_and_is_idempotent(
    sidecar: bool,
    containers: list[str],
    preset_env: dict[str, str],
    networks: str | None,
    drop_annotations: bool,
    drop_volumes: bool,
) -> None:
    pod = vertex_pod(user_containers=tuple(containers), sidecar=sidecar)
    first = user_container(pod, containers[0])
    target_list = pod["spec"]["initContainers"] if sidecar else pod["spec"]["containers"]
    index = next(i for i, c in enumerate(target_list) if c["name"] == first["name"])
    target_list[index]["env"] += [
        {"name": name, "value": value} for name, value in preset_env.items()
    ]
    if networks is not None:
        pod["metadata"]["annotations"][MULTUS_NETWORKS_ANNOTATION] = networks
    if drop_annotations:
        del pod["metadata"]["annotations"]
    if drop_volumes:
        del pod["spec"]["volumes"]

    _, patched = injected(pod)
    again = decide(patched, "pipelines", SETTINGS, RESOLVE)
    assert again.outcome == UNCHANGED
    assert again.patch == []
    for container in user_containers_of(patched):
        names = [item["name"] for item in container["env"]]
        assert len(names) == len(set(names))
