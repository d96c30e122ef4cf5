"""Decide what to do with one pod, and build its patch.

``decide`` is the webhook's whole policy. The Kubernetes API stays behind one
callable, the resource-name resolver, so every rule is tested without a
server. It returns one of four outcomes:

- ``skipped``: the pod is not for this webhook (not a pipeline vertex pod,
  opted out, or without a user container) and is admitted unchanged;
- ``unchanged``: the pod already has everything, as on a reinvocation;
- ``injected``: the pod is admitted with the patch;
- ``rejected``: the pod cannot be prepared correctly, and the message states
  why and what to change.

The namespace opt-in is not checked here: the webhook configuration's
``namespaceSelector`` (see ``configuration.py``) makes the API server call
the webhook only for pods of namespaces labelled
``numaflow-rdma/inject=enabled``. The API server evaluates it against its own
view of the namespace on every request. A second lookup here would cost an
API round trip and ``get namespaces`` permission, and it could only disagree
for the moment after a namespace is relabelled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma import __version__
from numaflow_rdma.config import check_option
from numaflow_rdma.names import (
    DEFAULT_INTERFACE,
    DEFAULT_TRANSPORT_PORT,
    DEFAULT_ZONE,
    ENV_ANNOTATIONS_FILE,
    ENV_DESTINATIONS,
    ENV_INTERFACE,
    ENV_NETWORK,
    ENV_PORT,
    ENV_VERTEX,
    INJECTED_ANNOTATION,
    MULTUS_NETWORKS_ANNOTATION,
    MULTUS_RESOURCE_NAME_ANNOTATION,
    PODINFO_ANNOTATIONS_FILE,
    PODINFO_VOLUME,
    InvalidNameError,
    format_destinations,
    is_opted_out_pod,
    is_vertex_pod_labels,
    validate_zone,
    vertex_dns_name,
)
from numaflow_rdma.webhook import patches
from numaflow_rdma.webhook.multus import (
    NetworkAnnotationError,
    NetworkRef,
    NetworksUpdate,
    add_network,
    parse_network_ref,
    validate_interface,
)
from numaflow_rdma.webhook.nad import NetworkLookupError, NetworkNotFoundError, ResourceNameResolver
from numaflow_rdma.webhook.shape import POD_METADATA, POD_SPEC, ShapeError, check_shape
from numaflow_rdma.webhook.vertex import (
    ContainerRef,
    VertexIdentity,
    VertexObjectError,
    decode_vertex_object,
    device_container,
    downstream_vertices,
    user_containers,
    vertex_identity,
)

SKIPPED = "skipped"
UNCHANGED = "unchanged"
INJECTED = "injected"
REJECTED = "rejected"
OUTCOMES = (SKIPPED, UNCHANGED, INJECTED, REJECTED)

WARNING_PREFIX = "numaflow-rdma: "


@dataclass(frozen=True)
class Settings:
    """The injection settings from the command line."""

    network: str
    """The RDMA NetworkAttachmentDefinition: ``namespace/name``, or ``name`` in the pod's namespace."""
    interface: str = DEFAULT_INTERFACE
    transport_port: int = DEFAULT_TRANSPORT_PORT
    zone: str = DEFAULT_ZONE
    resource_count: int = 1
    """Units of the RDMA device resource requested and limited for the device container."""

    def validate(self) -> Settings:
        """Return the settings with the zone normalized; raise ValueError naming the bad one."""
        check_option("--network", parse_network_ref, self.network, "default")
        check_option("--interface", validate_interface, self.interface)
        if not 0 < self.transport_port < 65536:
            raise ValueError(f"invalid --transport-port {self.transport_port}: expected 1-65535")
        if self.resource_count < 1:
            raise ValueError(f"invalid --resource-count {self.resource_count}: expected 1 or more")
        zone = check_option("--zone", validate_zone, self.zone)
        return Settings(
            network=self.network,
            interface=self.interface,
            transport_port=self.transport_port,
            zone=zone,
            resource_count=self.resource_count,
        )


@dataclass(frozen=True)
class Decision:
    """The outcome for one pod: the patch to apply, or why it is skipped or rejected."""

    outcome: str
    message: str
    patch: list[patches.Operation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    code: int = 200
    """HTTP-style status code of a rejection: 400 for the pod, 503 for a failed lookup."""
    identity: VertexIdentity = field(default_factory=lambda: VertexIdentity(None, None))


class _Rejection(Exception):
    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _skip_reason(pod: Mapping[str, Any]) -> str | None:
    metadata = pod.get("metadata") or {}
    if not is_vertex_pod_labels(metadata.get("labels")):
        return "not a Numaflow pipeline vertex pod"
    if is_opted_out_pod(metadata.get("annotations")):
        return "the pod opts out through its numaflow-rdma/inject annotation"
    return None


@dataclass
class _Names:
    """The DNS names for the environment, and warnings about those that could not be built."""

    own: str | None
    destinations: dict[str, str] | None
    warnings: list[str]


def _vertex_names(
    vertex_object: Mapping[str, Any] | VertexObjectError,
    identity: VertexIdentity,
    namespace: str,
    zone: str,
) -> _Names:
    warnings = []
    own = None
    if identity.pipeline and identity.vertex:
        try:
            own = vertex_dns_name(identity.vertex, identity.pipeline, namespace, zone)
        except InvalidNameError as error:
            warnings.append(f"{ENV_VERTEX} is not set: {error}")
    else:
        warnings.append(
            f"{ENV_VERTEX} is not set: the pod has no pipeline-name or vertex-name label "
            "and its Vertex object names none"
        )

    # The downstream vertices come from the Vertex object; a pod whose object
    # cannot be read still receives frames, so this only warns.
    destinations: dict[str, str] | None = None
    try:
        if isinstance(vertex_object, VertexObjectError):
            raise vertex_object
        targets = downstream_vertices(vertex_object)
        if identity.pipeline is None:
            raise VertexObjectError("the pipeline name is unknown")
        destinations = {
            target: vertex_dns_name(target, identity.pipeline, namespace, zone)
            for target in targets
        }
    except (VertexObjectError, InvalidNameError) as error:
        warnings.append(
            f"destinations could not be derived, so {ENV_DESTINATIONS} is not set: {error}"
        )
    return _Names(own, destinations, warnings)


def _network_update(
    pod: Mapping[str, Any], namespace: str, settings: Settings
) -> tuple[NetworkRef, NetworksUpdate]:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        network = parse_network_ref(settings.network, namespace)
        update = add_network(
            annotations.get(MULTUS_NETWORKS_ANNOTATION), network, settings.interface, namespace
        )
    except NetworkAnnotationError as error:
        raise _Rejection(f"invalid {MULTUS_NETWORKS_ANNOTATION} annotation: {error}") from error
    return network, update


def _resource_name(network: NetworkRef, resolve: ResourceNameResolver) -> str | None:
    try:
        return resolve(network)
    except NetworkNotFoundError as error:
        raise _Rejection(
            f"{error}: create it, or fix the webhook's --network setting; the "
            "NetworkAttachmentDefinition CRD of Multus must be installed"
        ) from error
    except NetworkLookupError as error:
        raise _Rejection(
            f"{error}; create the pod again once the API server responds", 503
        ) from error


def _requesting_containers(pod: Mapping[str, Any], resource: str) -> list[ContainerRef]:
    spec = pod.get("spec") or {}
    found = []
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(list_name) or []):
            ref = ContainerRef(list_name, index, str(container.get("name")), container)
            if patches.requested_quantities(ref, resource) != (None, None):
                found.append(ref)
    return found


def _device_ops(
    pod: Mapping[str, Any], container: ContainerRef, resource: str, quantity: str
) -> tuple[list[patches.Operation], list[str]]:
    """Request the device on ``container`` unless some container already requests it."""
    requesting = _requesting_containers(pod, resource)
    if not requesting:
        return patches.resource_ops(container, resource, quantity), []

    if container in requesting:
        request, limit = patches.requested_quantities(container, resource)
        if request == quantity and limit == quantity:
            return [], []
        return [], [
            f"container {container.name!r} already sets {resource} (request {request}, "
            f"limit {limit}); its value is kept"
        ]
    names = ", ".join(repr(ref.name) for ref in requesting)
    return [], [
        f"container {names} already requests {resource}, so it is not added to "
        f"container {container.name!r}"
    ]


def _non_root_reason(pod: Mapping[str, Any], container: ContainerRef) -> str | None:
    pod_security = (pod.get("spec") or {}).get("securityContext") or {}
    security = container.spec.get("securityContext") or {}
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    if user is not None:
        return f"runAsUser {user}" if user != 0 else None
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
        return "runAsNonRoot"
    return None


def _capability_ops(
    pod: Mapping[str, Any], container: ContainerRef
) -> tuple[list[patches.Operation], list[str]]:
    ops = patches.capability_ops(container)
    if not ops:
        return [], []
    warnings = []
    reason = _non_root_reason(pod, container)
    if reason is not None:
        warnings.append(
            f"container {container.name!r} runs as non-root ({reason}): {patches.IPC_LOCK} does "
            "not raise its locked-memory limit there; the container runtime must (for example "
            "LimitMEMLOCK=infinity for containerd)"
        )
    dropped = ((container.spec.get("securityContext") or {}).get("capabilities") or {}).get(
        "drop"
    ) or []
    if patches.IPC_LOCK in dropped:
        warnings.append(
            f"container {container.name!r} also drops {patches.IPC_LOCK}; the container runtime "
            "decides which wins"
        )
    return ops, warnings


def _record(
    settings: Settings,
    network: NetworkRef,
    interface: str,
    resource: str | None,
    device: ContainerRef,
    containers: list[ContainerRef],
    env: Mapping[str, str],
) -> str:
    """Return the value of the annotation that records what the webhook ensured."""
    record = {
        "version": __version__,
        "network": str(network),
        "interface": interface,
        "resource": resource,
        "resourceCount": settings.resource_count if resource else 0,
        "deviceContainer": device.name,
        "containers": [ref.name for ref in containers],
        "capabilities": [patches.IPC_LOCK],
        "volume": PODINFO_VOLUME,
        "env": sorted(env),
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _build(
    pod: Mapping[str, Any],
    namespace: str,
    settings: Settings,
    resolve: ResourceNameResolver,
    containers: list[ContainerRef],
    device: ContainerRef,
    vertex_object: Mapping[str, Any] | VertexObjectError,
    identity: VertexIdentity,
) -> Decision:
    # First, the names and the network, which need no API call.
    names = _vertex_names(vertex_object, identity, namespace, settings.zone)
    warnings = list(names.warnings)
    network, update = _network_update(pod, namespace, settings)

    # Then the device resource, which may need the API server.
    resource = _resource_name(network, resolve)
    if resource is None:
        warnings.append(
            f"NetworkAttachmentDefinition {network} has no {MULTUS_RESOURCE_NAME_ANNOTATION} "
            "annotation and the webhook has no --resource-name, so no RDMA device is requested"
        )

    env = {
        ENV_NETWORK: str(network),
        ENV_INTERFACE: update.interface,
        ENV_PORT: str(settings.transport_port),
        ENV_ANNOTATIONS_FILE: PODINFO_ANNOTATIONS_FILE,
    }
    if names.own is not None:
        env[ENV_VERTEX] = names.own
    if names.destinations is not None:
        env[ENV_DESTINATIONS] = format_destinations(names.destinations)

    # Then the patch: the environment and the annotations file for every user
    # container, the device and IPC_LOCK for one of them.
    try:
        ops = patches.volume_ops(pod)
        for container in containers:
            env_ops, overridden = patches.env_ops(container, env)
            ops += env_ops + patches.volume_mount_ops(container)
            warnings += [
                f"container {container.name!r} sets {name} itself; its value is kept"
                for name in overridden
            ]
    except patches.PatchConflictError as error:
        raise _Rejection(str(error)) from error
    if resource is not None:
        device_ops, device_warnings = _device_ops(
            pod, device, resource, str(settings.resource_count)
        )
        ops += device_ops
        warnings += device_warnings
    capability_ops, capability_warnings = _capability_ops(pod, device)
    ops += capability_ops
    warnings += capability_warnings

    # Last, the annotations. The record is rewritten only when something else changed.
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    updates = {}
    if update.changed:
        updates[MULTUS_NETWORKS_ANNOTATION] = update.value
    if ops or updates or INJECTED_ANNOTATION not in annotations:
        updates[INJECTED_ANNOTATION] = _record(
            settings, network, update.interface, resource, device, containers, env
        )
    ops = patches.annotation_ops(pod, updates) + ops
    patches.check_numaflow_annotations_untouched(ops)

    warnings = [WARNING_PREFIX + warning for warning in warnings]
    if not ops:
        return Decision(
            UNCHANGED, "the pod already has everything", warnings=warnings, identity=identity
        )
    message = (
        f"injected network {network} as {update.interface}, "
        f"resource {resource or '(none)'} and {patches.IPC_LOCK} into container {device.name!r}, "
        f"environment into {', '.join(repr(ref.name) for ref in containers)}"
    )
    return Decision(INJECTED, message, patch=ops, warnings=warnings, identity=identity)


def decide(
    pod: Mapping[str, Any],
    namespace: str,
    settings: Settings,
    resolve: ResourceNameResolver,
) -> Decision:
    """Decide what to do with ``pod`` being created in ``namespace``.

    ``resolve`` gives the device resource of the RDMA network; it is called
    only for pods that get injected. A pod whose fields have other JSON types
    than a Pod's is rejected: the metadata first, because it decides whether
    the pod is handled, then, for a handled pod, the spec.
    """
    try:
        check_shape(pod.get("metadata"), POD_METADATA, "metadata")
    except ShapeError as error:
        return Decision(REJECTED, f"invalid pod: {error}", code=400)
    reason = _skip_reason(pod)
    if reason is not None:
        return Decision(SKIPPED, reason)
    try:
        check_shape(pod.get("spec"), POD_SPEC, "spec")
    except ShapeError as error:
        return Decision(REJECTED, f"invalid pod: {error}", code=400)

    identity = vertex_identity(pod, None)
    containers = user_containers(pod)
    device = device_container(pod, containers)
    if device is None:
        return Decision(
            SKIPPED,
            "the vertex has no user container (udf, udsink, udsource, transformer)",
            identity=identity,
        )

    vertex_object: dict[str, Any] | VertexObjectError
    try:
        vertex_object = decode_vertex_object(pod)
        identity = vertex_identity(pod, vertex_object)
    except VertexObjectError as error:
        vertex_object = error
    try:
        return _build(
            pod, namespace, settings, resolve, containers, device, vertex_object, identity
        )
    except _Rejection as rejection:
        return Decision(REJECTED, rejection.message, code=rejection.code, identity=identity)
