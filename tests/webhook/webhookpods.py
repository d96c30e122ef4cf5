"""Vertex pods shaped as Numaflow's vertex controller builds them, with knobs for edge cases.

The generated fixtures in ``numaflow_rdma.fixtures`` are the real pods; these
hand-made ones vary one thing at a time.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from numaflow_rdma.names import VERTEX_POD_LABELS


def vertex_object(pipeline: str, vertex: str, namespace: str, to: Sequence[str]) -> dict[str, Any]:
    """Return a decoded NUMAFLOW_VERTEX_OBJECT for ``vertex`` with edges to ``to``."""
    return {
        "metadata": {
            "name": f"{pipeline}-{vertex}",
            "namespace": namespace,
            "creationTimestamp": None,
        },
        "spec": {
            "name": vertex,
            "udf": {"container": {"image": "registry.example.com/udf:v1"}, "groupBy": None},
            "pipelineName": pipeline,
            "interStepBufferServiceName": "",
            "replicas": 0,
            "fromEdges": [{"from": "in", "to": vertex, "conditions": None}],
            "toEdges": [{"from": vertex, "to": target, "conditions": None} for target in to],
            "watermark": {"maxDelay": "0s"},
            "lifecycle": {},
        },
        "status": {"phase": "", "replicas": 0, "desiredReplicas": 0, "lastScaledAt": None},
    }


def encode(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def vertex_pod(
    *,
    pipeline: str = "video",
    vertex: str = "infer",
    namespace: str = "pipelines",
    to: Sequence[str] = ("out",),
    user_containers: Sequence[str] = ("udf",),
    sidecar: bool = True,
    annotations: Mapping[str, str] | None = None,
    vertex_object_value: str | None = None,
) -> dict[str, Any]:
    """Return a pipeline vertex pod as the API server sends it to an admission webhook.

    ``sidecar`` puts the user containers in ``spec.initContainers`` with
    ``restartPolicy: Always``, as Numaflow does on Kubernetes 1.29 and later.
    """
    encoded = vertex_object_value
    if encoded is None:
        encoded = encode(vertex_object(pipeline, vertex, namespace, to))
    numa = {
        "name": "numa",
        "image": "quay.io/numaproj/numaflow:v1.8.3",
        "env": [
            {"name": "NUMAFLOW_VERTEX_OBJECT", "value": encoded},
            {"name": "NUMAFLOW_READ_AHEAD", "value": "true"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [{"name": "var-run-numaflow", "mountPath": "/var/run/numaflow"}],
    }
    containers: list[dict[str, Any]] = [numa]
    init_containers: list[dict[str, Any]] = [
        {"name": "init", "image": "quay.io/numaproj/numaflow:v1.8.3"}
    ]
    for name in user_containers:
        user = {
            "name": name,
            "image": f"registry.example.com/{name}:v1",
            "env": [{"name": "NUMAFLOW_UD_CONTAINER_TYPE", "value": name}],
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
            "volumeMounts": [{"name": "var-run-numaflow", "mountPath": "/var/run/numaflow"}],
        }
        if sidecar:
            init_containers.append({**user, "restartPolicy": "Always"})
        else:
            containers.append(user)
    pod_annotations = {
        "numaflow.numaproj.io/hash": "5c1b3f0e",
        "numaflow.numaproj.io/replica": "0",
        "kubectl.kubernetes.io/default-container": user_containers[0]
        if user_containers
        else "numa",
        **(annotations or {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{pipeline}-{vertex}-0-abcde",
            "namespace": namespace,
            "labels": {
                **VERTEX_POD_LABELS,
                "app.kubernetes.io/name": f"{pipeline}-{vertex}",
                "numaflow.numaproj.io/pipeline-name": pipeline,
                "numaflow.numaproj.io/vertex-name": vertex,
            },
            "annotations": pod_annotations,
        },
        "spec": {
            "initContainers": init_containers,
            "containers": containers,
            "volumes": [{"name": "var-run-numaflow", "emptyDir": {"medium": "Memory"}}],
        },
    }


def admission_review(
    pod: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    namespace: str | None = None,
    kind: str = "Pod",
) -> dict[str, Any]:
    """Wrap ``pod`` in an AdmissionReview request as the API server sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod.get("metadata", {}).get("name", ""),
            "namespace": namespace
            if namespace is not None
            else pod.get("metadata", {}).get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:numaflow-system:numaflow-sa"},
            "object": copy.deepcopy(dict(pod)),
            "oldObject": None,
            "dryRun": False,
        },
    }


def user_container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Return the container called ``name`` from either container list."""
    for list_name in ("initContainers", "containers"):
        for container in pod["spec"].get(list_name) or []:
            if container["name"] == name:
                return dict(container)
    raise AssertionError(f"the pod has no container {name!r}")


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    """Return a container's variables by name: the value, or the valueFrom source."""
    return {
        item["name"]: item.get("value", item.get("valueFrom"))
        for item in container.get("env") or []
    }
