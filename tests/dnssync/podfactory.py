"""Vertex pod and namespace dicts shaped like the API's JSON, for unit and integration tests."""

from __future__ import annotations

import json
from typing import Any

from numaflow_rdma import names

RDMA_NETWORK = "rdma/rdma-net"


def network_status(
    address: str | None, network: str = RDMA_NETWORK, interface: str = "net1"
) -> str:
    """Return a network-status value as Multus writes it, with the cluster network first."""
    entries: list[dict[str, Any]] = [
        {"name": "k8s-pod-network", "ips": ["10.244.0.9"], "default": True, "dns": {}}
    ]
    if address is not None:
        entries.append({"name": network, "interface": interface, "ips": [address], "dns": {}})
    return json.dumps(entries, indent=4)


def vertex_pod(
    name: str,
    namespace: str = "team",
    *,
    pipeline: str = "video",
    vertex: str = "infer",
    address: str | None = "198.18.0.7",
    ready: bool = True,
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    deleting: bool = False,
) -> dict[str, Any]:
    """Return a vertex pod dict; ``address`` None leaves network-status unset."""
    pod_annotations = dict(annotations or {})
    if address is not None:
        pod_annotations[names.MULTUS_NETWORK_STATUS_ANNOTATION] = network_status(address)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "labels": {
            **names.VERTEX_POD_LABELS,
            names.LABEL_PIPELINE_NAME: pipeline,
            names.LABEL_VERTEX_NAME: vertex,
        },
        "annotations": pod_annotations,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "udf", "image": "example.invalid/udf:1"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def opted_in() -> dict[str, str]:
    return {names.INJECT_LABEL: names.INJECT_LABEL_ENABLED}
