"""The records that should exist: one per vertex pod that can take frames now.

A pod gets a record when all of these hold:

- its namespace exists and carries ``numaflow-rdma/inject=enabled``;
- it carries Numaflow's vertex pod labels and not the opt-out annotation;
- it has no deletion timestamp and its phase is neither Succeeded nor Failed;
- Multus has written its RDMA-network address;
- it is Ready, unless not-ready pods are published, as a headless Service
  with ``publishNotReadyAddresses`` would.

Everything here is pure: pods and namespaces go in as the API's JSON dicts,
records and reasons come out, so the rules are tested without a cluster.
``pod_fields`` and ``namespace_fields`` cut an object down to what these rules
read, so the watch cache stores a few hundred bytes per pod instead of the whole
pod spec.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.dnssync.addresses import NetworkSelector, NetworkStatusError, rdma_address


@dataclass(frozen=True)
class RecordSettings:
    """What every record is built from, besides the pod."""

    owner: str
    zone: str = names.DEFAULT_ZONE
    prefix: str = names.DEFAULT_ETCD_PREFIX
    port: int = names.DEFAULT_TRANSPORT_PORT
    ttl: int = names.DEFAULT_RECORD_TTL
    selector: NetworkSelector = field(default_factory=NetworkSelector)
    publish_not_ready: bool = False


@dataclass(frozen=True)
class PodRef:
    """The identity of a pod, for logs, Events and metrics."""

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DesiredRecord:
    """The record one pod should have: its etcd key and the value to store there."""

    key: str
    value: str
    host: str
    pod: PodRef


class Skip(enum.Enum):
    """Why a pod has no record, when that is expected and not a problem."""

    NAMESPACE_NOT_OPTED_IN = "namespace-not-opted-in"
    NOT_A_VERTEX_POD = "not-a-vertex-pod"
    OPTED_OUT = "opted-out"
    TERMINATING = "terminating"
    FINISHED = "finished"
    NO_ADDRESS_YET = "no-address-yet"
    NOT_READY = "not-ready"


class PodProblem(ValueError):
    """A pod whose own data keeps it from getting a record; reported on the pod as an Event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# The pod annotations the rules read; every other annotation is dropped from the cache.
_POD_ANNOTATIONS = (
    names.INJECT_ANNOTATION,
    names.MULTUS_NETWORK_STATUS_ANNOTATION,
    names.MULTUS_LEGACY_NETWORK_STATUS_ANNOTATION,
)


def pod_fields(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parts of a pod dict that ``pod_record`` and the reports read.

    ``pod_record`` returns the same outcome for the result as for the whole pod.
    """
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    annotations = metadata.get("annotations") or {}
    kept_metadata: dict[str, Any] = {
        key: metadata[key]
        for key in ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp", "labels")
        if key in metadata
    }
    if isinstance(annotations, dict):
        kept_metadata["annotations"] = {
            key: annotations[key] for key in _POD_ANNOTATIONS if key in annotations
        }
    kept_status: dict[str, Any] = {}
    if "phase" in status:
        kept_status["phase"] = status["phase"]
    conditions = status.get("conditions") or []
    if isinstance(conditions, list):
        kept_status["conditions"] = [
            {"type": "Ready", "status": condition.get("status")}
            for condition in conditions
            if isinstance(condition, dict) and condition.get("type") == "Ready"
        ][:1]
    return {"metadata": kept_metadata, "status": kept_status}


def namespace_fields(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parts of a namespace dict the rules read: its name, labels and version."""
    metadata = namespace.get("metadata") or {}
    return {
        "metadata": {
            key: metadata[key] for key in ("name", "resourceVersion", "labels") if key in metadata
        }
    }


def pod_ref(pod: Mapping[str, Any]) -> PodRef:
    """Return the namespace, name and UID of a pod dict."""
    metadata = pod.get("metadata") or {}
    return PodRef(metadata.get("namespace", ""), metadata.get("name", ""), metadata.get("uid", ""))


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """Tell whether the pod's Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pod_record(
    pod: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
    settings: RecordSettings,
) -> DesiredRecord | Skip:
    """Return the record ``pod`` should have, or why it has none.

    ``namespace_labels`` is None when the namespace is not known (not listed
    yet, or deleted). Raises PodProblem when the pod's own data is invalid.
    """
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ref = pod_ref(pod)
    labels = metadata.get("labels") or {}

    # First, the opt-in and opt-out rules shared with the webhook.
    if namespace_labels is None or not names.is_opted_in_namespace(namespace_labels):
        return Skip.NAMESPACE_NOT_OPTED_IN
    if not names.is_vertex_pod_labels(labels):
        return Skip.NOT_A_VERTEX_POD
    if names.is_opted_out_pod(metadata.get("annotations")):
        return Skip.OPTED_OUT

    # A pod on its way out keeps its network-status, so this is checked before the address.
    if metadata.get("deletionTimestamp"):
        return Skip.TERMINATING
    if status.get("phase") in ("Succeeded", "Failed"):
        return Skip.FINISHED

    # Then the address, then the names, so a bad annotation is reported even before Ready.
    try:
        address = rdma_address(metadata.get("annotations"), ref.namespace, settings.selector)
    except NetworkStatusError as error:
        raise PodProblem(error.reason, str(error)) from error
    if address is None:
        return Skip.NO_ADDRESS_YET
    key = _record_key(labels, ref, settings)
    if not settings.publish_not_ready and not is_pod_ready(pod):
        return Skip.NOT_READY

    host = str(address)
    value = names.record_value(host, settings.port, settings.ttl, settings.owner)
    return DesiredRecord(key=key, value=value, host=host, pod=ref)


def _record_key(labels: Mapping[str, str], ref: PodRef, settings: RecordSettings) -> str:
    pipeline = labels.get(names.LABEL_PIPELINE_NAME)
    vertex = labels.get(names.LABEL_VERTEX_NAME)
    if not pipeline or not vertex:
        missing = names.LABEL_PIPELINE_NAME if not pipeline else names.LABEL_VERTEX_NAME
        raise PodProblem("MissingVertexLabel", f"the pod has no label {missing}")
    try:
        return names.pod_etcd_key(
            ref.name, vertex, pipeline, ref.namespace, settings.zone, settings.prefix
        )
    except names.InvalidNameError as error:
        raise PodProblem("InvalidDnsName", str(error)) from error


@dataclass
class DesiredState:
    """The records all pods should have, with the counts of pods skipped and the problems found."""

    records: dict[str, DesiredRecord] = field(default_factory=dict)
    skipped: Counter[Skip] = field(default_factory=Counter)
    problems: list[tuple[PodRef, PodProblem]] = field(default_factory=list)

    def values(self) -> dict[str, str]:
        """Return the desired etcd values by key, the form the plan takes."""
        return {key: record.value for key, record in self.records.items()}


def desired_state(
    pods: Iterable[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
    settings: RecordSettings,
) -> DesiredState:
    """Return the records of all ``pods``; ``namespaces`` maps each known namespace to its labels."""
    state = DesiredState()
    for pod in pods:
        ref = pod_ref(pod)
        try:
            outcome = pod_record(pod, namespaces.get(ref.namespace), settings)
        except PodProblem as problem:
            state.problems.append((ref, problem))
            continue
        if isinstance(outcome, Skip):
            state.skipped[outcome] += 1
        else:
            state.records[outcome.key] = outcome
    return state
