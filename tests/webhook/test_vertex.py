"""Finding the user containers and the downstream vertices of a vertex pod."""

from __future__ import annotations

import pytest
from webhookpods import encode, vertex_pod

from numaflow_rdma.webhook.vertex import (
    VertexObjectError,
    decode_vertex_object,
    device_container,
    downstream_vertices,
    user_containers,
    vertex_identity,
)


def test_user_containers_in_both_lists() -> None:
    sidecar = user_containers(vertex_pod(user_containers=("udsource", "transformer")))
    assert [(ref.list_name, ref.name, ref.path) for ref in sidecar] == [
        ("initContainers", "udsource", "/spec/initContainers/1"),
        ("initContainers", "transformer", "/spec/initContainers/2"),
    ]
    legacy = user_containers(vertex_pod(sidecar=False))
    assert [(ref.list_name, ref.path) for ref in legacy] == [("containers", "/spec/containers/1")]


def test_device_container_follows_default_container() -> None:
    pod = vertex_pod(
        user_containers=("udsource", "transformer"),
        annotations={"kubectl.kubernetes.io/default-container": "transformer"},
    )
    chosen = device_container(pod, user_containers(pod))
    assert chosen is not None
    assert chosen.name == "transformer"


def test_device_container_without_annotation() -> None:
    pod = vertex_pod(user_containers=("transformer", "udsource"))
    del pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
    chosen = device_container(pod, user_containers(pod))
    assert chosen is not None
    assert chosen.name == "udsource"


def test_device_container_none_without_user_container() -> None:
    pod = vertex_pod(user_containers=())
    assert device_container(pod, user_containers(pod)) is None


def test_downstream_vertices_from_vertex_object() -> None:
    pod = vertex_pod(to=("out", "audit", "out"))
    assert downstream_vertices(decode_vertex_object(pod)) == ["out", "audit"]


def test_downstream_vertices_of_sink_empty() -> None:
    assert downstream_vertices(decode_vertex_object(vertex_pod(to=()))) == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64!", "not base64-encoded JSON"),
        (encode("a string"), "contains str"),
        ("", "no literal value"),
    ],
)
def test_decode_vertex_object_errors(value: str, reason: str) -> None:
    with pytest.raises(VertexObjectError, match=reason):
        decode_vertex_object(vertex_pod(vertex_object_value=value))


def test_decode_vertex_object_without_variable() -> None:
    pod = vertex_pod()
    pod["spec"]["containers"][0]["env"] = []
    with pytest.raises(VertexObjectError, match="no NUMAFLOW_VERTEX_OBJECT"):
        decode_vertex_object(pod)


def test_downstream_vertices_bad_edges() -> None:
    with pytest.raises(VertexObjectError, match="toEdges"):
        downstream_vertices({"spec": {"toEdges": {"to": "x"}}})
    with pytest.raises(VertexObjectError, match=r"toEdges\[0\]"):
        downstream_vertices({"spec": {"toEdges": [{"from": "a"}]}})


def test_vertex_identity_falls_back_to_object() -> None:
    pod = vertex_pod()
    del pod["metadata"]["labels"]["numaflow.numaproj.io/vertex-name"]
    identity = vertex_identity(pod, decode_vertex_object(pod))
    assert identity.pipeline == "video"
    assert identity.vertex == "infer"
