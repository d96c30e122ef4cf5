"""The Flask application: AdmissionReview in and out, bad input, probes and metrics."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import jsonpatch
import pytest
from flask.testing import FlaskClient
from webhookpods import admission_review, env_of, user_container, vertex_pod

from numaflow_rdma.names import ENV_VERTEX, MULTUS_NETWORKS_ANNOTATION
from numaflow_rdma.webhook.app import MAX_REQUEST_BYTES, create_app
from numaflow_rdma.webhook.injection import Settings
from numaflow_rdma.webhook.nad import fixed_resource_name

UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def make_client(ready: bool = True) -> FlaskClient:
    app = create_app(
        Settings(network="infra/rdma-net").validate(),
        fixed_resource_name("rdma/hca_shared_devices_a"),
        is_ready=lambda: ready,
    )
    return app.test_client()


@pytest.fixture
def client() -> FlaskClient:
    return make_client()


def post(client: FlaskClient, body: Any) -> Any:
    return client.post("/mutate", data=json.dumps(body), content_type="application/json")


def test_mutate_returns_applicable_patch(client: FlaskClient) -> None:
    pod = vertex_pod()
    response = post(client, admission_review(pod))
    assert response.status_code == 200
    review = response.get_json()
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    answer = review["response"]
    assert answer["uid"] == UID
    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(answer["patch"])))
    assert patched["metadata"]["annotations"][MULTUS_NETWORKS_ANNOTATION] == "infra/rdma-net@net1"
    assert (
        env_of(user_container(patched, "udf"))[ENV_VERTEX]
        == "infer.video.pipelines.vertexdomain.local"
    )


def test_mutate_logs_decision_once(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="numaflow_rdma.webhook.app"):
        post(client, admission_review(vertex_pod()))
    records = [record for record in caplog.records if record.name == "numaflow_rdma.webhook.app"]
    assert len(records) == 1
    fields = vars(records[0])
    assert fields["namespace"] == "pipelines"
    assert fields["pod"] == "video-infer-0-abcde"
    assert fields["vertex"] == "infer"
    assert fields["pipeline"] == "video"
    assert fields["uid"] == UID


@pytest.mark.parametrize(
    ("operation", "kind"),
    [("UPDATE", "Pod"), ("DELETE", "Pod"), ("CONNECT", "Pod"), ("CREATE", "Deployment")],
)
def test_other_requests_allowed_unchanged(client: FlaskClient, operation: str, kind: str) -> None:
    answer = post(
        client, admission_review(vertex_pod(), operation=operation, kind=kind)
    ).get_json()["response"]
    assert answer == {"uid": UID, "allowed": True}


def test_rejection_carries_message(client: FlaskClient) -> None:
    pod = vertex_pod(annotations={MULTUS_NETWORKS_ANNOTATION: "Bad_Name"})
    answer = post(client, admission_review(pod)).get_json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert "Bad_Name" in answer["status"]["message"]
    assert "patch" not in answer


def test_warnings_returned(client: FlaskClient) -> None:
    pod = vertex_pod(vertex_object_value="%%%")
    answer = post(client, admission_review(pod)).get_json()["response"]
    assert answer["allowed"] is True
    assert any("destinations could not be derived" in warning for warning in answer["warnings"])
    assert all(len(warning) <= 256 for warning in answer["warnings"])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{}", "text/plain", "expected Content-Type application/json"),
        ("{not json", "application/json", "not valid JSON"),
        (
            '{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}',
            "application/json",
            "expected apiVersion",
        ),
        (
            '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "application/json",
            "no request",
        ),
        (
            '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}',
            "application/json",
            "no uid",
        ),
        ("[]", "application/json", "not a JSON object"),
    ],
)
def test_bad_body_gets_400(client: FlaskClient, body: str, content_type: str, message: str) -> None:
    response = client.post("/mutate", data=body, content_type=content_type)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_too_large_body_gets_400(client: FlaskClient) -> None:
    response = client.post(
        "/mutate", data=b" " * (MAX_REQUEST_BYTES + 1), content_type="application/json"
    )
    assert response.status_code == 400
    assert "at most" in response.get_data(as_text=True)


def test_probes() -> None:
    assert make_client().get("/healthz").status_code == 200
    assert make_client().get("/readyz").status_code == 200
    not_ready = make_client(ready=False).get("/readyz")
    assert not_ready.status_code == 503
    assert "certificate" in not_ready.get_data(as_text=True)


def test_metrics_count_results(client: FlaskClient) -> None:
    def count(text: str, result: str) -> float:
        prefix = f'numaflow_rdma_webhook_admissions_total{{result="{result}"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = client.get("/metrics").get_data(as_text=True)
    post(client, admission_review(vertex_pod()))
    client.post("/mutate", data="{", content_type="application/json")
    after = client.get("/metrics").get_data(as_text=True)
    assert count(after, "injected") == count(before, "injected") + 1
    assert count(after, "invalid") == count(before, "invalid") + 1
    assert "numaflow_rdma_webhook_admission_duration_seconds_bucket" in after
