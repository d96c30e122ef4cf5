"""The MutatingWebhookConfiguration that makes the API server call this webhook.

The API server does most of the selecting, so a webhook outage only affects
the pods that would be injected:

- ``namespaceSelector`` keeps to namespaces labelled ``numaflow-rdma/inject=enabled``;
- ``objectSelector`` keeps to pipeline vertex pods by Numaflow's three labels,
  which leaves out MonoVertex, daemon, side-input manager, job and ISB pods;
- a ``matchCondition`` leaves out pods annotated ``numaflow-rdma/inject: "false"``.

The failure policy is ``Fail``: with ``Ignore``, a slow or absent webhook lets
vertex pods start without the RDMA network, which users only notice when
frames do not arrive. Reinvocation is ``IfNeeded`` because the patch is
idempotent, so a webhook that runs later and adds a container cannot leave the
pod half-prepared. The Helm chart renders the same object.
"""

from __future__ import annotations

from typing import Any

from numaflow_rdma.names import (
    INJECT_ANNOTATION,
    INJECT_ANNOTATION_DISABLED,
    INJECT_LABEL,
    INJECT_LABEL_ENABLED,
    VERTEX_POD_LABELS,
)

WEBHOOK_NAME = "vertex-pods.numaflow-rdma.numaproj.io"
MUTATE_PATH = "/mutate"
DEFAULT_TIMEOUT_SECONDS = 10

# CEL: true unless the pod carries the opt-out annotation, compared as names.is_opted_out_pod does.
NOT_OPTED_OUT_EXPRESSION = (
    f"!(has(object.metadata.annotations) && '{INJECT_ANNOTATION}' in object.metadata.annotations"
    f" && object.metadata.annotations['{INJECT_ANNOTATION}'].trim().lowerAscii()"
    f" == '{INJECT_ANNOTATION_DISABLED}')"
)


def webhook_configuration(
    name: str,
    ca_bundle: str,
    *,
    service: tuple[str, str, int] | None = None,
    url: str | None = None,
    failure_policy: str = "Fail",
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Build a MutatingWebhookConfiguration as a dict for the API.

    The API server reaches the webhook through ``service`` (namespace, name,
    port) inside a cluster, or through ``url`` (``https://host:port``)
    outside one; ``/mutate`` is appended to either. ``ca_bundle`` is the
    base64 PEM of the CA that signed the serving certificate, as
    ``numaflow-rdma certs`` prints it.
    """
    if (service is None) == (url is None):
        raise ValueError("give exactly one of service and url")
    if failure_policy not in ("Fail", "Ignore"):
        raise ValueError(f"invalid failure policy {failure_policy!r}: expected Fail or Ignore")
    if not 1 <= timeout_seconds <= 30:
        raise ValueError(f"invalid timeout {timeout_seconds} s: the API allows 1 to 30")

    client_config: dict[str, Any] = {"caBundle": ca_bundle}
    if service is not None:
        namespace, service_name, port = service
        client_config["service"] = {
            "namespace": namespace,
            "name": service_name,
            "port": port,
            "path": MUTATE_PATH,
        }
    else:
        client_config["url"] = f"{str(url).rstrip('/')}{MUTATE_PATH}"

    webhook = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config,
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ],
        "namespaceSelector": {"matchLabels": {INJECT_LABEL: INJECT_LABEL_ENABLED}},
        "objectSelector": {"matchLabels": dict(VERTEX_POD_LABELS)},
        "matchConditions": [{"name": "not-opted-out", "expression": NOT_OPTED_OUT_EXPRESSION}],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "reinvocationPolicy": "IfNeeded",
        "timeoutSeconds": timeout_seconds,
        "matchPolicy": "Equivalent",
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }
