"""Random pod events for dnssync, the records they should produce, and foreign keys to guard.

``PodEvents`` plays the workload, the kubelet and Multus: it creates vertex
pods, writes their network-status, flips Ready, finishes, deletes and
releases them, and takes namespaces in and out of the opt-in. It keeps
only what it needs to pick a plausible next event. The truth comes from
the API through ``expected_records``, which restates the rules of a record
in a few lines and shares no code with dnssync.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness import create_namespace, set_namespace_label, vertex_pod_manifest
from podfactory import RDMA_NETWORK, network_status

from numaflow_rdma import names
from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient

T = TypeVar("T")

# A finalizer that keeps a deleted pod in the API, terminating, until the test removes it.
HOLD_FINALIZER = "reliability.numaflow-rdma.io/hold"
VERTICES = ("decode", "infer")
PIPELINE = "video"


def with_retries(action: Callable[[], T], attempts: int = 60, delay: float = 0.5) -> T:
    """Run ``action``, retrying while the API server is unreachable or restarting (status 0 or 5xx)."""
    for attempt in range(attempts):
        try:
            return action()
        except KubeApiError as error:
            if error.status not in (0, 500, 502, 503, 504) or attempt == attempts - 1:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class PodState:
    namespace: str
    name: str
    vertex: str
    held: bool
    terminating: bool = False


@dataclass
class PodEvents:
    """Issues random pod and namespace events through the API, from one seed."""

    kube: KubeClient
    namespaces: list[str]
    seed: int
    max_live: int = 40
    """Above this many live pods, new ones are created less often."""
    random: random.Random = field(init=False)
    pods: dict[str, PodState] = field(default_factory=dict)
    labelled: dict[str, bool] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _next_address: int = 1
    _next_pod: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def create_namespaces(self) -> None:
        for namespace in self.namespaces:
            create_namespace(self.kube, namespace)
            self.labelled[namespace] = True

    # Each event is one or two API requests; a pod that is gone is never addressed.

    def step(self) -> str:
        """Issue one random event and return its kind."""
        live = [pod for pod in self.pods.values() if not pod.terminating]
        held = [pod for pod in self.pods.values() if pod.terminating]

        # First, the kind of event, weighted so that most pods live long enough to matter.
        choices: list[tuple[str, float]] = [("create", 4.0 if len(live) < self.max_live else 1.0)]
        if live:
            choices += [
                ("attach", 2.0),
                ("ready", 4.0),
                ("finish", 0.4),
                ("delete", 2.0),
                ("bad-status", 0.3),
            ]
        if held:
            choices.append(("release", 1.5))
        choices.append(("namespace", 0.2))
        kinds, weights = zip(*choices, strict=True)
        kind: str = self.random.choices(kinds, weights)[0]

        # Then the event itself, on a pod chosen at random.
        if kind == "create":
            pod = self._create()
            # Half the new pods start at once: Multus attaches them and the kubelet marks them Ready.
            if self.random.random() < 0.5:
                self._attach(pod)
                self._ready(pod)
        elif kind == "release":
            self._release(self.random.choice(held))
        elif kind == "namespace":
            self._flip_namespace()
        else:
            handlers: dict[str, Callable[[PodState], None]] = {
                "attach": self._attach,
                "ready": self._ready,
                "finish": self._finish,
                "delete": self._delete,
                "bad-status": self._bad_status,
            }
            handlers[kind](self.random.choice(live))

        self.counts[kind] = self.counts.get(kind, 0) + 1
        return kind

    def _pod_path(self, pod: PodState, suffix: str = "") -> str:
        return f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}{suffix}"

    def _patch_status(self, pod: PodState, patch: dict[str, Any]) -> None:
        with_retries(
            lambda: self.kube.request(
                "PATCH",
                self._pod_path(pod, "/status"),
                body=patch,
                content_type="application/merge-patch+json",
            )
        )

    def _create(self) -> PodState:
        namespace = self.random.choice(self.namespaces)
        vertex = self.random.choice(VERTICES)
        self._next_pod += 1
        name = f"{PIPELINE}-{vertex}-{self._next_pod}-{self.random.randrange(16**5):05x}"
        manifest = vertex_pod_manifest(namespace, name, pipeline=PIPELINE, vertex=vertex)
        held = self.random.random() < 0.2
        if held:
            manifest["metadata"]["finalizers"] = [HOLD_FINALIZER]
        if self.random.random() < 0.1:
            manifest["metadata"].setdefault("annotations", {})[names.INJECT_ANNOTATION] = "false"
        with_retries(
            lambda: self.kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=manifest)
        )
        pod = PodState(namespace, name, vertex, held)
        self.pods[name] = pod
        return pod

    def _attach(self, pod: PodState) -> None:
        """Write network-status, with a new address each time, as a recreated sandbox gets."""
        self._next_address += 1
        address = f"198.18.{self._next_address // 250}.{self._next_address % 250 + 1}"
        self._write_network_status(pod, network_status(address))

    def _bad_status(self, pod: PodState) -> None:
        """Write a network-status that gives no address: not JSON, or without the RDMA network."""
        value = self.random.choice(
            ["{not json", network_status(None), "[" * 5000 + "]" * 5000, '[{"name": 7}]']
        )
        self._write_network_status(pod, value)

    def _write_network_status(self, pod: PodState, value: str) -> None:
        self._patch_status(
            pod, {"metadata": {"annotations": {names.MULTUS_NETWORK_STATUS_ANNOTATION: value}}}
        )

    def _ready(self, pod: PodState) -> None:
        status = self.random.choice(["True", "True", "False"])
        self._patch_status(
            pod,
            {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}},
        )

    def _finish(self, pod: PodState) -> None:
        phase = self.random.choice(["Succeeded", "Failed"])
        self._patch_status(
            pod,
            {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}},
        )

    def _delete(self, pod: PodState) -> None:
        with_retries(lambda: self.kube.request("DELETE", self._pod_path(pod)))
        if pod.held:
            pod.terminating = True
        else:
            del self.pods[pod.name]

    def _release(self, pod: PodState) -> None:
        self._remove_finalizers(pod)
        del self.pods[pod.name]

    def _remove_finalizers(self, pod: PodState) -> None:
        with_retries(
            lambda: self.kube.request(
                "PATCH",
                self._pod_path(pod),
                body={"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json",
            )
        )

    def flip_namespace(self) -> None:
        """Take the last namespace out of the opt-in, or put it back, as one more event."""
        self._flip_namespace()
        self.counts["namespace"] = self.counts.get("namespace", 0) + 1

    def _flip_namespace(self) -> None:
        # Only the last namespace changes, so that most pods keep their records.
        namespace = self.namespaces[-1]
        enabled = not self.labelled[namespace]
        value = names.INJECT_LABEL_ENABLED if enabled else None
        with_retries(lambda: set_namespace_label(self.kube, namespace, value))
        self.labelled[namespace] = enabled

    def release_all(self) -> None:
        """Remove the hold from every pod, so the namespaces can be deleted."""
        for pod in list(self.pods.values()):
            if pod.held:
                self._remove_finalizers(pod)


def _rdma_host(pod: dict[str, Any]) -> str | None:
    """Return the pod's address on the RDMA network from network-status, or None."""
    annotations = pod["metadata"].get("annotations") or {}
    raw = annotations.get(names.MULTUS_NETWORK_STATUS_ANNOTATION)
    if raw is None:
        return None
    try:
        entries = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if (
            isinstance(entry, dict)
            and entry.get("name") == RDMA_NETWORK
            and not entry.get("default")
            and isinstance(entry.get("ips"), list)
            and entry["ips"]
        ):
            return str(entry["ips"][0])
    return None


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def expected_records(kube: KubeClient, namespaces: list[str]) -> dict[str, str]:
    """Return the records the pods of ``namespaces`` should have now: etcd key to address.

    A pod has a record when its namespace is opted in, it is not opted out,
    not terminating and not finished, Multus wrote its RDMA address, and it
    is Ready.
    """
    records: dict[str, str] = {}
    for namespace in namespaces:
        path = f"/api/v1/namespaces/{namespace}"
        found = with_retries(functools.partial(kube.request, "GET", path))
        labels = found["metadata"].get("labels") or {}
        if labels.get(names.INJECT_LABEL) != names.INJECT_LABEL_ENABLED:
            continue
        listed = with_retries(functools.partial(kube.request, "GET", f"{path}/pods"))
        for pod in listed.get("items") or []:
            metadata = pod["metadata"]
            annotations = metadata.get("annotations") or {}
            if annotations.get(names.INJECT_ANNOTATION) == "false":
                continue
            if metadata.get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            host = _rdma_host(pod)
            if host is None or not _is_ready(pod):
                continue
            pod_labels = metadata["labels"]
            key = names.pod_etcd_key(
                metadata["name"],
                pod_labels[names.LABEL_VERTEX_NAME],
                pod_labels[names.LABEL_PIPELINE_NAME],
                namespace,
            )
            records[key] = host
    return records


def owned_records(values: dict[str, str], owner: str) -> dict[str, str]:
    """Return the records of ``owner`` among etcd ``values``: key to the ``host`` field."""
    records: dict[str, str] = {}
    for key, value in values.items():
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if isinstance(decoded, dict) and decoded.get(names.RECORD_OWNER_FIELD) == owner:
            records[key] = str(decoded.get("host"))
    return records


@dataclass(frozen=True)
class Comparison:
    """How etcd's records of one owner differ from the expected ones."""

    stale: dict[str, str]
    """Keys that should not exist, or hold another address, with what they hold."""
    missing: dict[str, str]
    """Keys that should exist but do not, with the address they should hold."""

    @property
    def equal(self) -> bool:
        return not self.stale and not self.missing


def compare(expected: dict[str, str], actual: dict[str, str]) -> Comparison:
    stale = {key: host for key, host in actual.items() if expected.get(key) != host}
    missing = {key: host for key, host in expected.items() if key not in actual}
    return Comparison(stale, missing)


def foreign_values(zone_prefix: str) -> dict[str, str]:
    """Return keys and values that belong to someone else, for dnssync to leave as they are.

    They sit in the zone (another owner's record, a record without an owner,
    unparsable and deeply nested values) and outside it.
    """
    other = json.dumps({"host": "198.19.0.1", "port": 7470, "ttl": 30, "owner": "someone-else"})
    return {
        f"{zone_prefix}other-team/video/infer/foreign-a": other,
        f"{zone_prefix}other-team/video/infer/foreign-b": json.dumps({"host": "198.19.0.2"}),
        f"{zone_prefix}broken/x/y/not-json": "{not json",
        f"{zone_prefix}broken/x/y/deep": '{"host": "198.19.0.3", "x": '
        + "[" * 2000
        + "]" * 2000
        + "}",
        "/skydns/com/example/www": json.dumps({"host": "198.19.0.4"}),
        "/numaflow-rdma-reliability/other-application": "not a record",
    }
