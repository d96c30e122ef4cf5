"""The pods of the demo pipeline: Numaflow's own, from the fixtures, and what the webhook stored."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.demo.containers import ContainerConfigError, user_container
from numaflow_rdma.demo.result import PodReport
from numaflow_rdma.fixtures import load_other_pods, load_pods

_CORE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_NAME_ALPHABET = string.ascii_lowercase + string.digits


def vertex_of(pod: dict[str, Any]) -> str | None:
    """Return the vertex of a pipeline vertex pod, or None for any other pod."""
    labels = pod["metadata"].get("labels") or {}
    if not names.is_vertex_pod_labels(labels):
        return None
    return str(labels.get(names.LABEL_VERTEX_NAME))


def replica_of(pod: dict[str, Any]) -> str:
    """Return Numaflow's replica index annotation of a vertex pod."""
    return str((pod["metadata"].get("annotations") or {}).get("numaflow.numaproj.io/replica", ""))


def vertex_pods(pipeline: str, layout: str, namespace: str) -> list[dict[str, Any]]:
    """Return the pipeline's vertex pods exactly as Numaflow's controller builds them."""
    return load_pods(pipeline, layout, namespace=namespace)


def other_pods(layout: str, namespace: str) -> list[dict[str, Any]]:
    """Return Numaflow pods that are not pipeline vertex pods: daemon, job, MonoVertex."""
    return load_other_pods(layout, namespace=namespace)


def replacement_pod(
    pipeline: str, layout: str, namespace: str, deleted: dict[str, Any]
) -> dict[str, Any]:
    """Return the pod Numaflow creates for a deleted replica: the same pod under a new name.

    Numaflow names vertex pods ``<pipeline>-<vertex>-<replica>-<five random characters>``.
    """
    replica = replica_of(deleted)
    vertex = vertex_of(deleted)
    for pod in vertex_pods(pipeline, layout, namespace):
        if vertex_of(pod) == vertex and replica_of(pod) == replica:
            suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            pod["metadata"]["name"] = f"{pipeline}-{vertex}-{replica}-{suffix}"
            return pod
    raise LookupError(f"the fixtures have no {vertex} pod with replica {replica}")


def pod_report(stored: dict[str, Any]) -> PodReport:
    """Describe what the API server stored for a pod: the webhook's changes, if any."""
    metadata = stored["metadata"]
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    injected_text = annotations.get(names.INJECTED_ANNOTATION)
    injected = json.loads(injected_text) if injected_text else None

    try:
        container: dict[str, Any] = user_container(stored)
    except ContainerConfigError:
        container = {}
    env = {
        entry["name"]: str(entry.get("value", ""))
        for entry in container.get("env") or []
        if entry["name"].startswith("NUMAFLOW_RDMA_")
    }
    limits = (container.get("resources") or {}).get("limits") or {}
    capabilities = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add")
    volumes = (stored.get("spec") or {}).get("volumes") or []
    return PodReport(
        name=metadata["name"],
        namespace=metadata["namespace"],
        vertex=vertex_of(stored),
        component=str(labels.get(names.LABEL_COMPONENT, "")),
        injected=injected,
        networks=annotations.get(names.MULTUS_NETWORKS_ANNOTATION),
        rdma_env=env,
        resource_limits={
            key: str(value) for key, value in limits.items() if key not in _CORE_RESOURCES
        },
        capabilities=list(capabilities or []),
        podinfo_volume=any(volume.get("name") == names.PODINFO_VOLUME for volume in volumes),
    )
