"""The generated Numaflow pods: what the vertex controller builds, in both layouts."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from numaflow_rdma.fixtures import LAYOUTS, load_fixture, load_pods
from numaflow_rdma.names import USER_CONTAINER_NAMES, is_vertex_pod_labels
from numaflow_rdma.webhook.vertex import decode_vertex_object, downstream_vertices


def test_video_pipeline_replicas() -> None:
    pods = load_pods("video")
    vertices = Counter(
        pod["metadata"]["labels"]["numaflow.numaproj.io/vertex-name"] for pod in pods
    )
    assert vertices == {"decode": 2, "infer": 3, "out": 1}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pipeline", ["sample", "video"])
def test_pods_shaped_by_vertex_controller(pipeline: str, layout: str) -> None:
    fixture = load_fixture(pipeline, layout)
    assert fixture["numaflowVersion"].startswith("v1.")
    for pod in fixture["pods"]:
        metadata = pod["metadata"]
        vertex = metadata["labels"]["numaflow.numaproj.io/vertex-name"]
        replica = metadata["annotations"]["numaflow.numaproj.io/replica"]
        assert re.fullmatch(rf"{pipeline}-{vertex}-{replica}-[a-z0-9]{{5}}", metadata["name"])
        assert is_vertex_pod_labels(metadata["labels"])
        assert metadata["ownerReferences"][0]["kind"] == "Vertex"
        assert metadata["ownerReferences"][0]["uid"]
        assert decode_vertex_object(pod)["spec"]["name"] == vertex


@pytest.mark.parametrize("layout", LAYOUTS)
def test_user_containers_follow_layout(layout: str) -> None:
    for pod in load_pods("sample", layout):
        init_users = [
            c for c in pod["spec"].get("initContainers") or [] if c["name"] in USER_CONTAINER_NAMES
        ]
        main_users = [c for c in pod["spec"]["containers"] if c["name"] in USER_CONTAINER_NAMES]
        if layout == "sidecar":
            assert main_users == []
            assert all(container.get("restartPolicy") == "Always" for container in init_users)
        else:
            assert init_users == []


def test_sample_edges_in_vertex_objects() -> None:
    edges = {
        pod["metadata"]["labels"]["numaflow.numaproj.io/vertex-name"]: downstream_vertices(
            decode_vertex_object(pod)
        )
        for pod in load_pods("sample")
    }
    assert edges == {"in": ["cat"], "cat": ["count", "log"], "count": ["out"], "out": [], "log": []}


def test_namespace_override() -> None:
    assert {pod["metadata"]["namespace"] for pod in load_pods("video", namespace="demo")} == {
        "demo"
    }


def test_unknown_names_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pipeline"):
        load_pods("nope")
    with pytest.raises(ValueError, match="unknown layout"):
        load_pods("video", "old")
