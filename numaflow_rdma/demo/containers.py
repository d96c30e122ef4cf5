"""What the kubelet would hand the UDF container: its environment and its downward-API files.

Everything here is read from the pod as the API server stored it, after the
webhook patched it, so the UDF processes see what a real container would
see. The kubelet's rules that apply:

- ``value`` entries are used as they are, after ``$(NAME)`` references to
  variables defined earlier in the list are expanded (``$$`` is a literal ``$``);
- ``fieldRef`` reads the pod's metadata and status, ``resourceFieldRef`` the
  container's requests and limits, where an unset limit means the node's
  capacity;
- ``secretKeyRef`` and ``configMapKeyRef`` read the object from the API;
- a downwardAPI volume's files hold ``key="quoted value"`` lines, sorted by key.

The demo does not mount volumes. A downwardAPI volume's files are written to
a folder of the demo instead, and environment values that start with the
volume's mount path are rewritten to that folder.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from numaflow_rdma import names

_FIELD_WITH_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

# Go's %q escapes for the characters that have a short form.
_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


class ContainerConfigError(ValueError):
    """A container whose environment cannot be built, as the kubelet's CreateContainerConfigError."""


@dataclass(frozen=True)
class NodeCapacity:
    """What an unset limit stands for: the node's CPU cores and memory bytes."""

    cpu: Decimal
    memory: Decimal

    @classmethod
    def of_this_machine(cls) -> NodeCapacity:
        """Return the CPU count and physical memory of this machine."""
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return cls(Decimal(os.cpu_count() or 1), Decimal(pages))


def user_container(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Return the pod's UDF container, in ``initContainers`` (native sidecar) or ``containers``."""
    spec = pod.get("spec") or {}
    candidates = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for wanted in names.USER_CONTAINER_NAMES:
        for container in candidates:
            if container.get("name") == wanted:
                return dict(container)
    raise ContainerConfigError(
        f"pod {pod.get('metadata', {}).get('name')} has no user container named "
        f"{' or '.join(names.USER_CONTAINER_NAMES)}"
    )


def go_quote(value: str) -> str:
    """Quote ``value`` as Go's ``%q`` does for printable text, which the downward API uses."""
    parts = ['"']
    for character in value:
        if character in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[character])
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            parts.append(f"\\x{ord(character):02x}")
        else:
            parts.append(character)
    parts.append('"')
    return "".join(parts)


def format_downward_map(values: Mapping[str, str]) -> str:
    """Return a downward-API file of labels or annotations: ``key="value"`` lines sorted by key."""
    return "".join(f"{key}={go_quote(values[key])}\n" for key in sorted(values))


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """Return the value a ``fieldRef`` with ``path`` selects; raise ContainerConfigError otherwise."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    keyed = _FIELD_WITH_KEY.match(path)
    if keyed:
        return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    simple: dict[str, Callable[[], Any]] = {
        "metadata.name": lambda: metadata.get("name"),
        "metadata.namespace": lambda: metadata.get("namespace"),
        "metadata.uid": lambda: metadata.get("uid"),
        "spec.nodeName": lambda: spec.get("nodeName"),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName"),
        "status.hostIP": lambda: status.get("hostIP"),
        "status.podIP": lambda: status.get("podIP"),
        "status.podIPs": lambda: ",".join(item["ip"] for item in status.get("podIPs") or []),
        "metadata.labels": lambda: format_downward_map(metadata.get("labels") or {}),
        "metadata.annotations": lambda: format_downward_map(metadata.get("annotations") or {}),
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef path {path!r}")
    value = simple[path]()
    return "" if value is None else str(value)


def resource_value(
    container: Mapping[str, Any], reference: Mapping[str, Any], capacity: NodeCapacity
) -> str:
    """Return the value of a ``resourceFieldRef``, rounded up to whole divisors as the kubelet does."""
    from kubernetes.utils.quantity import parse_quantity

    resource = str(reference.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ContainerConfigError(f"unsupported resourceFieldRef resource {resource!r}")
    section = (container.get("resources") or {}).get(kind) or {}
    raw = section.get(name)
    if raw is None and kind == "requests":
        # An unset request defaults to the limit, and without one to nothing.
        raw = ((container.get("resources") or {}).get("limits") or {}).get(name)
    if raw is None:
        amount = capacity.cpu if name == "cpu" else capacity.memory
        if kind == "requests":
            amount = Decimal(0)
    else:
        amount = parse_quantity(raw)
    divisor = parse_quantity(str(reference.get("divisor") or "1"))
    if divisor == 0:
        divisor = Decimal(1)
    return str(math.ceil(amount / divisor))


def expand_references(value: str, defined: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` from ``defined``; unknown references stay as written, ``$$`` becomes ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return defined.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


ObjectReader = Callable[[str, str, str], Mapping[str, Any]]
"""Read an API object: kind (``secrets`` or ``configmaps``), namespace and name."""


def _key_of(
    kind: str,
    reference: Mapping[str, Any],
    namespace: str,
    read: ObjectReader | None,
) -> str | None:
    optional = bool(reference.get("optional"))
    name, key = str(reference.get("name", "")), str(reference.get("key", ""))
    found: Mapping[str, Any] | None = None
    if read is not None:
        try:
            found = read(kind, namespace, name)
        except LookupError:
            found = None
    if found is None:
        if optional:
            return None
        raise ContainerConfigError(f"{kind[:-1]} {namespace}/{name} not found")
    if kind == "secrets" and key in (found.get("data") or {}):
        return base64.b64decode(found["data"][key]).decode("utf-8")
    data = found.get("data") or {}
    if key in data:
        return str(data[key])
    if optional:
        return None
    raise ContainerConfigError(f"key {key!r} not found in {kind[:-1]} {namespace}/{name}")


def container_environment(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    capacity: NodeCapacity,
    read_object: ObjectReader | None = None,
) -> dict[str, str]:
    """Return the environment the kubelet would give ``container`` of the stored ``pod``.

    ``envFrom`` is not read: Numaflow's vertex pods and the webhook's patch do not use it.
    """
    namespace = str((pod.get("metadata") or {}).get("namespace", ""))
    environment: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = entry["name"]
        source = entry.get("valueFrom")
        if source is None:
            environment[name] = expand_references(str(entry.get("value", "")), environment)
        elif "fieldRef" in source:
            environment[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            environment[name] = resource_value(container, source["resourceFieldRef"], capacity)
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind = "secrets" if "secretKeyRef" in source else "configmaps"
            value = _key_of(kind, source.get("secretKeyRef") or source["configMapKeyRef"], namespace, read_object)
            if value is not None:
                environment[name] = value
        else:
            raise ContainerConfigError(f"unsupported valueFrom of variable {name}: {sorted(source)}")
    return environment


def write_downward_volumes(
    pod: Mapping[str, Any], container: Mapping[str, Any], root: Path
) -> dict[str, Path]:
    """Write the container's downwardAPI volumes under ``root``; return mount path to folder.

    Other volume types are left out: the UDF processes of the demo read only
    the annotations file.
    """
    volumes = {volume["name"]: volume for volume in (pod.get("spec") or {}).get("volumes") or []}
    mounted: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        downward = volume.get("downwardAPI")
        if downward is None:
            continue
        folder = root / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for item in downward.get("items") or []:
            if "fieldRef" not in item:
                continue
            target = folder / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(field_value(pod, item["fieldRef"]["fieldPath"]), encoding="utf-8")
        mounted[mount["mountPath"].rstrip("/")] = folder
    return mounted


def remap_mount_paths(environment: Mapping[str, str], mounted: Mapping[str, Path]) -> dict[str, str]:
    """Rewrite values that point into a mounted volume so they point into its folder."""
    remapped = dict(environment)
    for name, value in environment.items():
        for mount_path, folder in mounted.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                remapped[name] = str(folder) + value[len(mount_path) :]
    return remapped
