"""Which pods get a record, and with what key and value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from podfactory import RDMA_NETWORK, network_status, opted_in, vertex_pod

from numaflow_rdma import names
from numaflow_rdma.dnssync.addresses import NetworkSelector
from numaflow_rdma.dnssync.desired import (
    DesiredRecord,
    PodProblem,
    RecordSettings,
    Skip,
    desired_state,
    namespace_fields,
    pod_fields,
    pod_record,
)
from numaflow_rdma.fixtures import load_other_pods, load_pods

SETTINGS = RecordSettings(owner="dnssync-a", selector=NetworkSelector(network=RDMA_NETWORK))


def test_ready_pod_gets_record() -> None:
    record = pod_record(vertex_pod("video-infer-0-abcde"), opted_in(), SETTINGS)

    assert isinstance(record, DesiredRecord)
    assert record.key == names.pod_etcd_key("video-infer-0-abcde", "infer", "video", "team")
    assert record.key == "/skydns/local/vertexdomain/team/video/infer/video-infer-0-abcde"
    assert json.loads(record.value) == {
        "host": "198.18.0.7",
        "port": 7470,
        "ttl": 30,
        "owner": "dnssync-a",
    }
    assert str(record.pod) == "team/video-infer-0-abcde"


def test_ipv6_pod_gets_record() -> None:
    record = pod_record(vertex_pod("p", address="fd00:198:18::7"), opted_in(), SETTINGS)

    assert isinstance(record, DesiredRecord)
    assert record.host == "fd00:198:18::7"


def test_settings_shape_value() -> None:
    settings = RecordSettings(
        owner="o",
        zone="rdma.example",
        prefix="/dns",
        port=9000,
        ttl=5,
        selector=NetworkSelector(network=RDMA_NETWORK),
    )

    record = pod_record(vertex_pod("p"), opted_in(), settings)

    assert isinstance(record, DesiredRecord)
    assert record.key == "/dns/example/rdma/team/video/infer/p"
    assert json.loads(record.value) == {"host": "198.18.0.7", "port": 9000, "ttl": 5, "owner": "o"}


@pytest.mark.parametrize(
    ("pod", "namespace_labels", "skip"),
    [
        (vertex_pod("p"), {}, Skip.NAMESPACE_NOT_OPTED_IN),
        (vertex_pod("p"), None, Skip.NAMESPACE_NOT_OPTED_IN),
        (vertex_pod("p"), {names.INJECT_LABEL: "disabled"}, Skip.NAMESPACE_NOT_OPTED_IN),
        (
            vertex_pod("p", annotations={names.INJECT_ANNOTATION: "false"}),
            opted_in(),
            Skip.OPTED_OUT,
        ),
        (vertex_pod("p", deleting=True), opted_in(), Skip.TERMINATING),
        (vertex_pod("p", phase="Succeeded"), opted_in(), Skip.FINISHED),
        (vertex_pod("p", phase="Failed"), opted_in(), Skip.FINISHED),
        (vertex_pod("p", address=None), opted_in(), Skip.NO_ADDRESS_YET),
        (vertex_pod("p", ready=False), opted_in(), Skip.NOT_READY),
    ],
)
def test_pod_without_record(
    pod: dict[str, object], namespace_labels: dict[str, str] | None, skip: Skip
) -> None:
    assert pod_record(pod, namespace_labels, SETTINGS) is skip


def test_pod_without_conditions_is_not_ready() -> None:
    pod = vertex_pod("p")
    pod["status"] = {"phase": "Pending"}

    assert pod_record(pod, opted_in(), SETTINGS) is Skip.NOT_READY


def test_monovertex_pod_is_not_a_vertex() -> None:
    pod = vertex_pod("p")
    pod["metadata"]["labels"][names.LABEL_COMPONENT] = "mono-vertex"

    assert pod_record(pod, opted_in(), SETTINGS) is Skip.NOT_A_VERTEX_POD


def test_publish_not_ready_publishes() -> None:
    settings = RecordSettings(
        owner="o", selector=NetworkSelector(network=RDMA_NETWORK), publish_not_ready=True
    )

    assert isinstance(pod_record(vertex_pod("p", ready=False), opted_in(), settings), DesiredRecord)
    # Not-ready publishing still withdraws pods on their way out.
    assert (
        pod_record(vertex_pod("p", ready=False, deleting=True), opted_in(), settings)
        is Skip.TERMINATING
    )


def test_bad_status_before_ready_is_problem() -> None:
    pod = vertex_pod("p", address=None, ready=False)
    pod["metadata"]["annotations"][names.MULTUS_NETWORK_STATUS_ANNOTATION] = "{oops"

    with pytest.raises(PodProblem) as raised:
        pod_record(pod, opted_in(), SETTINGS)

    assert raised.value.reason == "InvalidNetworkStatus"


def test_terminating_pod_with_bad_status_is_skipped_quietly() -> None:
    pod = vertex_pod("p", deleting=True)
    pod["metadata"]["annotations"][names.MULTUS_NETWORK_STATUS_ANNOTATION] = "{oops"

    assert pod_record(pod, opted_in(), SETTINGS) is Skip.TERMINATING


def test_vertex_name_not_dns_label_is_problem() -> None:
    pod = vertex_pod("p", vertex="infer_v2")

    with pytest.raises(PodProblem) as raised:
        pod_record(pod, opted_in(), SETTINGS)

    assert raised.value.reason == "InvalidDnsName"
    assert "infer_v2" in raised.value.message


def test_missing_pipeline_label_is_problem() -> None:
    pod = vertex_pod("p")
    del pod["metadata"]["labels"][names.LABEL_PIPELINE_NAME]

    with pytest.raises(PodProblem) as raised:
        pod_record(pod, opted_in(), SETTINGS)

    assert raised.value.reason == "MissingVertexLabel"


def test_long_pod_name_gets_valid_label() -> None:
    name = "video-" + "x" * 70 + "-0-abcde"

    record = pod_record(vertex_pod(name), opted_in(), SETTINGS)

    assert isinstance(record, DesiredRecord)
    label = record.key.rsplit("/", 1)[1]
    assert label == names.pod_label(name)
    assert names.validate_label(label) == label


def test_state_separates_records_skips_and_problems() -> None:
    bad = vertex_pod("bad", vertex="Not_Valid")
    pods = [
        vertex_pod("a", address="198.18.0.1"),
        vertex_pod("b", address="198.18.0.2", ready=False),
        vertex_pod("c", namespace="closed", address="198.18.0.3"),
        bad,
    ]

    state = desired_state(pods, {"team": opted_in(), "closed": {}}, SETTINGS)

    assert sorted(record.host for record in state.records.values()) == ["198.18.0.1"]
    assert state.skipped[Skip.NOT_READY] == 1
    assert state.skipped[Skip.NAMESPACE_NOT_OPTED_IN] == 1
    assert [(str(ref), problem.reason) for ref, problem in state.problems] == [
        ("team/bad", "InvalidDnsName")
    ]
    assert state.values() == {key: record.value for key, record in state.records.items()}


def _outcome(pod: dict[str, Any], settings: RecordSettings = SETTINGS) -> object:
    try:
        return pod_record(pod, opted_in(), settings)
    except PodProblem as problem:
        return ("problem", problem.reason, problem.message)


def _pods_of_every_kind() -> list[dict[str, Any]]:
    bad_status = vertex_pod("bad-status")
    bad_status["metadata"]["annotations"][names.MULTUS_NETWORK_STATUS_ANNOTATION] = "{oops"
    no_conditions = vertex_pod("no-conditions")
    no_conditions["status"] = {"phase": "Pending"}
    two_ready = vertex_pod("two-ready")
    two_ready["status"]["conditions"].append({"type": "Ready", "status": "False"})
    numaflow = [*load_pods("video", namespace="team"), *load_other_pods(namespace="team")]
    for index, pod in enumerate(numaflow):
        pod["metadata"].setdefault("annotations", {})[names.MULTUS_NETWORK_STATUS_ANNOTATION] = (
            network_status(f"198.18.1.{index + 1}")
        )
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return [
        vertex_pod("ready"),
        vertex_pod("ipv6", address="fd00:198:18::7"),
        vertex_pod("not-ready", ready=False),
        vertex_pod("no-address", address=None),
        vertex_pod("deleting", deleting=True),
        vertex_pod("failed", phase="Failed"),
        vertex_pod("opted-out", annotations={names.INJECT_ANNOTATION: "false"}),
        vertex_pod("bad-vertex", vertex="Not_Valid"),
        bad_status,
        no_conditions,
        two_ready,
        *numaflow,
    ]


@pytest.mark.parametrize("publish_not_ready", [False, True])
def test_pod_fields_keep_every_outcome(publish_not_ready: bool) -> None:
    settings = RecordSettings(
        owner="o", selector=NetworkSelector(network=RDMA_NETWORK), publish_not_ready=publish_not_ready
    )
    pods = _pods_of_every_kind()

    outcomes = [_outcome(pod, settings) for pod in pods]

    assert [_outcome(pod_fields(pod), settings) for pod in pods] == outcomes
    assert sum(isinstance(outcome, DesiredRecord) for outcome in outcomes) >= 6


def test_pod_fields_drop_spec_and_other_annotations() -> None:
    pod = load_pods("video", namespace="team")[0]
    pod["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    pod["metadata"].setdefault("annotations", {})["example.com/large"] = "x" * 10_000

    fields = pod_fields(pod)

    assert set(fields) == {"metadata", "status"}
    assert "managedFields" not in fields["metadata"]
    assert "example.com/large" not in fields["metadata"]["annotations"]
    assert fields["metadata"]["labels"] == pod["metadata"]["labels"]
    assert len(json.dumps(fields)) * 10 < len(json.dumps(pod))


def test_namespace_fields_keep_name_and_labels() -> None:
    namespace = {
        "metadata": {
            "name": "team",
            "resourceVersion": "12",
            "labels": opted_in(),
            "annotations": {"example.com/a": "b"},
        },
        "spec": {"finalizers": ["kubernetes"]},
    }

    assert namespace_fields(namespace) == {
        "metadata": {"name": "team", "resourceVersion": "12", "labels": opted_in()}
    }
