"""Two ``numaflow-rdma dnssync`` replicas: one leads and writes; when it is killed the other takes over."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from harness import DnssyncProcess, Pods, answers, vertex_name, wait_until

pytestmark = pytest.mark.controlplane

LEASE_DURATION = 3.0


def leader_of(replicas: list[DnssyncProcess]) -> DnssyncProcess | None:
    leaders = [
        replica for replica in replicas if replica.metric("numaflow_rdma_dnssync_is_leader") == 1.0
    ]
    assert len(leaders) <= 1, "two replicas report being the leader"
    return leaders[0] if leaders else None


def test_standby_takes_over_after_leader_is_killed(
    start_dnssync: Callable[..., DnssyncProcess],
    make_vertex_namespace: Callable[..., str],
    pods: Pods,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    name = vertex_name(namespace)
    replicas = [start_dnssync("replica-a"), start_dnssync("replica-b")]
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    pods.start(namespace, "video-infer-1-bbbbb", "198.18.0.2")
    wait_until(
        lambda: answers(dns_resolver, name) == {"198.18.0.1", "198.18.0.2"}, what="both records"
    )
    leader = wait_until(lambda: leader_of(replicas), what="a leader")
    standby = replicas[1] if leader is replicas[0] else replicas[0]
    assert standby.probe("/readyz") == (200, "ok: standby\n")
    assert "Became the leader" not in standby.log()

    # SIGKILL: no release of the Lease, no goodbye, as in a node crash.
    killed_at = time.monotonic()
    leader.kill()
    wait_until(
        lambda: standby.metric("numaflow_rdma_dnssync_is_leader") == 1.0,
        timeout=4 * LEASE_DURATION,
        interval=0.02,
        what="the standby to lead",
    )
    takeover = time.monotonic() - killed_at
    print(
        f"takeover after SIGKILL of the leader: {takeover:.2f} s (lease duration {LEASE_DURATION:.0f} s)"
    )
    assert "Took Lease" in standby.log()

    # The new leader, with another owner id, changes the records the dead one wrote.
    pods.delete(namespace, "video-infer-0-aaaaa")
    pods.start(namespace, "video-infer-2-ccccc", "198.18.0.3")
    wait_until(
        lambda: answers(dns_resolver, name) == {"198.18.0.2", "198.18.0.3"},
        what="records after takeover",
    )


def test_stopped_leader_hands_over_at_once(
    start_dnssync: Callable[..., DnssyncProcess],
    make_vertex_namespace: Callable[..., str],
    pods: Pods,
    dns_resolver: Any,
) -> None:
    namespace = make_vertex_namespace()
    replicas = [start_dnssync("replica-a"), start_dnssync("replica-b")]
    leader = wait_until(lambda: leader_of(replicas), what="a leader")
    standby = replicas[1] if leader is replicas[0] else replicas[0]

    stopped_at = time.monotonic()
    leader.stop()
    wait_until(
        lambda: standby.metric("numaflow_rdma_dnssync_is_leader") == 1.0,
        timeout=4 * LEASE_DURATION,
        interval=0.02,
        what="the standby to lead",
    )
    handover = time.monotonic() - stopped_at

    assert "Released Lease" in leader.log()
    # A released Lease is taken at the standby's next poll, well before it would expire.
    assert handover < LEASE_DURATION
    pods.start(namespace, "video-infer-0-aaaaa", "198.18.0.1")
    wait_until(
        lambda: answers(dns_resolver, vertex_name(namespace)) == {"198.18.0.1"}, what="a record"
    )
