"""The parts of a Numaflow vertex pod the webhook reads: its user containers and downstream vertices.

Numaflow's vertex controller puts the user's code in containers named
``udf``, ``udsink``, ``udsource`` or ``transformer``. Since Numaflow 1.5 on
Kubernetes 1.29 and later they are native sidecars in ``spec.initContainers``
(``restartPolicy: Always``); on older clusters they sit in ``spec.containers``.
The ``numa`` container carries the whole Vertex object, base64-encoded JSON,
in its ``NUMAFLOW_VERTEX_OBJECT`` variable; its ``spec.toEdges[].to`` are the
downstream vertices, and a sink has none.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma import jsontext
from numaflow_rdma.names import (
    LABEL_PIPELINE_NAME,
    LABEL_VERTEX_NAME,
    NUMAFLOW_CONTAINER,
    NUMAFLOW_VERTEX_OBJECT_ENV,
    USER_CONTAINER_NAMES,
)
from numaflow_rdma.webhook.shape import VERTEX_OBJECT, ShapeError, check_shape

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"

# The two lists of a pod spec that can hold user containers, in search order.
CONTAINER_LISTS = ("initContainers", "containers")


class VertexObjectError(ValueError):
    """A NUMAFLOW_VERTEX_OBJECT that is missing or cannot be decoded."""


@dataclass(frozen=True)
class ContainerRef:
    """A container of the pod and where it sits: ``spec.<list_name>[index]``."""

    list_name: str
    index: int
    name: str
    spec: Mapping[str, Any] = field(compare=False, repr=False)
    """The container object as the pod has it."""

    @property
    def path(self) -> str:
        """Return the JSON pointer of the container, for example ``/spec/initContainers/1``."""
        return f"/spec/{self.list_name}/{self.index}"


def user_containers(pod: Mapping[str, Any]) -> list[ContainerRef]:
    """Return the pod's user containers, init containers first, each list in pod order."""
    spec = pod.get("spec") or {}
    found: list[ContainerRef] = []
    for list_name in CONTAINER_LISTS:
        for index, container in enumerate(spec.get(list_name) or []):
            if container.get("name") in USER_CONTAINER_NAMES:
                found.append(ContainerRef(list_name, index, container["name"], container))
    return found


def device_container(pod: Mapping[str, Any], candidates: list[ContainerRef]) -> ContainerRef | None:
    """Pick the one user container that gets the RDMA device and IPC_LOCK.

    A device plugin hands out one device per container that requests it, so
    only one container requests it. It is the container the pod's
    ``kubectl.kubernetes.io/default-container`` annotation names, when that is
    a user container, else the first of ``udf``, ``udsink``, ``udsource``,
    ``transformer`` that the pod has.
    """
    if not candidates:
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    default_name = annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    by_name = {ref.name: ref for ref in reversed(candidates)}
    if default_name in by_name:
        return by_name[default_name]
    for name in USER_CONTAINER_NAMES:
        if name in by_name:
            return by_name[name]
    return candidates[0]


def _numa_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for list_name in ("containers", "initContainers"):
        for container in spec.get(list_name) or []:
            if container.get("name") == NUMAFLOW_CONTAINER:
                return dict(container)
    raise VertexObjectError(f"the pod has no {NUMAFLOW_CONTAINER!r} container")


def decode_vertex_object(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Decode the Vertex object from the ``numa`` container's NUMAFLOW_VERTEX_OBJECT.

    Raises VertexObjectError saying which step failed.
    """
    container = _numa_container(pod)
    variable = next(
        (
            item
            for item in container.get("env") or []
            if item.get("name") == NUMAFLOW_VERTEX_OBJECT_ENV
        ),
        None,
    )
    if variable is None:
        raise VertexObjectError(
            f"the {NUMAFLOW_CONTAINER!r} container has no {NUMAFLOW_VERTEX_OBJECT_ENV} variable"
        )
    encoded = variable.get("value")
    if not isinstance(encoded, str) or not encoded:
        raise VertexObjectError(f"{NUMAFLOW_VERTEX_OBJECT_ENV} has no literal value")
    try:
        decoded = jsontext.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise VertexObjectError(
            f"{NUMAFLOW_VERTEX_OBJECT_ENV} is not base64-encoded JSON: {error}"
        ) from error
    if not isinstance(decoded, dict):
        raise VertexObjectError(
            f"{NUMAFLOW_VERTEX_OBJECT_ENV} contains {type(decoded).__name__}, expected a Vertex object"
        )
    try:
        check_shape(decoded, VERTEX_OBJECT, "Vertex object")
    except ShapeError as error:
        raise VertexObjectError(f"invalid {NUMAFLOW_VERTEX_OBJECT_ENV}: {error}") from error
    return decoded


def downstream_vertices(vertex_object: Mapping[str, Any]) -> list[str]:
    """Return the names of the downstream vertices, ``spec.toEdges[].to``, in order and without repeats."""
    spec = vertex_object.get("spec")
    if not isinstance(spec, dict):
        raise VertexObjectError("the Vertex object has no 'spec'")
    edges = spec.get("toEdges") or []
    if not isinstance(edges, list):
        raise VertexObjectError(f"spec.toEdges is {type(edges).__name__}, expected a list")
    names: list[str] = []
    for index, edge in enumerate(edges):
        target = edge.get("to") if isinstance(edge, dict) else None
        if not isinstance(target, str) or not target:
            raise VertexObjectError(f"spec.toEdges[{index}] has no 'to' vertex")
        if target not in names:
            names.append(target)
    return names


@dataclass(frozen=True)
class VertexIdentity:
    """The pipeline and vertex a pod belongs to, from its labels or its Vertex object."""

    pipeline: str | None
    vertex: str | None


def vertex_identity(
    pod: Mapping[str, Any], vertex_object: Mapping[str, Any] | None
) -> VertexIdentity:
    """Return the pod's pipeline and vertex names.

    Numaflow's labels come first; the Vertex object's ``spec.pipelineName`` and
    ``spec.name`` fill in what the labels lack.
    """
    labels = (pod.get("metadata") or {}).get("labels") or {}
    spec = (vertex_object or {}).get("spec") or {}
    pipeline = labels.get(LABEL_PIPELINE_NAME) or spec.get("pipelineName") or None
    vertex = labels.get(LABEL_VERTEX_NAME) or spec.get("name") or None
    return VertexIdentity(
        pipeline=pipeline if isinstance(pipeline, str) else None,
        vertex=vertex if isinstance(vertex, str) else None,
    )
