"""The MutatingWebhookConfiguration object."""

from __future__ import annotations

import pytest

from numaflow_rdma.names import INJECT_LABEL, VERTEX_POD_LABELS
from numaflow_rdma.webhook.configuration import WEBHOOK_NAME, webhook_configuration


def test_configuration_fields() -> None:
    configuration = webhook_configuration("numaflow-rdma", "Q0E=", url="https://127.0.0.1:8443/")
    assert configuration["kind"] == "MutatingWebhookConfiguration"
    webhook = configuration["webhooks"][0]
    assert webhook["name"] == WEBHOOK_NAME
    assert webhook["clientConfig"] == {"caBundle": "Q0E=", "url": "https://127.0.0.1:8443/mutate"}
    assert webhook["rules"][0]["operations"] == ["CREATE"]
    assert webhook["rules"][0]["resources"] == ["pods"]
    assert webhook["namespaceSelector"] == {"matchLabels": {INJECT_LABEL: "enabled"}}
    assert webhook["objectSelector"] == {"matchLabels": dict(VERTEX_POD_LABELS)}
    assert webhook["matchConditions"][0]["name"] == "not-opted-out"
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["timeoutSeconds"] == 10


def test_configuration_service() -> None:
    configuration = webhook_configuration("x", "Q0E=", service=("numaflow-rdma", "webhook", 443))
    assert configuration["webhooks"][0]["clientConfig"]["service"] == {
        "namespace": "numaflow-rdma",
        "name": "webhook",
        "port": 443,
        "path": "/mutate",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"url": "https://a", "service": ("a", "b", 1)},
        {"url": "https://a", "failure_policy": "Maybe"},
        {"url": "https://a", "timeout_seconds": 31},
    ],
)
def test_configuration_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        webhook_configuration("x", "Q0E=", **kwargs)  # type: ignore[arg-type]
