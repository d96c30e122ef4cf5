"""``numaflow-rdma dnssync`` as a process: the vertex name answers exactly the pods that can take frames."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import (
    DnssyncProcess,
    Pods,
    answers,
    rcode_of,
    set_namespace_label,
    vertex_name,
    wait_until,
)
from secureetcd import PASSWORD, USER, SecureEtcd

from numaflow_rdma import names
from numaflow_rdma.controlplane import ControlPlane
from numaflow_rdma.controlplane.process import free_port
from numaflow_rdma.dnssync.kube import KubeClient

pytestmark = pytest.mark.controlplane

StartDnssync = Callable[..., DnssyncProcess]
MakeNamespace = Callable[..., str]


def test_vertex_name_answers_ready_pods(
    start_dnssync: StartDnssync, make_vertex_namespace: MakeNamespace, pods: Pods, dns_resolver: Any
) -> None:
    namespace = make_vertex_namespace()
    name = vertex_name(namespace)
    start_dnssync()

    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    pods.create(namespace, "video-infer-2-ccccc")
    pods.attach(namespace, "video-infer-2-ccccc", "198.18.0.3")
    # Another vertex of the same pipeline must not leak into this name.
    pods.start(namespace, "video-decode-0-ddddd", "198.18.0.4", vertex="decode")

    wait_until(
        lambda: answers(dns_resolver, name) == {"198.18.0.1", "198.18.0.2"}, what="two ready pods"
    )
    assert answers(dns_resolver, f"video-infer-0-aaaaa.{name}") == {"198.18.0.1"}
    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace, vertex="decode")) == {"198.18.0.4"},
        what="the decode pod",
    )
    assert answers(dns_resolver, name) == {"198.18.0.1", "198.18.0.2"}
    assert answers(dns_resolver, name, "SRV") == {
        f"7470 video-infer-0-aaaaa.{name}.",
        f"7470 video-infer-1-bbbbb.{name}.",
    }

    # The third pod becomes Ready; the first stops being Ready; the second is deleted.
    pods.set_ready(namespace, "video-infer-2-ccccc")
    wait_until(lambda: "198.18.0.3" in answers(dns_resolver, name), what="the third pod")
    pods.set_ready(namespace, "video-infer-0-aaaaa", ready=False)
    pods.delete(namespace, "video-infer-1-bbbbb")
    wait_until(lambda: answers(dns_resolver, name) == {"198.18.0.3"}, what="only the third pod")
    assert answers(dns_resolver, f"video-infer-0-aaaaa.{name}") == set()


def test_ipv6_address_answers_aaaa(
    start_dnssync: StartDnssync, make_vertex_namespace: MakeNamespace, pods: Pods, dns_resolver: Any
) -> None:
    namespace = make_vertex_namespace()
    start_dnssync()

    pods.start(namespace, "video-infer-0-aaaaa", "fd00:198:18::1")

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace), "AAAA") == {"fd00:198:18::1"},
        what="AAAA",
    )
    assert answers(dns_resolver, vertex_name(namespace), "A") == set()


def test_new_sandbox_address_replaces_old(
    start_dnssync: StartDnssync, make_vertex_namespace: MakeNamespace, pods: Pods, dns_resolver: Any
) -> None:
    namespace = make_vertex_namespace()
    start_dnssync()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1"},
        what="first address",
    )

    # A recreated sandbox gets a new address; Multus rewrites network-status.
    pods.attach(namespace, "video-infer-0-aaaaa", "198.18.0.9")

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.9"}, what="new address"
    )


def test_namespace_losing_label_loses_records(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    kube: KubeClient,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    closed = make_vertex_namespace(opted_in=False)
    start_dnssync()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(closed, "video-infer-0-bbbbb", "198.18.0.2")
    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1"}, what="opted-in pod"
    )
    assert answers(dns_resolver, vertex_name(closed)) == set()

    set_namespace_label(kube, namespace, None)
    set_namespace_label(kube, closed, names.INJECT_LABEL_ENABLED)

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == set(), what="records withdrawn"
    )
    wait_until(
        lambda: answers(dns_resolver, vertex_name(closed)) == {"198.18.0.2"},
        what="newly opted-in pod",
    )


def test_opted_out_pod_gets_no_record(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    kube: KubeClient,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    start_dnssync()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    wait_until(lambda: len(answers(dns_resolver, vertex_name(namespace))) == 2, what="both pods")

    kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/video-infer-1-bbbbb",
        body={
            "metadata": {"annotations": {names.INJECT_ANNOTATION: names.INJECT_ANNOTATION_DISABLED}}
        },
        content_type="application/merge-patch+json",
    )

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1"}, what="opt-out"
    )


def test_foreign_keys_are_never_touched(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    dns_etcd_client: Any,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    vertex_key = names.vertex_etcd_prefix("infer", "video", namespace)
    taken_key = names.pod_etcd_key("video-infer-1-bbbbb", "infer", "video", namespace)
    sibling = json.dumps({"host": "198.18.9.1", "port": 7470, "owner": "someone-else"})
    taken = json.dumps({"host": "198.18.9.2", "port": 7470, "owner": "someone-else"})
    dns_etcd_client.put(vertex_key + "manual", sibling)
    dns_etcd_client.put(taken_key, taken)
    process = start_dnssync()

    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    wait_until(
        lambda: "198.18.0.1" in answers(dns_resolver, vertex_name(namespace)), what="own record"
    )
    conflict = f"Leaving etcd key {taken_key} alone: owned by someone-else"
    wait_until(lambda: conflict in process.log(), what="the conflict report")
    assert answers(dns_resolver, vertex_name(namespace)) == {
        "198.18.0.1",
        "198.18.9.1",
        "198.18.9.2",
    }
    pods.delete(namespace, "video-infer-0-aaaaa")
    pods.delete(namespace, "video-infer-1-bbbbb")
    wait_until(
        lambda: "198.18.0.1" not in answers(dns_resolver, vertex_name(namespace)),
        what="own record gone",
    )
    # One full resync later, both foreign keys are still as they were written.
    resyncs = process.log().count("Full sync")
    wait_until(lambda: process.log().count("Full sync") > resyncs, timeout=15, what="a full sync")

    assert dns_etcd_client.get(vertex_key + "manual")[0].decode() == sibling
    assert dns_etcd_client.get(taken_key)[0].decode() == taken
    assert answers(dns_resolver, vertex_name(namespace)) == {"198.18.9.1", "198.18.9.2"}
    assert (
        f"Leaving etcd key {vertex_key}manual alone: someone else's record under" in process.log()
    )


def test_unparsable_value_is_reported(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    dns_etcd_client: Any,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    bad_key = names.vertex_etcd_prefix("infer", "video", namespace) + "broken"
    dns_etcd_client.put(bad_key, "{not json")
    # This is why it is reported: CoreDNS fails every name above the value.
    assert rcode_of(dns_resolver, vertex_name(namespace)) == "SERVFAIL"

    process = start_dnssync()

    wait_until(
        lambda: f"Leaving etcd key {bad_key} alone: not valid JSON" in process.log(), what="report"
    )
    assert "SERVFAIL for every name above" in process.log()
    status, metrics = process.probe("/metrics")
    assert status == 200
    assert 'numaflow_rdma_dnssync_conflicts{kind="invalid-value"}' in metrics
    assert dns_etcd_client.get(bad_key)[0] == b"{not json"


def test_bad_network_status_gets_event(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    process = start_dnssync()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    bad = {
        "video-infer-1-bbbbb": "{not json",
        "video-infer-2-ccccc": json.dumps(
            [{"name": "rdma/rdma-net", "interface": "net1", "ips": "198.18.0.3"}]
        ),
        "video-infer-3-ddddd": json.dumps(
            [{"name": "rdma/rdma-net", "interface": "net1", "ips": []}]
        ),
        "video-infer-4-eeeee": json.dumps({"name": "rdma/rdma-net"}),
    }
    for name, value in bad.items():
        pods.create(namespace, name)
        pods.set_network_status(namespace, name, value)
        pods.set_ready(namespace, name)
    pods.start(namespace, "video-infer-5-fffff", "198.18.0.5")

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1", "198.18.0.5"},
        what="the good pods only",
    )
    for name in bad:

        def events_of(name: str = name) -> list[dict[str, Any]]:
            return pods.events(namespace, name)

        events = wait_until(events_of, what=f"an Event on {name}")
        assert events[0]["reason"] == "InvalidNetworkStatus"
        assert events[0]["type"] == "Warning"
        assert events[0]["message"].startswith("No DNS record for this pod: ")
    # Each problem is logged once, although every sync finds it again.
    resyncs = process.log().count("Full sync")
    wait_until(lambda: process.log().count("Full sync") > resyncs, timeout=15, what="a full sync")
    assert process.log().count(f"Skipping pod {namespace}/video-infer-1-bbbbb") == 1
    assert process.probe("/healthz")[0] == 200


def test_pods_deleted_while_stopped_are_removed(
    start_dnssync: StartDnssync, make_vertex_namespace: MakeNamespace, pods: Pods, dns_resolver: Any
) -> None:
    namespace = make_vertex_namespace()
    first = start_dnssync("first")
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    wait_until(lambda: len(answers(dns_resolver, vertex_name(namespace))) == 2, what="both pods")
    first.stop()

    pods.delete(namespace, "video-infer-0-aaaaa")
    assert answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1", "198.18.0.2"}
    # The next instance has another owner id, as a new pod of a Deployment would.
    start_dnssync("second")

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.2"},
        what="stale record gone",
    )


def test_dry_run_writes_nothing(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    dns_etcd_client: Any,
) -> None:
    namespace = make_vertex_namespace()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    key = names.pod_etcd_key("video-infer-0-aaaaa", "infer", "video", namespace)

    process = start_dnssync(extra=("--dry-run",))

    wait_until(lambda: f"Dry run: would create {key}" in process.log(), what="the planned create")
    assert dns_etcd_client.get(key)[0] is None
    assert "leader election off" in process.log()


def test_health_and_metrics(
    start_dnssync: StartDnssync, make_vertex_namespace: MakeNamespace, pods: Pods, dns_resolver: Any
) -> None:
    namespace = make_vertex_namespace()
    process = start_dnssync()
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1"}, what="the record"
    )

    assert process.probe("/healthz") == (200, "ok\n")
    status, reason = process.probe("/readyz")
    assert status == 200
    assert reason.startswith("ok: leader")
    assert process.metric("numaflow_rdma_dnssync_is_leader") == 1.0
    assert (process.metric("numaflow_rdma_dnssync_records") or 0) >= 1
    _, metrics = process.probe("/metrics")
    for name in (
        "numaflow_rdma_dnssync_plan_size",
        "numaflow_rdma_dnssync_changes_total",
        "numaflow_rdma_dnssync_event_to_write_seconds_bucket",
        "numaflow_rdma_dnssync_etcd_errors_total",
        "numaflow_rdma_dnssync_apply_errors_total",
    ):
        assert name in metrics
    assert process.probe("/nothing")[0] == 404
    log = process.log()
    assert "Starting dnssync" in log
    assert "Became the leader of Lease" in log


def test_secure_etcd_from_options(
    control_plane: ControlPlane,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    tmp_path: Path,
) -> None:
    assert control_plane.apiserver is not None
    etcd = SecureEtcd(tmp_path)
    etcd.start()
    try:
        namespace = make_vertex_namespace()
        pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
        process = DnssyncProcess(
            tmp_path,
            "dnssync-secure",
            kubeconfig=control_plane.apiserver.kubeconfig_path,
            etcd_endpoint=f"https://127.0.0.1:{free_port()},{etcd.endpoint}",
            owner_id="secure-test",
            lease_name=f"secure-{uuid.uuid4().hex[:8]}",
            extra=(
                f"--etcd-ca-file={etcd.ca_file}",
                f"--etcd-cert-file={etcd.client_cert}",
                f"--etcd-key-file={etcd.client_key}",
                f"--etcd-username={USER}",
            ),
            # The password comes from the environment, as from a Secret in a pod.
            environment={"NUMAFLOW_RDMA_DNSSYNC_ETCD_PASSWORD": PASSWORD},
        )
        try:
            process.start()
            key = names.pod_etcd_key("video-infer-0-aaaaa", "infer", "video", namespace)
            client = etcd.client(USER, PASSWORD)
            try:
                value = wait_until(lambda: client.get(key)[0], what="the record in the secure etcd")  # type: ignore[attr-defined]
            finally:
                client.close()  # type: ignore[attr-defined]
            assert json.loads(value) == {
                "host": "198.18.0.1",
                "owner": "secure-test",
                "port": 7470,
                "ttl": 30,
            }
            assert PASSWORD not in process.log()
        finally:
            process.stop()
    finally:
        etcd.stop()


def test_terminating_and_finished_pods_are_withdrawn(
    start_dnssync: StartDnssync,
    make_vertex_namespace: MakeNamespace,
    pods: Pods,
    kube: KubeClient,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    start_dnssync()
    for index in range(3):
        pods.start(namespace, f"video-infer-{index}-aaaaa", f"198.18.0.{index + 1}")
    wait_until(lambda: len(answers(dns_resolver, vertex_name(namespace))) == 3, what="three pods")
    pod_path = f"/api/v1/namespaces/{namespace}/pods/video-infer-0-aaaaa"
    finalizer = {"metadata": {"finalizers": ["numaflow-rdma.test/hold"]}}
    kube.request("PATCH", pod_path, body=finalizer, content_type="application/merge-patch+json")

    # A finalizer keeps the deleted pod, with a deletion timestamp and its network-status.
    kube.request("DELETE", pod_path)
    pods.patch_status(namespace, "video-infer-1-aaaaa", {"status": {"phase": "Succeeded"}})

    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.3"}, what="withdrawals"
    )
    assert kube.request("GET", pod_path)["metadata"]["deletionTimestamp"]
    kube.request(
        "PATCH",
        pod_path,
        body={"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
