"""Names shared by the webhook, dnssync and the transport.

The webhook writes environment variables and annotations that the transport
reads, dnssync writes etcd keys that CoreDNS turns into the DNS names the
transport resolves. Each of those names is built here, once, and validated
where it is built, so the three components cannot drift apart.

DNS names follow RFC 1123: labels of letters, digits and hyphens, at most 63
characters, not starting or ending with a hyphen; whole names of at most 253
characters. DNS is case-insensitive and CoreDNS lowercases the query before
it looks up etcd, so every name and key built here is lower case.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Opt-in and opt-out.
INJECT_LABEL = "numaflow-rdma/inject"
INJECT_LABEL_ENABLED = "enabled"
INJECT_ANNOTATION = "numaflow-rdma/inject"
INJECT_ANNOTATION_DISABLED = "false"

# The annotation in which the webhook records the injector version and what
# it injected.
INJECTED_ANNOTATION = "numaflow-rdma/injected"

# DNS and etcd defaults.
DEFAULT_ZONE = "vertexdomain.local"
DEFAULT_ETCD_PREFIX = "/skydns"
DEFAULT_TRANSPORT_PORT = 7470
DEFAULT_RECORD_TTL = 30
DEFAULT_INTERFACE = "net1"

# The field of a record value that names the dnssync instance that owns it.
# CoreDNS ignores JSON fields it does not know.
RECORD_OWNER_FIELD = "owner"

# Numaflow's labels on pipeline vertex pods.
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PIPELINE_NAME = "numaflow.numaproj.io/pipeline-name"
LABEL_VERTEX_NAME = "numaflow.numaproj.io/vertex-name"
VERTEX_POD_LABELS: Mapping[str, str] = {
    LABEL_PART_OF: "numaflow",
    LABEL_MANAGED_BY: "vertex-controller",
    LABEL_COMPONENT: "vertex",
}
NUMAFLOW_ANNOTATION_PREFIX = "numaflow.numaproj.io/"
NUMAFLOW_VERTEX_OBJECT_ENV = "NUMAFLOW_VERTEX_OBJECT"
NUMAFLOW_CONTAINER = "numa"
# Containers that run user code, in the order they are looked for.
USER_CONTAINER_NAMES: tuple[str, ...] = ("udf", "udsink", "udsource", "transformer")

# Multus annotations.
MULTUS_NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
MULTUS_NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
MULTUS_LEGACY_NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/networks-status"
MULTUS_RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"

# Environment variables the webhook sets on the user containers.
ENV_VERTEX = "NUMAFLOW_RDMA_VERTEX"
"""The DNS name of the pod's own vertex."""
ENV_DESTINATIONS = "NUMAFLOW_RDMA_DESTINATIONS"
"""The downstream vertices, as comma-separated ``vertex=dns-name`` pairs."""
ENV_NETWORK = "NUMAFLOW_RDMA_NETWORK"
"""The RDMA network attachment, ``namespace/name``, as it appears in network-status."""
ENV_INTERFACE = "NUMAFLOW_RDMA_INTERFACE"
"""The name of the RDMA network interface inside the pod."""
ENV_PORT = "NUMAFLOW_RDMA_PORT"
"""The transport port."""
ENV_ANNOTATIONS_FILE = "NUMAFLOW_RDMA_ANNOTATIONS_FILE"
"""The path of the downward-API file that contains the pod's annotations."""
ALL_ENV: tuple[str, ...] = (
    ENV_VERTEX,
    ENV_DESTINATIONS,
    ENV_NETWORK,
    ENV_INTERFACE,
    ENV_PORT,
    ENV_ANNOTATIONS_FILE,
)

# Environment variables the transport reads that the webhook does not set:
# the pipeline owner sets them on the UDF container, through the Pipeline's
# container spec, typically from a Kubernetes Secret.
ENV_SECRET = "NUMAFLOW_RDMA_SECRET"
"""The shared secret that senders and receivers of a pipeline prove in the handshake."""
ENV_SECRET_FILE = "NUMAFLOW_RDMA_SECRET_FILE"
"""The path of a file that contains the shared secret, used when ENV_SECRET is unset."""
ENV_BACKEND = "NUMAFLOW_RDMA_BACKEND"
"""The transport backend: ``auto`` (the default), ``ucx`` or ``tcp``."""

# The downward-API volume that exposes the pod's annotations.
PODINFO_VOLUME = "numaflow-rdma-podinfo"
PODINFO_MOUNT_PATH = "/etc/numaflow-rdma/podinfo"
PODINFO_ANNOTATIONS_FILE = f"{PODINFO_MOUNT_PATH}/annotations"

MAX_LABEL_LENGTH = 63
MAX_NAME_LENGTH = 253
# Characters of the SHA-256 digest appended to a shortened pod label.
_DIGEST_LENGTH = 10

_LABEL_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_INVALID_LABEL_CHARACTERS = re.compile(r"[^a-z0-9-]+")


class InvalidNameError(ValueError):
    """A name or label that is not valid where it is used."""


# Linux IFNAMSIZ is 16 including the terminating NUL byte.
MAX_INTERFACE_LENGTH = 15
_INTERFACE_FORBIDDEN = re.compile(r"[\s/]")


def validate_interface(interface: str) -> str:
    """Return ``interface`` if Linux and Multus accept it as a network interface name."""
    if not interface:
        raise InvalidNameError("invalid interface name: it is empty")
    if len(interface) > MAX_INTERFACE_LENGTH:
        raise InvalidNameError(
            f"invalid interface name {interface!r}: {len(interface)} characters, "
            f"at most {MAX_INTERFACE_LENGTH} are allowed"
        )
    if _INTERFACE_FORBIDDEN.search(interface):
        raise InvalidNameError(
            f"invalid interface name {interface!r}: it must not contain '/' or whitespace"
        )
    return interface


def validate_label(value: str, *, what: str = "DNS label") -> str:
    """Return ``value`` in lower case if it is a valid RFC 1123 DNS label.

    Raises InvalidNameError naming ``what`` and the rule that failed.
    """
    if not isinstance(value, str):
        raise InvalidNameError(f"invalid {what} {value!r}: expected a string")
    label = value.lower()
    if not label:
        raise InvalidNameError(f"invalid {what}: it is empty")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidNameError(
            f"invalid {what} {value!r}: {len(label)} characters, "
            f"at most {MAX_LABEL_LENGTH} are allowed"
        )
    if not _LABEL_PATTERN.fullmatch(label):
        raise InvalidNameError(
            f"invalid {what} {value!r}: use only letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return label


def validate_zone(zone: str) -> str:
    """Return ``zone`` normalized: lower case, no trailing dot, every label valid."""
    if not isinstance(zone, str) or not zone.strip("."):
        raise InvalidNameError(f"invalid DNS zone {zone!r}: expected a name such as {DEFAULT_ZONE}")
    normalized = zone.lower().rstrip(".")
    for label in normalized.split("."):
        try:
            validate_label(label)
        except InvalidNameError as error:
            raise InvalidNameError(f"invalid DNS zone {zone!r}: {error}") from None
    if len(normalized) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"invalid DNS zone {zone!r}: {len(normalized)} characters, "
            f"at most {MAX_NAME_LENGTH} are allowed"
        )
    return normalized


def _check_name_length(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"DNS name {name!r} has {len(name)} characters, at most {MAX_NAME_LENGTH} are "
            "allowed: shorten the vertex, pipeline or namespace name, or the zone"
        )
    return name


def vertex_dns_name(vertex: str, pipeline: str, namespace: str, zone: str = DEFAULT_ZONE) -> str:
    """Build ``<vertex>.<pipeline>.<namespace>.<zone>``, the name that resolves to a vertex's pods."""
    labels = [
        validate_label(vertex, what="vertex name"),
        validate_label(pipeline, what="pipeline name"),
        validate_label(namespace, what="namespace"),
    ]
    return _check_name_length(".".join([*labels, validate_zone(zone)]))


def pod_label(pod_name: str) -> str:
    """Return a DNS label that stands for one pod, stable for a given pod name.

    A pod name that is already a valid label is used as it is. Longer names,
    and names with dots or other characters a label cannot hold, become a
    readable prefix plus a hyphen and the first ten hex digits of the SHA-256
    of the whole name, so two pods never share a label by truncation.
    """
    if not isinstance(pod_name, str) or not pod_name:
        raise InvalidNameError(f"invalid pod name {pod_name!r}: expected a non-empty string")
    lowered = pod_name.lower()
    if lowered == pod_name and _LABEL_PATTERN.fullmatch(lowered):
        return lowered
    digest = hashlib.sha256(pod_name.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    readable = _INVALID_LABEL_CHARACTERS.sub("-", lowered).strip("-")
    readable = readable[: MAX_LABEL_LENGTH - _DIGEST_LENGTH - 1].rstrip("-")
    return f"{readable}-{digest}" if readable else digest


def pod_dns_name(pod_name: str, vertex_name: str) -> str:
    """Build the DNS name of one pod: its label under the vertex's DNS name."""
    return _check_name_length(f"{pod_label(pod_name)}.{vertex_name}")


def _validate_prefix(prefix: str) -> str:
    if not prefix.startswith("/") or prefix.rstrip("/") == "":
        raise InvalidNameError(
            f"invalid etcd prefix {prefix!r}: expected an absolute path such as {DEFAULT_ETCD_PREFIX}"
        )
    return prefix.rstrip("/")


def etcd_key_for_name(dns_name: str, prefix: str = DEFAULT_ETCD_PREFIX) -> str:
    """Return the etcd key the CoreDNS etcd plugin looks up for ``dns_name``: labels reversed."""
    labels = dns_name.lower().rstrip(".").split(".")
    return "/".join([_validate_prefix(prefix), *reversed(labels)])


def vertex_etcd_prefix(
    vertex: str,
    pipeline: str,
    namespace: str,
    zone: str = DEFAULT_ZONE,
    prefix: str = DEFAULT_ETCD_PREFIX,
) -> str:
    """Return the etcd key under which every pod record of a vertex sits, ending in ``/``."""
    return etcd_key_for_name(vertex_dns_name(vertex, pipeline, namespace, zone), prefix) + "/"


def zone_etcd_prefix(zone: str = DEFAULT_ZONE, prefix: str = DEFAULT_ETCD_PREFIX) -> str:
    """Return the etcd key under which every record of the zone sits, ending in ``/``."""
    return etcd_key_for_name(validate_zone(zone), prefix) + "/"


def pod_etcd_key(
    pod_name: str,
    vertex: str,
    pipeline: str,
    namespace: str,
    zone: str = DEFAULT_ZONE,
    prefix: str = DEFAULT_ETCD_PREFIX,
) -> str:
    """Build the etcd key of one pod's record.

    ``<prefix>/<zone labels reversed>/<namespace>/<pipeline>/<vertex>/<pod label>``
    """
    return vertex_etcd_prefix(vertex, pipeline, namespace, zone, prefix) + pod_label(pod_name)


@dataclass(frozen=True)
class RecordKey:
    """The parts of a pod record's etcd key."""

    namespace: str
    pipeline: str
    vertex: str
    pod_label: str


def parse_pod_etcd_key(
    key: str, zone: str = DEFAULT_ZONE, prefix: str = DEFAULT_ETCD_PREFIX
) -> RecordKey | None:
    """Split a pod record's key into its parts; None if it is not shaped like one."""
    base = zone_etcd_prefix(zone, prefix)
    if not key.startswith(base):
        return None
    parts = key[len(base) :].split("/")
    if len(parts) != 4 or not all(_LABEL_PATTERN.fullmatch(part) for part in parts):
        return None
    namespace, pipeline, vertex, label = parts
    return RecordKey(namespace=namespace, pipeline=pipeline, vertex=vertex, pod_label=label)


def normalize_ip(address: str) -> str:
    """Return the canonical text of an IPv4 or IPv6 address; raise InvalidNameError otherwise."""
    try:
        return str(ipaddress.ip_address(address.strip()))
    except (ValueError, AttributeError) as error:
        raise InvalidNameError(f"invalid IP address {address!r}: {error}") from error


def record_value(host: str, port: int, ttl: int, owner: str) -> str:
    """Build a record value in the CoreDNS etcd plugin's JSON, with the owner field.

    An IPv4 ``host`` answers A queries and an IPv6 one AAAA queries; both answer
    SRV with ``port``. Keys are sorted so equal records are equal strings.
    """
    if not 0 < port < 65536:
        raise InvalidNameError(f"invalid port {port!r}: expected 1-65535")
    if ttl <= 0:
        raise InvalidNameError(f"invalid TTL {ttl!r}: expected a positive number of seconds")
    if not owner:
        raise InvalidNameError("invalid record owner: it is empty")
    value = {"host": normalize_ip(host), "port": port, "ttl": ttl, RECORD_OWNER_FIELD: owner}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def format_destinations(destinations: Mapping[str, str]) -> str:
    """Format downstream vertices as ``vertex=dns-name`` pairs joined by commas, sorted by vertex."""
    return ",".join(f"{vertex}={name}" for vertex, name in sorted(destinations.items()))


def parse_destinations(value: str) -> dict[str, str]:
    """Parse the ``NUMAFLOW_RDMA_DESTINATIONS`` format back into a vertex-to-name mapping."""
    destinations: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        vertex, separator, name = item.partition("=")
        if not separator or not vertex.strip() or not name.strip():
            raise InvalidNameError(
                f"invalid {ENV_DESTINATIONS} entry {item!r}: expected vertex=dns-name, "
                f"for example infer=infer.video.default.{DEFAULT_ZONE}"
            )
        destinations[vertex.strip()] = name.strip().rstrip(".")
    return destinations


def is_vertex_pod_labels(labels: Mapping[str, str] | None) -> bool:
    """Tell whether labels mark a Numaflow pipeline vertex pod (not MonoVertex, daemon or ISB)."""
    labels = labels or {}
    return all(labels.get(key) == value for key, value in VERTEX_POD_LABELS.items())


def is_opted_in_namespace(labels: Mapping[str, str] | None) -> bool:
    """Tell whether a namespace's labels opt it in to injection and DNS registration."""
    return (labels or {}).get(INJECT_LABEL) == INJECT_LABEL_ENABLED


def is_opted_out_pod(annotations: Mapping[str, str] | None) -> bool:
    """Tell whether a pod's annotations opt it out of injection and DNS registration."""
    value = (annotations or {}).get(INJECT_ANNOTATION, "")
    return value.strip().lower() == INJECT_ANNOTATION_DISABLED
