"""The RDMA-network address of a pod, read from the Multus network-status annotation.

Multus writes ``k8s.v1.cni.cncf.io/network-status`` through the pods/status
subresource during sandbox creation, so the annotation is missing when the
pod is created and appears before the pod is Ready. It is rewritten, maybe
with another address, when the sandbox is recreated, and it is never cleared
when the pod is deleted. Multus before v4 wrote ``networks-status`` instead,
so that name is read when the current one is missing.

The value is a JSON list with one entry per attachment. A secondary network's
entry is named ``<namespace>/<NetworkAttachmentDefinition>`` and lists its
addresses in ``ips``, usually bare (``198.18.0.7``) but CIDR notation
(``198.18.0.7/15``) is accepted too. The cluster network's entry carries
``"default": true`` and is never used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from numaflow_rdma import jsontext, names

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetworkStatusError(ValueError):
    """A network-status annotation that cannot give the pod's RDMA address."""

    reason = "InvalidNetworkStatus"


class NetworkNotAttachedError(NetworkStatusError):
    """A well-formed network-status without an entry for the RDMA network."""

    reason = "RdmaNetworkMissing"


@dataclass(frozen=True)
class NetworkSelector:
    """Which network-status entry is the RDMA network.

    With ``network`` set, entries are matched by name, and ``interface``
    only picks among several attachments of that network. With ``network``
    empty, entries are matched by interface name.
    """

    network: str = ""
    interface: str = names.DEFAULT_INTERFACE

    def network_name(self, pod_namespace: str) -> str:
        """Return the entry name to look for: ``network`` with the pod's namespace added if it has none."""
        return self.network if "/" in self.network else f"{pod_namespace}/{self.network}"

    def describe(self, pod_namespace: str) -> str:
        """Describe the selector for messages."""
        if self.network:
            return f"network {self.network_name(pod_namespace)!r}"
        return f"interface {self.interface!r}"


def network_status_entries(annotations: Mapping[str, str] | None) -> list[Mapping[str, Any]] | None:
    """Return the parsed network-status entries, or None when neither annotation is set.

    Raises NetworkStatusError when the value is not a JSON list of objects.
    """
    annotations = annotations or {}
    raw = annotations.get(names.MULTUS_NETWORK_STATUS_ANNOTATION)
    source = names.MULTUS_NETWORK_STATUS_ANNOTATION
    if raw is None:
        raw = annotations.get(names.MULTUS_LEGACY_NETWORK_STATUS_ANNOTATION)
        source = names.MULTUS_LEGACY_NETWORK_STATUS_ANNOTATION
    if raw is None:
        return None
    try:
        entries = jsontext.loads(raw)
    except (TypeError, ValueError) as error:
        raise NetworkStatusError(f"invalid JSON in annotation {source}: {error}") from error
    if not isinstance(entries, list):
        raise NetworkStatusError(
            f"invalid annotation {source}: expected a JSON list, got {type(entries).__name__}"
        )
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise NetworkStatusError(
                f"invalid annotation {source}: entry {index} is a {type(entry).__name__}, "
                "expected an object"
            )
        _check_field(entry, "name", str, source, index, required=True)
        _check_field(entry, "interface", str, source, index)
        _check_field(entry, "default", bool, source, index)
    return entries


def _check_field(
    entry: Mapping[str, Any],
    field: str,
    expected: type,
    source: str,
    index: int,
    *,
    required: bool = False,
) -> None:
    if field not in entry:
        if required:
            raise NetworkStatusError(f"invalid annotation {source}: entry {index} has no {field!r}")
        return
    if not isinstance(entry[field], expected):
        raise NetworkStatusError(
            f"invalid annotation {source}: {field!r} of entry {index} is "
            f"{entry[field]!r}, expected a {expected.__name__}"
        )


def select_entry(
    entries: Sequence[Mapping[str, Any]], pod_namespace: str, selector: NetworkSelector
) -> Mapping[str, Any]:
    """Return the entry of the RDMA network; raise NetworkNotAttachedError when there is none."""
    candidates = [entry for entry in entries if not entry.get("default", False)]
    if selector.network:
        wanted = selector.network_name(pod_namespace)
        bare = wanted.split("/", 1)[1]
        # Multus before 3.x named an entry by the bare NetworkAttachmentDefinition name.
        candidates = [entry for entry in candidates if entry["name"] in (wanted, bare)]
        # The same network attached twice gives two entries; the interface picks one.
        by_interface = [
            entry for entry in candidates if entry.get("interface") == selector.interface
        ]
        candidates = by_interface or candidates
    else:
        candidates = [entry for entry in candidates if entry.get("interface") == selector.interface]
    if not candidates:
        present = ", ".join(repr(entry["name"]) for entry in entries) or "none"
        raise NetworkNotAttachedError(
            f"network-status has no entry for {selector.describe(pod_namespace)}; "
            f"entries present: {present}"
        )
    return candidates[0]


def entry_addresses(entry: Mapping[str, Any]) -> list[IPAddress]:
    """Return the addresses in an entry's ``ips``; raise NetworkStatusError if there are none."""
    ips = entry.get("ips")
    if ips is None or ips == []:
        raise NetworkStatusError(f"network-status entry {entry['name']!r} has no IPs")
    if not isinstance(ips, list):
        raise NetworkStatusError(
            f"invalid 'ips' of network-status entry {entry['name']!r}: expected a list, got {ips!r}"
        )
    addresses: list[IPAddress] = []
    for item in ips:
        if not isinstance(item, str):
            raise NetworkStatusError(
                f"invalid IP {item!r} in network-status entry {entry['name']!r}: expected a string"
            )
        try:
            addresses.append(ipaddress.ip_interface(item.strip()).ip)
        except ValueError as error:
            raise NetworkStatusError(
                f"invalid IP {item!r} in network-status entry {entry['name']!r}: {error}"
            ) from error
    return addresses


def rdma_address(
    annotations: Mapping[str, str] | None, pod_namespace: str, selector: NetworkSelector
) -> IPAddress | None:
    """Return the pod's address on the RDMA network, or None while Multus has not written it.

    Raises NetworkStatusError (or its subclass NetworkNotAttachedError) when
    the annotation is present but gives no usable address.
    """
    entries = network_status_entries(annotations)
    if entries is None:
        return None
    addresses = entry_addresses(select_entry(entries, pod_namespace, selector))
    # NOTE: one etcd key holds one address, so of a dual-stack attachment only
    # the first listed address is published.
    return addresses[0]
