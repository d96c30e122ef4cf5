"""Read and extend the Multus network-selection annotation, ``k8s.v1.cni.cncf.io/networks``.

The annotation has two forms, and Multus v4 accepts both (its
``parsePodNetworkAnnotation``):

- a comma-separated list of ``[<namespace>/]<name>[@<interface>]``, items
  trimmed of surrounding whitespace: ``rdma-net, other/sriov@net2``;
- a JSON list of objects with ``name`` and optional ``namespace`` and
  ``interface``: ``[{"name": "rdma-net", "interface": "net1"}]``.

Multus takes the value as JSON when it contains any of ``[``, ``{`` or ``"``,
and as a comma list otherwise. This module decides the same way. Names and
namespaces must be RFC 1123 labels, and an interface name must have at most 15
characters with no ``/`` and no whitespace, as Multus checks them.

Adding an attachment keeps the existing text as it is and appends to it in the
same form, so attachments written by people or other webhooks keep their
syntax, order and extra JSON keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from numaflow_rdma import jsontext, names

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_JSON_MARKERS = ("[", "{", '"')


class NetworkAnnotationError(ValueError):
    """A network-selection annotation or attachment that Multus would reject."""


@dataclass(frozen=True)
class NetworkSelection:
    """One attachment of the annotation: which NetworkAttachmentDefinition, and as which interface.

    ``namespace`` is None when the attachment names none, which Multus reads
    as the pod's namespace; ``interface`` is None when Multus picks the name.
    """

    name: str
    namespace: str | None = None
    interface: str | None = None

    def resolved_namespace(self, pod_namespace: str) -> str:
        """Return the namespace Multus looks the NetworkAttachmentDefinition up in."""
        return self.namespace or pod_namespace

    def same_network(self, other: NetworkSelection, pod_namespace: str) -> bool:
        """Tell whether both attachments name the same NetworkAttachmentDefinition."""
        return self.name == other.name and self.resolved_namespace(
            pod_namespace
        ) == other.resolved_namespace(pod_namespace)

    def comma_form(self) -> str:
        """Format as an item of the comma-separated form."""
        text = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{text}@{self.interface}" if self.interface else text

    def json_form(self) -> dict[str, str]:
        """Format as an element of the JSON form."""
        element = {"name": self.name}
        if self.namespace:
            element["namespace"] = self.namespace
        if self.interface:
            element["interface"] = self.interface
        return element


def validate_interface(interface: str) -> str:
    """Return ``interface`` if Multus accepts it as an interface name; raise NetworkAnnotationError."""
    try:
        return names.validate_interface(interface)
    except names.InvalidNameError as error:
        raise NetworkAnnotationError(str(error)) from None


def _validate_label(value: str, what: str, item: str) -> str:
    if not _LABEL.fullmatch(value):
        raise NetworkAnnotationError(
            f"invalid {what} {value!r} in network attachment {item!r}: use lower-case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def parse_selection(item: str) -> NetworkSelection:
    """Parse one ``[<namespace>/]<name>[@<interface>]`` item of the comma-separated form."""
    text = item.strip()
    namespace: str | None = None
    if "/" in text:
        namespace, text = text.split("/", 1)
        _validate_label(namespace, "namespace", item)
    name, separator, interface = text.partition("@")
    _validate_label(name, "network name", item)
    if not separator:
        return NetworkSelection(name=name, namespace=namespace)
    return NetworkSelection(name=name, namespace=namespace, interface=validate_interface(interface))


def _parse_json_element(element: object, index: int) -> NetworkSelection:
    if not isinstance(element, dict):
        raise NetworkAnnotationError(
            f"invalid network attachment #{index + 1}: expected a JSON object, got {element!r}"
        )
    name = element.get("name")
    if not isinstance(name, str) or not name:
        raise NetworkAnnotationError(f"invalid network attachment #{index + 1}: 'name' is missing")
    namespace = element.get("namespace") or None
    # Multus before 3.2 called the interface "interfaceRequest" and still reads it.
    interface = element.get("interface") or element.get("interfaceRequest") or None
    for key, value in (("namespace", namespace), ("interface", interface)):
        if value is not None and not isinstance(value, str):
            raise NetworkAnnotationError(
                f"invalid network attachment #{index + 1}: {key!r} must be a string, got {value!r}"
            )
    item = json.dumps(element, sort_keys=True)
    _validate_label(name, "network name", item)
    if namespace is not None:
        _validate_label(namespace, "namespace", item)
    return NetworkSelection(
        name=name,
        namespace=namespace,
        interface=validate_interface(interface) if interface is not None else None,
    )


def is_json_form(value: str) -> bool:
    """Tell whether Multus reads ``value`` as the JSON form."""
    return any(marker in value for marker in _JSON_MARKERS)


def parse_networks(value: str | None) -> list[NetworkSelection]:
    """Parse the annotation's value into its attachments, in order.

    An absent or blank value has none. Raises NetworkAnnotationError for a
    value Multus would reject, naming the attachment at fault.
    """
    if value is None or not value.strip():
        return []
    if is_json_form(value):
        try:
            elements = jsontext.loads(value)
        except ValueError as error:
            raise NetworkAnnotationError(f"invalid JSON network list: {error}") from error
        if not isinstance(elements, list):
            raise NetworkAnnotationError(
                f"invalid JSON network list: expected a list, got {type(elements).__name__}"
            )
        return [_parse_json_element(element, index) for index, element in enumerate(elements)]
    return [parse_selection(item) for item in value.split(",")]


def effective_interfaces(selections: Sequence[NetworkSelection]) -> list[str]:
    """Return the interface name each attachment gets: its own, or ``net<position>`` (from 1).

    NOTE: this assumes the annotation's attachments are all that Multus adds
    after the cluster network. A Multus configuration with ``defaultNetworks``
    adds attachments before them and shifts the default names.
    """
    return [
        selection.interface or f"net{position}"
        for position, selection in enumerate(selections, start=1)
    ]


@dataclass(frozen=True)
class NetworkRef:
    """A NetworkAttachmentDefinition, by namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_network_ref(text: str, default_namespace: str) -> NetworkRef:
    """Parse ``namespace/name``, or ``name`` in ``default_namespace``."""
    namespace, separator, name = text.strip().rpartition("/")
    if separator and not namespace:
        raise NetworkAnnotationError(f"invalid network {text!r}: the namespace before '/' is empty")
    if "/" in namespace:
        raise NetworkAnnotationError(f"invalid network {text!r}: expected namespace/name")
    return NetworkRef(
        namespace=_validate_label(namespace or default_namespace, "namespace", text),
        name=_validate_label(name, "network name", text),
    )


@dataclass(frozen=True)
class NetworksUpdate:
    """The annotation's value with the RDMA network in it, and the interface that network gets."""

    value: str
    interface: str
    changed: bool
    """False when the value already selects the network and is kept as it is."""


def _free_interface(preferred: str, taken: set[str], position: int) -> str:
    if preferred not in taken:
        return preferred
    # Then the name Multus gives the new last attachment, then the first free netN.
    candidates = [
        f"net{position}",
        *(f"net{number}" for number in range(1, position + len(taken) + 2)),
    ]
    return next(candidate for candidate in candidates if candidate not in taken)


def add_network(
    value: str | None, network: NetworkRef, interface: str, pod_namespace: str
) -> NetworksUpdate:
    """Return the annotation's value with ``network`` selected once, and its interface name.

    A value that already selects ``network`` is kept, and the interface is the
    one Multus gives that attachment. Otherwise the network is appended in the
    value's own form with an explicit interface: ``interface``, or a free
    ``net<N>`` when another attachment already has that name. Raises
    NetworkAnnotationError for a value Multus would reject.
    """
    validate_interface(interface)
    selections = parse_networks(value)
    interfaces = effective_interfaces(selections)
    wanted = NetworkSelection(name=network.name, namespace=network.namespace)

    position = find_selection(selections, wanted, pod_namespace)
    if position is not None:
        return NetworksUpdate(value=value or "", interface=interfaces[position], changed=False)

    chosen = _free_interface(interface, set(interfaces), len(interfaces) + 1)
    selection = NetworkSelection(name=network.name, namespace=network.namespace, interface=chosen)
    return NetworksUpdate(value=append_selection(value, selection), interface=chosen, changed=True)


def find_selection(
    selections: Sequence[NetworkSelection], wanted: NetworkSelection, pod_namespace: str
) -> int | None:
    """Return the position of the first attachment of the same network as ``wanted``, or None."""
    for position, selection in enumerate(selections):
        if selection.same_network(wanted, pod_namespace):
            return position
    return None


def append_selection(value: str | None, selection: NetworkSelection) -> str:
    """Return the annotation's value with ``selection`` appended in the value's own form.

    The existing text is kept byte for byte. An absent or blank value becomes
    the comma form.
    """
    if value is None or not value.strip():
        return selection.comma_form()
    if not is_json_form(value):
        return f"{value.rstrip()},{selection.comma_form()}"

    # Insert before the closing bracket, so every existing element keeps its text.
    element = json.dumps(selection.json_form(), separators=(",", ":"))
    body = value.rstrip()
    if not body.endswith("]"):
        raise NetworkAnnotationError(
            f"invalid JSON network list {value!r}: it does not end with ']'"
        )
    inner = body[:-1].rstrip()
    separator = "" if inner.endswith("[") else ","
    return f"{inner}{separator}{element}]"
