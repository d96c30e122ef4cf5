"""Leader election over a real Lease in the API server, with clocks the tests move by hand."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient
from numaflow_rdma.dnssync.leader import RECORD_OWNERS_ANNOTATION, LeaderElector

pytestmark = pytest.mark.controlplane

DURATION = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BrokenClient(KubeClient):
    """A client whose every request fails as if the API server were unreachable."""

    def request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KubeApiError(0, "connection refused")


@pytest.fixture
def lease_name() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


def elector(kube: KubeClient, lease: str, owner: str, clock: Clock) -> LeaderElector:
    return LeaderElector(kube, "default", lease, f"{owner}_id", owner, DURATION, clock=clock)


def read_lease(kube: KubeClient, name: str) -> dict[str, Any]:
    return kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{name}")


def test_first_candidate_creates_lease(kube: KubeClient, lease_name: str) -> None:
    first = elector(kube, lease_name, "a", Clock())

    first.step()

    assert first.is_leader.is_set()
    lease = read_lease(kube, lease_name)
    assert lease["spec"]["holderIdentity"] == "a_id"
    assert lease["spec"]["leaseDurationSeconds"] == 10
    assert lease["metadata"]["annotations"][RECORD_OWNERS_ANNOTATION] == "a"
    assert first.record_owners() == {"a"}


def test_standby_waits_until_lease_expires(kube: KubeClient, lease_name: str) -> None:
    clock_a, clock_b = Clock(), Clock()
    first, second = elector(kube, lease_name, "a", clock_a), elector(kube, lease_name, "b", clock_b)
    first.step()
    second.step()
    assert not second.is_leader.is_set()

    # The leader dies: no more renewals. Just before the lease duration, less one poll, nothing happens.
    clock_b.now += DURATION - second.retry_period - 0.01
    second.step()
    assert not second.is_leader.is_set()

    clock_b.now += 0.02
    second.step()
    assert second.is_leader.is_set()
    lease = read_lease(kube, lease_name)
    assert lease["spec"]["holderIdentity"] == "b_id"
    assert lease["spec"]["leaseTransitions"] == 1
    # The new leader adopts the records of the one before.
    assert second.record_owners() == {"a", "b"}
    assert lease["metadata"]["annotations"][RECORD_OWNERS_ANNOTATION] == "a,b"

    # The old leader, back from a pause, finds the Lease taken and steps down.
    first.step()
    assert not first.is_leader.is_set()


def test_renewals_keep_standby_waiting(kube: KubeClient, lease_name: str) -> None:
    clock_a, clock_b = Clock(), Clock()
    first, second = elector(kube, lease_name, "a", clock_a), elector(kube, lease_name, "b", clock_b)
    first.step()
    for _ in range(5):
        second.step()
        clock_b.now += DURATION / 2
        first.step()

    assert first.is_leader.is_set()
    assert not second.is_leader.is_set()


def test_leader_steps_down_after_renew_deadline(kube: KubeClient, lease_name: str) -> None:
    clock = Clock()
    leader = elector(kube, lease_name, "a", clock)
    leader.step()
    leader.client = BrokenClient(kube.api_client)

    clock.now += leader.renew_deadline - 0.1
    leader.step()
    assert leader.is_leader.is_set()

    clock.now += 0.2
    leader.step()
    assert not leader.is_leader.is_set()


def test_release_lets_standby_take_over_at_once(kube: KubeClient, lease_name: str) -> None:
    first, second = elector(kube, lease_name, "a", Clock()), elector(kube, lease_name, "b", Clock())
    first.step()
    second.step()

    first.release()
    second.step()

    assert not first.is_leader.is_set()
    assert second.is_leader.is_set()


def test_former_owners_are_forgotten_on_request(kube: KubeClient, lease_name: str) -> None:
    clock_b = Clock()
    first, second = elector(kube, lease_name, "a", Clock()), elector(kube, lease_name, "b", clock_b)
    first.step()
    second.step()
    clock_b.now += DURATION
    second.step()
    assert second.record_owners() == {"a", "b"}

    second.forget_former_owners()
    second.step()

    assert second.record_owners() == {"b"}
    assert read_lease(kube, lease_name)["metadata"]["annotations"][RECORD_OWNERS_ANNOTATION] == "b"


def test_leadership_changes_are_reported(kube: KubeClient, lease_name: str) -> None:
    changes: list[bool] = []
    clock = Clock()
    leader = LeaderElector(
        kube, "default", lease_name, "a_id", "a", DURATION, on_change=changes.append, clock=clock
    )

    leader.step()
    leader.step()
    leader.release()

    assert changes == [True, False]
