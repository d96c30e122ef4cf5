"""Bodies and pods of the wrong shape: HTTP 400 or a denial with the path at fault, never HTTP 500."""

from __future__ import annotations

import base64
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from webhookpods import admission_review, encode, env_of, user_container, vertex_pod

from numaflow_rdma import certs
from numaflow_rdma.names import ENV_DESTINATIONS, ENV_VERTEX, MULTUS_NETWORKS_ANNOTATION
from numaflow_rdma.webhook.app import create_app
from numaflow_rdma.webhook.injection import Settings
from numaflow_rdma.webhook.nad import fixed_resource_name
from numaflow_rdma.webhook.tls import CLIENT_IO_TIMEOUT, load_server_context


@pytest.fixture
def client() -> FlaskClient:
    app = create_app(
        Settings(network="infra/rdma-net").validate(),
        fixed_resource_name("rdma/hca_shared_devices_a"),
    )
    return app.test_client()


def post(client: FlaskClient, body: Any) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/mutate", data=data, content_type="application/json")


def patched(pod: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    import jsonpatch

    result: dict[str, Any] = jsonpatch.apply_patch(
        pod, json.loads(base64.b64decode(answer["patch"]))
    )
    return result


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("kind", "Pod", "request.kind is a string, expected an object"),
        ("operation", 1, "request.operation is a number, expected a string"),
        ("namespace", ["a"], "request.namespace is an array, expected a string"),
        ("dryRun", "yes", "request.dryRun is a string, expected a boolean"),
        ("object", "pod", "request.object is a string, expected an object"),
    ],
)
def test_request_field_of_wrong_type_gets_400(
    client: FlaskClient, field: str, value: Any, path: str
) -> None:
    review = admission_review(vertex_pod())
    review["request"][field] = value

    response = post(client, review)

    assert response.status_code == 400
    assert path in response.get_data(as_text=True)


def test_labels_of_wrong_type_get_400(client: FlaskClient) -> None:
    review = admission_review(vertex_pod())
    review["request"]["object"]["metadata"]["labels"] = ["app.kubernetes.io/part-of"]

    response = post(client, review)

    assert response.status_code == 400
    assert "request.object.metadata.labels is an array" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda pod: pod["spec"].update(containers={"numa": {}}), "spec.containers is an object"),
        (lambda pod: pod["spec"]["containers"].append("sidecar"), "spec.containers[1] is a string"),
        (
            lambda pod: pod["spec"]["initContainers"][1].update(env="x"),
            "spec.initContainers[1].env is a string",
        ),
        (
            lambda pod: pod["spec"]["initContainers"][1]["env"].append({"name": 7}),
            "spec.initContainers[1].env[1].name is a number",
        ),
        (
            lambda pod: pod["spec"]["initContainers"][1].update(resources=[]),
            "spec.initContainers[1].resources is an array",
        ),
        (
            lambda pod: pod["spec"]["initContainers"][1].update(
                securityContext={"runAsUser": True}
            ),
            "spec.initContainers[1].securityContext.runAsUser is a boolean",
        ),
        (lambda pod: pod["spec"].update(volumes={}), "spec.volumes is an object"),
    ],
)
def test_vertex_pod_of_wrong_shape_is_denied(client: FlaskClient, change: Any, path: str) -> None:
    pod = vertex_pod()
    change(pod)

    answer = post(client, admission_review(pod)).get_json()["response"]

    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert path in answer["status"]["message"]
    assert "patch" not in answer


def test_other_pod_of_wrong_shape_is_admitted_unchanged(client: FlaskClient) -> None:
    pod = vertex_pod()
    del pod["metadata"]["labels"]["app.kubernetes.io/component"]
    pod["spec"]["containers"] = "not a list"

    answer = post(client, admission_review(pod)).get_json()["response"]

    assert answer["allowed"] is True
    assert "patch" not in answer


@pytest.mark.parametrize("depth", [101, 1_000, 100_000])
def test_deeply_nested_body_gets_400(client: FlaskClient, depth: int) -> None:
    text = json.dumps(admission_review(vertex_pod()))
    body = text.replace('"spec": {', '"spec": {"x": ' + "[" * depth + "]" * depth + ", ", 1)

    response = post(client, body)

    assert response.status_code == 400
    assert "nests deeper than" in response.get_data(as_text=True)


def test_deeply_nested_network_annotation_is_denied(client: FlaskClient) -> None:
    pod = vertex_pod(annotations={MULTUS_NETWORKS_ANNOTATION: "[" * 5_000 + "]" * 5_000})

    answer = post(client, admission_review(pod)).get_json()["response"]

    assert answer["allowed"] is False
    assert "nests deeper than" in answer["status"]["message"]


@pytest.mark.parametrize(
    ("vertex_object", "reason"),
    [
        ({"spec": ["infer"]}, "spec is an array"),
        ({"spec": {"name": "infer", "toEdges": [{"to": 7}]}}, "toEdges[0].to is a number"),
        ({"spec": {"pipelineName": {"name": "video"}}}, "pipelineName is an object"),
        ({"spec": {"toEdges": [[]] * 2}}, "toEdges[1] is an array"),
    ],
)
def test_vertex_object_of_wrong_shape_only_warns(
    client: FlaskClient, vertex_object: Any, reason: str
) -> None:
    pod = vertex_pod(vertex_object_value=encode(vertex_object))

    answer = post(client, admission_review(pod)).get_json()["response"]

    assert answer["allowed"] is True
    assert any(reason in warning for warning in answer["warnings"]), answer["warnings"]
    assert ENV_DESTINATIONS not in env_of(user_container(patched(pod, answer), "udf"))


def test_vertex_object_nested_deeply_only_warns(client: FlaskClient) -> None:
    deep = base64.b64encode(("[" * 5_000 + "]" * 5_000).encode()).decode()
    pod = vertex_pod(vertex_object_value=deep)

    answer = post(client, admission_review(pod)).get_json()["response"]

    assert answer["allowed"] is True
    assert any("nests deeper than" in warning for warning in answer["warnings"])


def test_vertex_label_with_line_break(client: FlaskClient) -> None:
    pod = vertex_pod()
    pod["metadata"]["labels"]["numaflow.numaproj.io/vertex-name"] = "infer\n"

    answer = post(client, admission_review(pod)).get_json()["response"]

    env = env_of(user_container(patched(pod, answer), "udf"))
    assert ENV_VERTEX not in env
    assert any(ENV_VERTEX in warning for warning in answer["warnings"])


def test_destination_with_line_break(client: FlaskClient) -> None:
    pod = vertex_pod(to=("out\n",))

    answer = post(client, admission_review(pod)).get_json()["response"]

    assert ENV_DESTINATIONS not in env_of(user_container(patched(pod, answer), "udf"))


def test_server_context_times_out_stalled_reads(tmp_path: Path) -> None:
    ca = certs.make_ca("timeout test CA")
    pair = certs.issue_certificate(ca, "webhook", hosts=["127.0.0.1"], days=1)
    pair.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    context = load_server_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    server, peer = socket.socketpair()
    try:
        wrapped = context.wrap_socket(server, server_side=True, do_handshake_on_connect=False)
        assert wrapped.gettimeout() == CLIENT_IO_TIMEOUT
        # gunicorn sets blocking mode before it reads each request; the timeout stays.
        wrapped.setblocking(False)
        assert wrapped.gettimeout() == 0.0
        wrapped.setblocking(True)
        assert wrapped.gettimeout() == CLIENT_IO_TIMEOUT
        assert isinstance(wrapped, ssl.SSLSocket)
        wrapped.close()
    finally:
        peer.close()
