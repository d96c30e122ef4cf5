"""Build the JSON Patch operations (RFC 6902) that prepare a vertex pod for the RDMA network.

Each builder reads the pod as the API server sent it and returns the
operations for one concern, and none for what is already in place, so the
webhook can run again on its own output (``reinvocationPolicy: IfNeeded``)
and add nothing twice. The builders keep three rules of JSON Patch:

- ``add`` of ``/a/b/c`` fails when ``/a/b`` is missing, so a missing map or
  list is added first, whole, with the new entries inside it;
- ``add`` of a map that exists replaces it, so an existing map is extended
  key by key and never replaced;
- ``~`` and ``/`` in a key are written ``~0`` and ``~1`` (RFC 6901), as in
  ``/metadata/annotations/k8s.v1.cni.cncf.io~1networks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from numaflow_rdma.names import (
    NUMAFLOW_ANNOTATION_PREFIX,
    PODINFO_ANNOTATIONS_FILE,
    PODINFO_MOUNT_PATH,
    PODINFO_VOLUME,
)
from numaflow_rdma.webhook.vertex import ContainerRef

Operation = dict[str, Any]

IPC_LOCK = "IPC_LOCK"
_PODINFO_ITEM_PATH = PurePosixPath(PODINFO_ANNOTATIONS_FILE).name
_ANNOTATIONS_PATH = "/metadata/annotations"


class PatchConflictError(ValueError):
    """The pod already has something the webhook needs, under the same name or path, that it cannot reuse."""


def escape_token(key: str) -> str:
    """Escape a map key for use as one JSON-pointer token: ``~`` to ``~0``, then ``/`` to ``~1``."""
    return key.replace("~", "~0").replace("/", "~1")


def add(path: str, value: Any) -> Operation:
    """Return an ``add`` operation."""
    return {"op": "add", "path": path, "value": value}


def annotation_ops(pod: Mapping[str, Any], updates: Mapping[str, str]) -> list[Operation]:
    """Set the annotations in ``updates``, keeping every other annotation of the pod."""
    if not updates:
        return []
    metadata = pod.get("metadata")
    if metadata is None:
        return [add("/metadata", {"annotations": dict(updates)})]
    current = metadata.get("annotations")
    if current is None:
        return [add(_ANNOTATIONS_PATH, dict(updates))]

    ops = []
    for key, value in updates.items():
        path = f"{_ANNOTATIONS_PATH}/{escape_token(key)}"
        if key not in current:
            ops.append(add(path, value))
        elif current[key] != value:
            ops.append({"op": "replace", "path": path, "value": value})
    return ops


def requested_quantities(container: ContainerRef, resource: str) -> tuple[str | None, str | None]:
    """Return the container's request and limit of ``resource``, None where it sets none."""
    resources = container.spec.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    request, limit = requests.get(resource), limits.get(resource)
    return (None if request is None else str(request), None if limit is None else str(limit))


def resource_ops(container: ContainerRef, resource: str, quantity: str) -> list[Operation]:
    """Request and limit ``quantity`` of the extended resource on the container.

    Extended resources must have equal request and limit, so both are set.
    The caller keeps a quantity the user set; this builder never replaces one.
    """
    resources = container.spec.get("resources")
    if resources is None:
        return [
            add(
                f"{container.path}/resources",
                {"limits": {resource: quantity}, "requests": {resource: quantity}},
            )
        ]

    ops = []
    for field in ("limits", "requests"):
        current = resources.get(field)
        if current is None:
            ops.append(add(f"{container.path}/resources/{field}", {resource: quantity}))
        elif resource not in current:
            ops.append(
                add(f"{container.path}/resources/{field}/{escape_token(resource)}", quantity)
            )
    return ops


def capability_ops(container: ContainerRef, capability: str = IPC_LOCK) -> list[Operation]:
    """Add ``capability`` to the container's ``securityContext.capabilities.add``, keeping the others."""
    security = container.spec.get("securityContext")
    if security is None:
        return [add(f"{container.path}/securityContext", {"capabilities": {"add": [capability]}})]
    capabilities = security.get("capabilities")
    if capabilities is None:
        return [add(f"{container.path}/securityContext/capabilities", {"add": [capability]})]
    added = capabilities.get("add")
    if added is None:
        return [add(f"{container.path}/securityContext/capabilities/add", [capability])]
    if capability in added:
        return []
    return [add(f"{container.path}/securityContext/capabilities/add/-", capability)]


def env_ops(container: ContainerRef, env: Mapping[str, str]) -> tuple[list[Operation], list[str]]:
    """Add the variables of ``env`` that the container does not set yet.

    Returns the operations, and the names the container already sets to
    another value or from another source. Those keep the container's own
    setting, so a user can override one on purpose.
    """
    current = {variable.get("name"): variable for variable in container.spec.get("env") or []}
    missing = [{"name": name, "value": value} for name, value in env.items() if name not in current]
    overridden = [
        name
        for name, value in env.items()
        if name in current and current[name].get("value") != value
    ]
    if not missing:
        return [], overridden
    if container.spec.get("env") is None:
        return [add(f"{container.path}/env", missing)], overridden
    return [add(f"{container.path}/env/-", variable) for variable in missing], overridden


def podinfo_volume() -> dict[str, Any]:
    """Return the downward-API volume that exposes the pod's annotations as one file."""
    return {
        "name": PODINFO_VOLUME,
        "downwardAPI": {
            "items": [
                {"path": _PODINFO_ITEM_PATH, "fieldRef": {"fieldPath": "metadata.annotations"}}
            ]
        },
    }


def _is_podinfo_volume(volume: Mapping[str, Any]) -> bool:
    # The API server adds defaults such as defaultMode and fieldRef.apiVersion,
    # so only the fields that matter are compared.
    items = (volume.get("downwardAPI") or {}).get("items") or []
    return any(
        item.get("path") == _PODINFO_ITEM_PATH
        and (item.get("fieldRef") or {}).get("fieldPath") == "metadata.annotations"
        for item in items
    )


def volume_ops(pod: Mapping[str, Any]) -> list[Operation]:
    """Add the downward-API volume to the pod unless it is there; raise PatchConflictError."""
    volumes = (pod.get("spec") or {}).get("volumes")
    if volumes is None:
        return [add("/spec/volumes", [podinfo_volume()])]
    for volume in volumes:
        if volume.get("name") != PODINFO_VOLUME:
            continue
        if not _is_podinfo_volume(volume):
            raise PatchConflictError(
                f"the pod already has a volume named {PODINFO_VOLUME!r} that is not the "
                "downward-API volume of the pod's annotations; rename that volume"
            )
        return []
    return [add("/spec/volumes/-", podinfo_volume())]


def volume_mount_ops(container: ContainerRef) -> list[Operation]:
    """Mount the downward-API volume read-only in the container; raise PatchConflictError."""
    mounts = container.spec.get("volumeMounts")
    mount = {"name": PODINFO_VOLUME, "mountPath": PODINFO_MOUNT_PATH, "readOnly": True}
    if mounts is None:
        return [add(f"{container.path}/volumeMounts", [mount])]

    for existing in mounts:
        same_name = existing.get("name") == PODINFO_VOLUME
        same_path = existing.get("mountPath") == PODINFO_MOUNT_PATH
        if same_name and same_path:
            return []
        if same_path or same_name:
            raise PatchConflictError(
                f"container {container.name!r} already mounts volume {existing.get('name')!r} at "
                f"{existing.get('mountPath')!r}, in conflict with the pod annotations volume "
                f"{PODINFO_VOLUME!r} at {PODINFO_MOUNT_PATH}"
            )
    return [add(f"{container.path}/volumeMounts/-", mount)]


def check_numaflow_annotations_untouched(ops: Sequence[Operation]) -> None:
    """Raise AssertionError if an operation would change a ``numaflow.numaproj.io/`` annotation.

    Numaflow's vertex controller compares ``numaflow.numaproj.io/hash`` with the
    Vertex's to decide whether to recreate pods, so those annotations are never
    written. An ``add`` of the whole map happens only when the pod has none.
    """
    prefix = f"{_ANNOTATIONS_PATH}/{escape_token(NUMAFLOW_ANNOTATION_PREFIX)}"
    for op in ops:
        if op["path"].startswith(prefix):
            raise AssertionError(f"patch operation {op} would change a Numaflow annotation")
