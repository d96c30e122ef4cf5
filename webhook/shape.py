"""Check the JSON types of the fields the webhook reads, before any rule reads them.

The API server decodes a pod into its Go types before it calls the admission
webhooks and sends it re-encoded, so a pod from the API server has the types
below. Semantic validation (required fields, unique names) runs only after
mutating admission, so values may still be empty or repeated, and the rules
handle that. A body from anywhere else can have any shape, and so can the
Vertex object that Numaflow passes as a base64 string. A rule that met a list
where it reads an object would raise, so the types are checked once here and
every rule relies on them.

Only the fields the webhook reads are checked, others may hold anything. A
null field counts as absent, as Kubernetes decodes it; list items and map
values must not be null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ShapeError(ValueError):
    """A JSON value of another type than the webhook reads there; the message names its path."""


@dataclass(frozen=True)
class Fields:
    """A JSON object whose listed fields have the given shapes."""

    fields: Mapping[str, Shape]


@dataclass(frozen=True)
class ListOf:
    """A JSON array whose items have one shape."""

    item: Shape


@dataclass(frozen=True)
class MapOf:
    """A JSON object used as a map: any keys, values of one shape."""

    value: Shape


@dataclass(frozen=True)
class Scalar:
    """A JSON string, number or boolean, as the Python types ``json`` decodes it into."""

    types: tuple[type, ...]
    name: str


Shape = Fields | ListOf | MapOf | Scalar

STRING = Scalar((str,), "string")
INTEGER = Scalar((int,), "integer")
BOOLEAN = Scalar((bool,), "boolean")
# Kubernetes writes quantities as strings; a number is accepted as its decoder does.
QUANTITY = Scalar((str, int, float), "quantity")
ANY_OBJECT = Fields({})


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(shape: Shape) -> str:
    if isinstance(shape, Scalar):
        return f"a {shape.name}"
    if isinstance(shape, ListOf):
        return "an array"
    return "an object"


def _matches(value: Any, shape: Shape) -> bool:
    if isinstance(shape, Scalar):
        # bool is a subclass of int in Python, but not a number in JSON.
        if isinstance(value, bool):
            return bool in shape.types
        return isinstance(value, shape.types)
    if isinstance(shape, ListOf):
        return isinstance(value, list)
    return isinstance(value, dict)


def check_shape(value: Any, shape: Shape, path: str) -> None:
    """Raise ShapeError if ``value``, found at ``path``, does not have ``shape``.

    ``value`` may be None, which stands for an absent field.
    """
    if value is None:
        return
    # An explicit stack of (value, shape, path) keeps a long list from costing recursion.
    stack: list[tuple[Any, Shape, str]] = [(value, shape, path)]
    while stack:
        item, item_shape, item_path = stack.pop()
        if not _matches(item, item_shape):
            raise ShapeError(f"{item_path} is {_type_name(item)}, expected {_expected(item_shape)}")
        if isinstance(item_shape, Fields):
            for name, field_shape in item_shape.fields.items():
                field = item.get(name)
                if field is not None:
                    stack.append((field, field_shape, f"{item_path}.{name}"))
        elif isinstance(item_shape, ListOf):
            stack.extend(
                (element, item_shape.item, f"{item_path}[{index}]")
                for index, element in enumerate(item)
            )
        elif isinstance(item_shape, MapOf):
            stack.extend(
                (element, item_shape.value, f"{item_path}[{key!r}]")
                for key, element in item.items()
            )


CAPABILITIES = Fields({"add": ListOf(STRING), "drop": ListOf(STRING)})

CONTAINER = Fields(
    {
        "name": STRING,
        "env": ListOf(Fields({"name": STRING, "value": STRING, "valueFrom": ANY_OBJECT})),
        "resources": Fields({"requests": MapOf(QUANTITY), "limits": MapOf(QUANTITY)}),
        "securityContext": Fields(
            {"runAsUser": INTEGER, "runAsNonRoot": BOOLEAN, "capabilities": CAPABILITIES}
        ),
        "volumeMounts": ListOf(Fields({"name": STRING, "mountPath": STRING})),
    }
)

VOLUME = Fields(
    {
        "name": STRING,
        "downwardAPI": Fields(
            {"items": ListOf(Fields({"path": STRING, "fieldRef": Fields({"fieldPath": STRING})}))}
        ),
    }
)

POD_METADATA = Fields(
    {
        "name": STRING,
        "generateName": STRING,
        "namespace": STRING,
        "labels": MapOf(STRING),
        "annotations": MapOf(STRING),
    }
)
"""The pod's ``metadata``, which decides whether the webhook handles the pod at all."""

POD_SPEC = Fields(
    {
        "containers": ListOf(CONTAINER),
        "initContainers": ListOf(CONTAINER),
        "securityContext": Fields({"runAsUser": INTEGER, "runAsNonRoot": BOOLEAN}),
        "volumes": ListOf(VOLUME),
    }
)
"""The pod's ``spec``: the containers and volumes the patch is built from."""

REVIEW_REQUEST = Fields(
    {
        "uid": STRING,
        "kind": Fields({"group": STRING, "version": STRING, "kind": STRING}),
        "operation": STRING,
        "namespace": STRING,
        "subResource": STRING,
        "dryRun": BOOLEAN,
        "object": Fields({"metadata": POD_METADATA}),
    }
)
"""The ``request`` of an AdmissionReview, with the object's metadata that every request reads."""

VERTEX_OBJECT = Fields(
    {
        "spec": Fields(
            {"name": STRING, "pipelineName": STRING, "toEdges": ListOf(Fields({"to": STRING}))}
        )
    }
)
"""The fields of a Numaflow Vertex object that name the vertex and its downstream vertices."""
