"""The settings the webhook injects into a UDF container, read back.

The webhook sets ``NUMAFLOW_RDMA_*`` variables (see ``numaflow_rdma.names``)
and mounts the pod's annotations through the downward API. From them the
transport learns its own vertex name (and so its namespace and pipeline),
the DNS names of the downstream vertices, the transport port, and, from the
Multus ``network-status`` annotation, the pod's address on the RDMA network
and whether an RDMA device came with it.
"""

from __future__ import annotations

import ast
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.dnssync.addresses import (
    NetworkSelector,
    NetworkStatusError,
    entry_addresses,
    network_status_entries,
    select_entry,
)
from numaflow_rdma.transport.errors import TransportConfigError
from numaflow_rdma.transport.handshake import Identity

# The folder in which Linux exposes RDMA devices to a container that was given one.
INFINIBAND_DEVICE_DIR = Path("/dev/infiniband")


@dataclass(frozen=True, slots=True)
class VertexName:
    """The parts of ``<vertex>.<pipeline>.<namespace>.<zone>``."""

    vertex: str
    pipeline: str
    namespace: str
    zone: str

    @property
    def full(self) -> str:
        """Return the whole DNS name."""
        return f"{self.vertex}.{self.pipeline}.{self.namespace}.{self.zone}"


def parse_vertex_name(name: str) -> VertexName:
    """Split a vertex DNS name; raise TransportConfigError if it has fewer than four labels."""
    labels = name.strip().rstrip(".").lower().split(".")
    if len(labels) < 4 or not all(labels):
        raise TransportConfigError(
            f"invalid vertex DNS name {name!r}: expected <vertex>.<pipeline>.<namespace>.<zone>, "
            f"for example infer.video.default.{names.DEFAULT_ZONE}"
        )
    return VertexName(labels[0], labels[1], labels[2], ".".join(labels[3:]))


@dataclass(frozen=True, slots=True)
class RdmaAttachment:
    """The pod's attachment to the RDMA network, from network-status."""

    address: str
    interface: str | None
    device: str | None
    """The RDMA device Multus reported (``device-info``), e.g. ``mlx5_3``, or None."""


@dataclass(frozen=True, slots=True)
class PodEnvironment:
    """The transport's settings from the UDF container's environment."""

    vertex_name: VertexName | None
    destinations: dict[str, str] = field(default_factory=dict)
    network: str = ""
    interface: str = ""
    port: int = names.DEFAULT_TRANSPORT_PORT
    annotations_file: str = ""
    secret: bytes | None = None
    backend: str | None = None

    def identity(self, name: str | None = None) -> Identity:
        """Return this pod's identity: its pipeline, and ``name`` or the host name for logs."""
        if self.vertex_name is None:
            raise TransportConfigError(
                f"${names.ENV_VERTEX} is not set, so the pipeline of this pod is unknown; "
                "is the namespace labelled for injection? Outside Kubernetes, pass "
                "namespace= and pipeline= explicitly"
            )
        own = name or f"{self.vertex_name.vertex}/{socket.gethostname()}"
        return Identity(self.vertex_name.namespace, self.vertex_name.pipeline, own)

    def destination(self, vertex: str | None) -> str:
        """Return the DNS name of downstream ``vertex``; None picks the only destination."""
        if vertex is None:
            if len(self.destinations) == 1:
                return next(iter(self.destinations.values()))
            listed = ", ".join(sorted(self.destinations)) or "none"
            raise TransportConfigError(
                f"name the destination vertex: ${names.ENV_DESTINATIONS} lists {listed}"
            )
        if vertex in self.destinations:
            return self.destinations[vertex]
        if "." in vertex:
            return vertex
        listed = ", ".join(sorted(self.destinations)) or "none"
        raise TransportConfigError(
            f"vertex {vertex!r} is not downstream of this one: ${names.ENV_DESTINATIONS} "
            f"lists {listed}"
        )

    def rdma_attachment(self) -> RdmaAttachment:
        """Return the pod's RDMA address and device from the downward-API annotations file."""
        if not self.annotations_file:
            raise TransportConfigError(
                f"${names.ENV_ANNOTATIONS_FILE} is not set, so the pod's RDMA address is unknown; "
                "pass host= to listen on a given address"
            )
        annotations = read_annotations(Path(self.annotations_file))
        namespace = self.vertex_name.namespace if self.vertex_name else ""
        selector = NetworkSelector(
            network=self.network, interface=self.interface or names.DEFAULT_INTERFACE
        )
        try:
            entries = network_status_entries(annotations)
            if entries is None:
                raise TransportConfigError(
                    f"{self.annotations_file} has no {names.MULTUS_NETWORK_STATUS_ANNOTATION} "
                    "annotation yet; Multus writes it when the pod's network is set up"
                )
            entry = select_entry(entries, namespace, selector)
            address = str(entry_addresses(entry)[0])
        except NetworkStatusError as error:
            raise TransportConfigError(f"cannot find the pod's RDMA address: {error}") from error
        interface = entry.get("interface")
        return RdmaAttachment(
            address=address,
            interface=interface if isinstance(interface, str) else None,
            device=network_status_rdma_device(entry),
        )


def read_environment(environ: Mapping[str, str] | None = None) -> PodEnvironment:
    """Read the transport's variables; raise TransportConfigError on an invalid value."""
    environ = os.environ if environ is None else environ
    vertex = environ.get(names.ENV_VERTEX, "").strip()
    port_text = environ.get(names.ENV_PORT, "").strip()
    try:
        port = int(port_text) if port_text else names.DEFAULT_TRANSPORT_PORT
    except ValueError:
        raise TransportConfigError(
            f"invalid ${names.ENV_PORT} {port_text!r}: expected a port number"
        ) from None
    if not 0 < port < 65536:
        raise TransportConfigError(f"invalid ${names.ENV_PORT} {port}: expected 1-65535")
    try:
        destinations = names.parse_destinations(environ.get(names.ENV_DESTINATIONS, ""))
    except names.InvalidNameError as error:
        raise TransportConfigError(str(error)) from error
    return PodEnvironment(
        vertex_name=parse_vertex_name(vertex) if vertex else None,
        destinations=destinations,
        network=environ.get(names.ENV_NETWORK, "").strip(),
        interface=environ.get(names.ENV_INTERFACE, "").strip(),
        port=port,
        annotations_file=environ.get(names.ENV_ANNOTATIONS_FILE, "").strip(),
        secret=read_secret(environ),
        backend=environ.get(names.ENV_BACKEND, "").strip() or None,
    )


def read_secret(environ: Mapping[str, str]) -> bytes | None:
    """Return the shared secret from ``$NUMAFLOW_RDMA_SECRET`` or the file it names; None if unset."""
    value = environ.get(names.ENV_SECRET)
    if value:
        return value.encode("utf-8")
    path = environ.get(names.ENV_SECRET_FILE, "").strip()
    if not path:
        return None
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as error:
        raise TransportConfigError(
            f"cannot read ${names.ENV_SECRET_FILE} {path}: {error}"
        ) from error
    if not secret:
        raise TransportConfigError(f"${names.ENV_SECRET_FILE} {path} is empty")
    return secret


def read_annotations(path: Path) -> dict[str, str]:
    """Parse a downward-API annotations file: one ``key="Go-quoted value"`` per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TransportConfigError(
            f"cannot read the pod annotations file {path}: {error}"
        ) from error
    annotations: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, separator, quoted = line.partition("=")
        if not separator or not quoted.startswith('"'):
            raise TransportConfigError(f'invalid line {number} in {path}: expected key="value"')
        try:
            # Go's %q escapes are a subset of Python's string literal escapes.
            value = ast.literal_eval(quoted)
        except (ValueError, SyntaxError) as error:
            raise TransportConfigError(
                f"invalid quoted value on line {number} of {path}: {error}"
            ) from error
        if not isinstance(value, str):
            raise TransportConfigError(
                f"invalid value on line {number} of {path}: expected a string"
            )
        annotations[key.strip()] = value
    return annotations


def network_status_rdma_device(entry: Mapping[str, Any]) -> str | None:
    """Return the RDMA device in an entry's ``device-info``, or None when it names none.

    The Kubernetes Network Plumbing device-info specification (v1.1) puts it
    at ``device-info.pci.rdma-device``, which the SR-IOV device plugin fills.
    """
    info = entry.get("device-info")
    if not isinstance(info, dict):
        return None
    pci = info.get("pci")
    if isinstance(pci, dict):
        device = pci.get("rdma-device")
        if isinstance(device, str) and device:
            return device
    return None


def rdma_device(
    attachment: RdmaAttachment | None, device_dir: Path = INFINIBAND_DEVICE_DIR
) -> str | None:
    """Describe the pod's RDMA device for logs, or return None when it has none."""
    if attachment is not None and attachment.device:
        return f"{attachment.device} (network-status device-info)"
    if device_dir.is_dir():
        return str(device_dir)
    return None
