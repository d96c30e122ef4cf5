"""Kubernetes objects the admission and dnssync benchmarks share, on the local control plane.

The pods come from the fixtures in ``numaflow_rdma/fixtures/numaflow``: the
pods Numaflow's own controllers build for sample pipelines, in both layouts
(user containers as native sidecars and as plain containers).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import BenchmarkSkipped
from numaflow_rdma import names

FIXTURES_DIR = Path(names.__file__).resolve().parent / "fixtures" / "numaflow"
CRD_PATH = (
    Path(names.__file__).resolve().parent
    / "controlplane"
    / "crds"
    / ("network-attachment-definition.yaml")
)
NETWORK_NAME = "rdma-net"
RESOURCE_NAME = "rdma/hca_shared_devices_a"


def vertex_pods() -> list[dict[str, Any]]:
    """Return every pipeline vertex pod of the Numaflow fixtures; raise BenchmarkSkipped if none."""
    files = sorted(FIXTURES_DIR.glob("*.json"))
    pods: list[dict[str, Any]] = []
    for path in files:
        document = json.loads(path.read_text())
        items = document.get("pods", []) if isinstance(document, dict) else document
        pods.extend(
            pod for pod in items if names.is_vertex_pod_labels(pod["metadata"].get("labels"))
        )
    if not pods:
        raise BenchmarkSkipped(f"no Numaflow vertex pod fixtures found in {FIXTURES_DIR}")
    return pods


def create_opted_in_namespace(api_client: Any, name: str) -> None:
    """Create namespace ``name`` labelled for injection."""
    from kubernetes import client

    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=name, labels={names.INJECT_LABEL: names.INJECT_LABEL_ENABLED}
            )
        )
    )


def install_network(api_client: Any, namespace: str, timeout: float = 30.0) -> None:
    """Register the NetworkAttachmentDefinition CRD and create the RDMA network in ``namespace``.

    The network names its device-plugin resource in the annotation that both
    webhooks read.
    """
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(api_client)
    definition = yaml.safe_load(CRD_PATH.read_text())
    try:
        extensions.create_custom_resource_definition(definition)
    except client.ApiException as error:
        if error.status != 409:
            raise
    deadline = time.monotonic() + timeout
    while True:
        current = extensions.read_custom_resource_definition(definition["metadata"]["name"])
        conditions = (current.status.conditions if current.status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the NetworkAttachmentDefinition CRD was not established in time")
        time.sleep(0.2)

    objects = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": NETWORK_NAME,
            "namespace": namespace,
            "annotations": {names.MULTUS_RESOURCE_NAME_ANNOTATION: RESOURCE_NAME},
        },
        "spec": {
            "config": json.dumps(
                {"cniVersion": "0.3.1", "name": NETWORK_NAME, "type": "host-device"}
            )
        },
    }
    deadline = time.monotonic() + timeout
    while True:
        # The CRD's REST endpoint can lag its Established condition by a moment.
        try:
            objects.create_namespaced_custom_object(
                "k8s.cni.cncf.io", "v1", namespace, "network-attachment-definitions", body
            )
            return
        except client.ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def pod_for_namespace(
    pod: dict[str, Any], namespace: str, name: str | None = None
) -> dict[str, Any]:
    """Return a copy of a fixture pod placed in ``namespace``, optionally renamed."""
    copied = copy.deepcopy(pod)
    metadata = copied["metadata"]
    metadata["namespace"] = namespace
    metadata.pop("creationTimestamp", None)
    metadata.pop("resourceVersion", None)
    metadata.pop("uid", None)
    if name is not None:
        metadata["name"] = name
    copied.pop("status", None)
    return copied


def pod_for_api(pod: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    """Return a fixture pod ready to create: placed, renamed and without owner references.

    The fixtures' owner references name Vertex objects with an empty uid, which
    the API server rejects; no Vertex exists on the local control plane.
    """
    copied = pod_for_namespace(pod, namespace, name)
    copied["metadata"].pop("ownerReferences", None)
    return copied
