"""Generated AdmissionReview bodies for fuzzing the webhook, and the properties every response keeps.

Two kinds of body come from here:

- ``mutated_reviews``: real Numaflow pods (vertex pods and others, both
  layouts) and hand-made vertex pods, changed at random where the webhook
  reads. The changes hit labels, annotations (the Multus annotation in both
  syntaxes, with junk), the base64 Vertex object, containers, environment,
  volumes, resources, security contexts and the review around the pod.
- ``malformed_bodies``: bodies that are mostly no AdmissionReview at all:
  truncated or invalid JSON, wrong types, deep nesting, odd Unicode, bodies
  near and over the size limit, and other content types.

``check_response`` states what must hold for any body and its response.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import jsonpatch
from hypothesis import strategies as st
from webhookpods import admission_review, vertex_object, vertex_pod

from numaflow_rdma import fixtures, names

# The network and resource the fuzzed webhook is configured with.
NETWORK = "infra/rdma-net"
RESOURCE = "rdma/hca_shared_devices_a"
WEBHOOK_ARGUMENTS = ["--network", NETWORK, "--resource-name", RESOURCE]

# The webhook's own body limit (webhook.app.MAX_REQUEST_BYTES), restated so the test notices a change.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def _base_pods() -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = []
    for layout in fixtures.LAYOUTS:
        for pipeline in fixtures.PIPELINES:
            pods += fixtures.load_pods(pipeline, layout, namespace="pipelines")
        pods += fixtures.load_other_pods(layout, namespace="pipelines")
    pods.append(vertex_pod(to=("out", "archive")))
    pods.append(vertex_pod(sidecar=False, user_containers=("udsink",), to=()))
    pods.append(vertex_pod(user_containers=("udsource", "transformer"), to=("decode",)))
    return pods


BASE_PODS = _base_pods()

# Strings chosen to break parsers and names: odd Unicode, control characters,
# separators of the Multus and environment syntaxes, and values near the limits.
ODD_STRINGS = [
    "",
    " ",
    "\n",
    "infer\n",
    "in fer",
    "INFER",
    "-infer",
    "infer-",
    "in.fer",
    "in/fer",
    "in@fer",
    "in=fer",
    "in,fer",
    "x" * 63,
    "x" * 64,
    "x" * 300,
    "\u0000",
    "\ufeff",
    "\u202e",
    "\ud800",
    "\U0001f600",
    "\ufb01lter",
    "\u0130nfer",
    "\u0131nfer",
    "\u212a",
    "\uff11\uff12\uff13",
    "false",
    "FALSE ",
    "true",
    "null",
    "[",
    "{",
    '"',
    "~1",
    "~0",
    "/",
    "-",
    "0",
]

ODD_TEXT = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40))

# A vertex or pipeline name, alone or joined to an odd string on either side.
NAME_VARIANTS = st.tuples(
    st.sampled_from(["", "", "", "x", *ODD_STRINGS]),
    st.sampled_from(["video", "infer", "out", "sink"]),
    st.sampled_from(["", "", "", "x", *ODD_STRINGS]),
).map("".join)


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Return any JSON value, small, with odd strings among its leaves."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        ODD_TEXT,
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(ODD_TEXT, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def nested(depth: int, kind: str) -> str:
    """Return JSON text nested ``depth`` levels deep: lists, objects, or both in turn."""
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"a":[' * depth + "1" + "]}" * depth


DEPTHS = st.sampled_from([30, 64, 101, 500, 990, 1_000, 5_000, 100_000])

# Both Multus syntaxes, well-formed and with junk.
MULTUS_ITEMS = st.one_of(
    st.sampled_from(
        [
            "rdma-net",
            "infra/rdma-net",
            "infra/rdma-net@net1",
            "infra/rdma-net@net2",
            "other/sriov@net1",
            "sriov",
            "pipelines/rdma-net",
            "a/b/c",
            "/rdma-net",
            "rdma-net@",
            "rdma-net@" + "x" * 16,
            "rdma-net@n et",
            "Rdma-Net",
        ]
    ),
    ODD_TEXT,
)


@st.composite
def multus_values(draw: st.DrawFn) -> str:
    """Return a value for ``k8s.v1.cni.cncf.io/networks``: comma form, JSON form, or junk."""
    form = draw(st.sampled_from(["comma", "json", "json-text", "deep", "junk"]))
    if form == "comma":
        items = draw(st.lists(MULTUS_ITEMS, max_size=4))
        return draw(st.sampled_from([",", ", ", " ,"])).join(items)
    if form == "json":
        element = st.fixed_dictionaries(
            {},
            optional={
                "name": st.one_of(st.sampled_from(["rdma-net", "sriov", "infra"]), json_values(2)),
                "namespace": st.one_of(st.sampled_from(["infra", "other"]), json_values(2)),
                "interface": st.one_of(st.sampled_from(["net1", "net2", "eth0"]), json_values(2)),
                "interfaceRequest": st.sampled_from(["net1", "net3"]),
                "ips": json_values(3),
            },
        )
        value = draw(st.one_of(st.lists(element, max_size=4), json_values(4)))
        indent = draw(st.sampled_from([None, 2]))
        return json.dumps(value, indent=indent) + draw(st.sampled_from(["", " ", "\n"]))
    if form == "json-text":
        return draw(st.sampled_from(["[", "[]", "[ ]", "{}", '"', "[{]", "[,]", "[1,]", "]"]))
    if form == "deep":
        return nested(draw(DEPTHS), draw(st.sampled_from(["list", "object", "mixed"])))
    return draw(ODD_TEXT)


@st.composite
def vertex_object_values(draw: st.DrawFn) -> Any:
    """Return a value for NUMAFLOW_VERTEX_OBJECT: base64 of good or bad JSON, bad base64, or junk."""
    form = draw(st.sampled_from(["edges", "spec", "json", "text", "deep", "base64", "not-string"]))
    if form == "edges":
        targets = draw(st.lists(st.one_of(NAME_VARIANTS, ODD_TEXT), max_size=4))
        document = vertex_object(
            draw(st.one_of(NAME_VARIANTS, st.sampled_from(["v" * 60, "x" * 64]))),
            draw(NAME_VARIANTS),
            "pipelines",
            targets,
        )
        return base64.b64encode(json.dumps(document).encode()).decode()
    if form == "spec":
        document = {"spec": draw(json_values(6))}
        return base64.b64encode(json.dumps(document).encode()).decode()
    if form == "json":
        return base64.b64encode(json.dumps(draw(json_values(6))).encode()).decode()
    if form == "text":
        raw = draw(st.binary(max_size=64))
        return base64.b64encode(raw).decode()
    if form == "deep":
        text = nested(draw(DEPTHS), draw(st.sampled_from(["list", "object", "mixed"])))
        return base64.b64encode(text.encode()).decode()
    if form == "base64":
        good = base64.b64encode(b'{"spec": {}}').decode()
        return draw(
            st.sampled_from(
                [good[:-1], good + "=", "!!!!", "e30", "e30==", good.replace("e", "é"), " " + good]
            )
        )
    return draw(json_values(3))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every node under ``value``, the root excepted."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found += _paths(item, (*prefix, index))
    return found


def _parent(pod: Any, path: tuple[Any, ...]) -> Any:
    node = pod
    for step in path[:-1]:
        node = node[step]
    return node


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return []
    found: list[dict[str, Any]] = []
    for list_name in ("initContainers", "containers"):
        items = spec.get(list_name)
        if isinstance(items, list):
            found += [item for item in items if isinstance(item, dict)]
    return found


def _metadata_map(pod: dict[str, Any], field: str) -> dict[str, Any]:
    metadata = pod.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        metadata = pod["metadata"] = {}
    current = metadata.get(field)
    if not isinstance(current, dict):
        current = metadata[field] = {}
    return current


Mutation = Callable[[st.DrawFn, dict[str, Any]], None]


def _replace_any(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    paths = _paths(pod)
    if paths:
        path = draw(st.sampled_from(paths))
        _parent(pod, path)[path[-1]] = draw(json_values())


def _delete_any(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    paths = [path for path in _paths(pod) if isinstance(_parent(pod, path), dict)]
    if paths:
        path = draw(st.sampled_from(paths))
        del _parent(pod, path)[path[-1]]


def _set_label(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    labels = _metadata_map(pod, "labels")
    key = draw(
        st.sampled_from(
            [*names.VERTEX_POD_LABELS, names.LABEL_PIPELINE_NAME, names.LABEL_VERTEX_NAME]
        )
    )
    if draw(st.booleans()):
        labels.pop(key, None)
    elif key in names.VERTEX_POD_LABELS:
        labels[key] = draw(st.one_of(ODD_TEXT, st.just(names.VERTEX_POD_LABELS[key])))
    else:
        labels[key] = draw(st.one_of(NAME_VARIANTS, ODD_TEXT))


def _set_annotation(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    annotations = _metadata_map(pod, "annotations")
    key = draw(
        st.sampled_from(
            [
                names.MULTUS_NETWORKS_ANNOTATION,
                names.MULTUS_NETWORKS_ANNOTATION,
                names.INJECT_ANNOTATION,
                names.INJECTED_ANNOTATION,
                "kubectl.kubernetes.io/default-container",
                "numaflow.numaproj.io/hash",
            ]
        )
    )
    if key == names.MULTUS_NETWORKS_ANNOTATION:
        annotations[key] = draw(multus_values())
    elif key == "kubectl.kubernetes.io/default-container":
        annotations[key] = draw(st.one_of(st.sampled_from(names.USER_CONTAINER_NAMES), ODD_TEXT))
    else:
        annotations[key] = draw(st.one_of(st.sampled_from(["false", " False", "true"]), ODD_TEXT))


def _set_vertex_object(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    for container in _containers(pod):
        if container.get("name") == names.NUMAFLOW_CONTAINER and isinstance(
            container.get("env"), list
        ):
            for variable in container["env"]:
                if isinstance(variable, dict) and variable.get("name") == "NUMAFLOW_VERTEX_OBJECT":
                    variable["value"] = draw(vertex_object_values())
                    return


def _change_container(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    containers = _containers(pod)
    if not containers:
        return
    container = draw(st.sampled_from(containers))
    change = draw(
        st.sampled_from(
            ["rename", "env", "env-override", "mount", "resources", "security", "duplicate"]
        )
    )
    if change == "rename":
        container["name"] = draw(
            st.one_of(st.sampled_from([*names.USER_CONTAINER_NAMES, "numa"]), ODD_TEXT)
        )
    elif change in ("env", "env-override"):
        name = draw(st.sampled_from([*names.ALL_ENV, "NUMAFLOW_VERTEX_OBJECT", "OTHER"]))
        variable: dict[str, Any] = {"name": name}
        if change == "env":
            variable["value"] = draw(ODD_TEXT)
        else:
            variable["valueFrom"] = {"fieldRef": {"fieldPath": "metadata.name"}}
        env = container.get("env")
        container["env"] = [*env, variable] if isinstance(env, list) else [variable]
    elif change == "mount":
        mount = {
            "name": draw(st.sampled_from([names.PODINFO_VOLUME, "other"])),
            "mountPath": draw(st.sampled_from([names.PODINFO_MOUNT_PATH, "/data"])),
        }
        mounts = container.get("volumeMounts")
        container["volumeMounts"] = [*mounts, mount] if isinstance(mounts, list) else [mount]
    elif change == "resources":
        quantity = draw(st.sampled_from(["1", "2", "0", "1k"]))
        container["resources"] = draw(
            st.sampled_from(
                [
                    {"limits": {RESOURCE: quantity}},
                    {"requests": {RESOURCE: quantity}, "limits": {RESOURCE: quantity}},
                    {"requests": {}},
                    {},
                ]
            )
        )
    elif change == "security":
        container["securityContext"] = draw(
            st.sampled_from(
                [
                    {},
                    {"capabilities": {}},
                    {"capabilities": {"add": ["IPC_LOCK"]}},
                    {"capabilities": {"add": ["NET_ADMIN"], "drop": ["IPC_LOCK"]}},
                    {"runAsUser": 1000},
                    {"runAsUser": 0, "runAsNonRoot": True},
                    {"runAsNonRoot": True},
                ]
            )
        )
    else:
        spec = pod["spec"]
        target = draw(st.sampled_from(["initContainers", "containers"]))
        if not isinstance(spec.get(target), list):
            spec[target] = []
        spec[target].append(copy.deepcopy(container))


def _change_volumes(draw: st.DrawFn, pod: dict[str, Any]) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    volume = draw(
        st.sampled_from(
            [
                {"name": names.PODINFO_VOLUME, "emptyDir": {}},
                {
                    "name": names.PODINFO_VOLUME,
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "annotations",
                                "fieldRef": {"fieldPath": "metadata.annotations"},
                            }
                        ]
                    },
                },
                {"name": "other", "emptyDir": {}},
            ]
        )
    )
    volumes = spec.get("volumes")
    spec["volumes"] = [*volumes, volume] if isinstance(volumes, list) else [volume]


# The targeted changes come more often than a change anywhere in the pod.
MUTATIONS: list[Mutation] = [
    _replace_any,
    _delete_any,
    _set_label,
    _set_label,
    _set_annotation,
    _set_annotation,
    _set_vertex_object,
    _set_vertex_object,
    _change_container,
    _change_container,
    _change_container,
    _change_volumes,
    _change_volumes,
]


@st.composite
def mutated_pods(draw: st.DrawFn) -> dict[str, Any]:
    """Return a real or hand-made pod with up to five random changes."""
    pod: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASE_PODS)))
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        draw(st.sampled_from(MUTATIONS))(draw, pod)
    return pod


@st.composite
def mutated_reviews(draw: st.DrawFn) -> dict[str, Any]:
    """Return an AdmissionReview of a mutated pod, itself changed now and then."""
    pod = draw(mutated_pods())
    metadata = pod.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    review: dict[str, Any] = admission_review(
        {"metadata": {}},
        operation=draw(st.sampled_from(["CREATE"] * 8 + ["UPDATE", "DELETE", "CONNECT"])),
        namespace=namespace if isinstance(namespace, str) else "pipelines",
        kind=draw(st.sampled_from(["Pod"] * 10 + ["Deployment"])),
    )
    review["request"]["object"] = pod
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        field = draw(
            st.sampled_from(
                ["uid", "kind", "operation", "namespace", "subResource", "dryRun", "object"]
            )
        )
        review["request"][field] = draw(json_values(4))
    return review


def _encode(body: Any) -> bytes:
    return json.dumps(body).encode()


@st.composite
def malformed_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """Return a request body and its content type, most of them no usable AdmissionReview."""
    form = draw(
        st.sampled_from(
            [
                "truncated",
                "garbage",
                "wrong-types",
                "deep",
                "unicode",
                "large",
                "content-type",
            ]
        )
    )
    valid = _encode(admission_review(draw(st.sampled_from(BASE_PODS))))
    content_type = "application/json"
    if form == "truncated":
        body = valid[: draw(st.integers(min_value=0, max_value=len(valid) - 1))]
    elif form == "garbage":
        body = draw(
            st.one_of(
                st.binary(max_size=200),
                st.text(max_size=200).map(str.encode),
                st.sampled_from([b"", b"null", b"NaN", b"[]", b'{"apiVersion": Infinity}']),
            )
        )
    elif form == "wrong-types":
        review = json.loads(valid)
        path = draw(st.sampled_from(_paths(review)))
        _parent(review, path)[path[-1]] = draw(json_values())
        body = _encode(review) if draw(st.booleans()) else _encode(draw(json_values()))
    elif form == "deep":
        depth = draw(DEPTHS)
        deep = nested(depth, draw(st.sampled_from(["list", "object", "mixed"])))
        review_text = valid.decode()
        # The nesting goes into the pod, where the webhook's readers walk.
        body = review_text.replace('"spec": {', f'"spec": {{"deep": {deep}, ', 1).encode()
    elif form == "unicode":
        review_text = valid.decode()
        odd = draw(st.sampled_from(["\\ud800", "\\udfff", "\\u0000", "\u202e", "\ufeff"]))
        if draw(st.booleans()):
            body = ("\ufeff" + review_text).encode()
        else:
            body = review_text.replace('"uid": "', f'"uid": "{odd}', 1).encode()
        if draw(st.booleans()):
            body = body.replace(b"pipelines", b"pipelines\xff\xfe", 1)
    elif form == "large":
        size = draw(st.sampled_from([MAX_REQUEST_BYTES - 4096, MAX_REQUEST_BYTES + 1]))
        review = json.loads(valid)
        padding = "x" * max(0, size - len(valid) - 64)
        review["request"]["object"].setdefault("metadata", {}).setdefault("annotations", {})[
            "padding"
        ] = padding
        body = _encode(review)
    else:
        body = valid
        content_type = draw(
            st.sampled_from(
                ["text/plain", "application/x-www-form-urlencoded", "", "application/yaml"]
            )
        )
    return body, content_type


# What every response must keep.


DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def is_dns_name(name: str) -> bool:
    """Tell whether ``name`` is a lower-case RFC 1123 name of at most 253 characters."""
    return len(name) <= names.MAX_NAME_LENGTH and all(
        DNS_LABEL.fullmatch(label) for label in name.split(".")
    )


def is_vertex_pod(obj: Any) -> bool:
    """Tell whether ``obj`` carries Numaflow's three vertex pod labels, written out here on purpose."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return (
        isinstance(labels, dict)
        and labels.get("app.kubernetes.io/part-of") == "numaflow"
        and labels.get("app.kubernetes.io/managed-by") == "vertex-controller"
        and labels.get("app.kubernetes.io/component") == "vertex"
    )


def may_be_patched(review: Any) -> bool:
    """Tell whether the webhook may patch the pod of ``review`` at all."""
    request = review.get("request") if isinstance(review, dict) else None
    if not isinstance(request, dict):
        return False
    kind = request.get("kind")
    if not isinstance(kind, dict) or kind.get("kind") != "Pod" or kind.get("group"):
        return False
    if request.get("operation") != "CREATE" or request.get("subResource"):
        return False
    return is_vertex_pod(request.get("object"))


def _added_environment(patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the environment variables the patch adds, as name and value pairs."""
    found: list[dict[str, Any]] = []
    for operation in patch:
        if operation["op"] != "add" or not re.search(r"/env(/-)?$", operation["path"]):
            continue
        value = operation["value"]
        found += value if isinstance(value, list) else [value]
    return found


def check_added_environment(patch: list[dict[str, Any]]) -> None:
    """Assert that each name the patch writes into the environment is a valid DNS name."""
    for variable in _added_environment(patch):
        name, value = variable["name"], variable["value"]
        if name == names.ENV_VERTEX:
            assert is_dns_name(value), f"{name} is not a DNS name: {value!r}"
        elif name == names.ENV_DESTINATIONS and value:
            for pair in value.split(","):
                vertex, separator, target = pair.partition("=")
                assert separator, f"{name} has a pair without '=': {value!r}"
                assert DNS_LABEL.fullmatch(vertex), f"{name} has an invalid vertex: {value!r}"
                assert is_dns_name(target), f"{name} has an invalid DNS name: {value!r}"


def decode_patch(answer: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Return the JSON Patch of an AdmissionReview response, or None when it has none."""
    if "patch" not in answer:
        assert "patchType" not in answer, answer
        return None
    assert answer["patchType"] == "JSONPatch", answer
    patch = json.loads(base64.b64decode(answer["patch"], validate=True))
    assert isinstance(patch, list) and patch, answer
    return patch


def check_response(
    review: Any, status: int, body: bytes, tally: Counter[str]
) -> list[dict[str, Any]] | None:
    """Assert what every response keeps; return the pod's patch, or None.

    Never a 5xx; an AdmissionReview response with the request's uid for
    every 200; no patch for a request the webhook must leave alone.
    ``tally`` counts the responses that deny the pod.
    """
    assert status < 500, f"HTTP {status}: {body[:2000]!r}"
    assert status in (200, 400), f"HTTP {status}: {body[:2000]!r}"
    if status == 400:
        return None
    document = json.loads(body)
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    answer = document["response"]
    assert answer["uid"] == review["request"]["uid"]
    assert isinstance(answer["allowed"], bool)
    if not answer["allowed"]:
        tally["denied"] += 1
    patch = decode_patch(answer)
    if patch is not None:
        assert answer["allowed"], answer
        assert may_be_patched(review), f"a pod the webhook must leave alone got a patch: {patch}"
        check_added_environment(patch)
    return patch


def apply_patch(pod: Any, patch: list[dict[str, Any]]) -> Any:
    """Apply ``patch`` to a copy of ``pod``; fail the test if any operation does not apply."""
    try:
        return jsonpatch.apply_patch(pod, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise AssertionError(f"the patch does not apply: {error}; patch {patch}") from error


def review_of(review: Mapping[str, Any], pod: Any) -> dict[str, Any]:
    """Return ``review`` with its object replaced by ``pod``, as the API server sends a reinvocation."""
    again = dict(review)
    again["request"] = {**review["request"], "object": pod}
    return again
