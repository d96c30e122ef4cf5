"""Leader election through a ``coordination.k8s.io`` Lease, so only one replica writes records.

Each replica polls the Lease every ``retry_period`` seconds. The holder
renews it, and a holder that cannot renew for ``renew_deadline`` seconds
stops being the leader. A standby takes the Lease when its holder field is
empty (released), or when the Lease has not changed for ``lease_duration``
minus one poll. The standby measures that time with its own clock from the
moment it saw the last change, so clock skew between nodes does not matter. Writes go through the
API server's optimistic concurrency (resourceVersion), so two standbys never
both win. The renew deadline is shorter than the takeover time, so a leader
that loses contact stops writing before anyone else starts.

Records carry the owner id of the replica that wrote them, and a replica's
default owner id is its pod name. So that a new leader can update and delete
the records of the one before, the Lease keeps the owner ids of its holders
in the annotation ``numaflow-rdma/record-owners``: a new leader adds its own
and adopts every record owned by one of them. Once a full sync leaves no
record of a former owner, the list shrinks to the current one.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient
from numaflow_rdma.dnssync.retry import retry_message

logger = logging.getLogger(__name__)

RECORD_OWNERS_ANNOTATION = "numaflow-rdma/record-owners"


def new_identity(name: str) -> str:
    """Return a holder identity unique to this process: ``name`` plus a random suffix.

    Two replicas may share an owner id, but never a holder identity.
    """
    return f"{name}_{uuid.uuid4().hex[:8]}"


def _now_text() -> str:
    # The Lease's MicroTime format.
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Takes and holds one Lease; ``is_leader`` is set while this process holds it."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        owner_id: str,
        lease_duration: float,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.owner_id = owner_id
        self.lease_duration = lease_duration
        self.retry_period = max(0.1, lease_duration / 10)
        self.renew_deadline = lease_duration * 2 / 3
        self.is_leader = threading.Event()
        self._on_change = on_change
        self._clock = clock
        self._owners: frozenset[str] = frozenset({owner_id})
        self._prune_owners = False
        self._last_renew = 0.0
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._failures = 0
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """Return the Lease's API path."""
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def record_owners(self) -> frozenset[str]:
        """Return the owner ids whose records the leader manages: its own and its predecessors'."""
        with self._lock:
            return self._owners

    def forget_former_owners(self) -> None:
        """Shrink the Lease's owner list to this replica's at the next renewal.

        Call after a full sync that left no record of a former owner.
        """
        with self._lock:
            if self._owners != {self.owner_id}:
                self._prune_owners = True

    def run(self, stop: threading.Event) -> None:
        """Try to take or renew the Lease every retry period until ``stop``; release it then."""
        logger.info(
            "Starting leader election for Lease %s/%s as %s (lease duration %.1f s).",
            self.namespace,
            self.name,
            self.identity,
            self.lease_duration,
        )
        while not stop.is_set():
            self.step()
            stop.wait(self.retry_period)
        self.release()

    def step(self) -> None:
        """Make one attempt to take or renew the Lease."""
        try:
            lease = self._read()
            if lease is None:
                self._create()
            elif _holder(lease) == self.identity:
                self._renew(lease)
            else:
                self._follow(lease)
            self._failures = 0
        except KubeApiError as error:
            if error.status == 409:
                # Someone else wrote the Lease between our read and write; read it again.
                logger.debug(
                    "Lease %s/%s changed while updating it: %s", self.namespace, self.name, error
                )
            else:
                self._failures += 1
                logger.warning(
                    retry_message(
                        self._failures,
                        None,
                        self.retry_period,
                        f"PUT Lease {self.namespace}/{self.name}",
                        error,
                    )
                )
        if self.is_leader.is_set() and self._clock() - self._last_renew > self.renew_deadline:
            self._set_leader(
                False,
                f"no renewal for {self.renew_deadline:.1f} s, the renew deadline",
            )

    def release(self) -> None:
        """Give up the Lease so a standby can take it at once; only if this process holds it."""
        if not self.is_leader.is_set():
            return
        self._set_leader(False, "stopping", expected=True)
        try:
            lease = self._read()
            if lease is None or _holder(lease) != self.identity:
                return
            spec = lease.setdefault("spec", {})
            spec["holderIdentity"] = None
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = _now_text()
            self.client.request("PUT", self.path, body=lease)
            logger.info("Released Lease %s/%s.", self.namespace, self.name)
        except KubeApiError as error:
            logger.warning("Releasing Lease %s/%s failed: %s", self.namespace, self.name, error)

    def _read(self) -> dict[str, Any] | None:
        try:
            return self.client.request("GET", self.path)
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise

    def _create(self) -> None:
        now = _now_text()
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": {RECORD_OWNERS_ANNOTATION: self.owner_id},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        self.client.request(
            "POST", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases", body=lease
        )
        self._became_leader(frozenset({self.owner_id}))

    def _renew(self, lease: dict[str, Any]) -> None:
        with self._lock:
            owners = (
                frozenset({self.owner_id}) if self._prune_owners else self._owners | {self.owner_id}
            )
        _set_owners(lease, owners)
        lease["spec"]["renewTime"] = _now_text()
        lease["spec"]["leaseDurationSeconds"] = max(1, round(self.lease_duration))
        self.client.request("PUT", self.path, body=lease)
        self._last_renew = self._clock()
        with self._lock:
            if self._prune_owners and owners == {self.owner_id}:
                self._prune_owners = False
                self._owners = owners
        if not self.is_leader.is_set():
            # This process held the Lease already, for example after a renewal failed for a while.
            self._became_leader(owners)

    def _follow(self, lease: dict[str, Any]) -> None:
        if self.is_leader.is_set():
            self._set_leader(False, f"Lease taken by {_holder(lease)}")
        spec = lease.get("spec") or {}
        observed = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            (lease.get("metadata") or {}).get("resourceVersion"),
        )
        now = self._clock()
        if observed != self._observed:
            self._observed = observed
            self._observed_at = now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        # The Lease changed at most one poll before we saw it, so one poll is subtracted.
        expired = now - self._observed_at >= duration - self.retry_period
        if _holder(lease) and not expired:
            return

        # Take over: the holder released the Lease or stopped renewing it.
        owners = _owners(lease) | {self.owner_id}
        previous = _holder(lease) or "nobody"
        now_text = _now_text()
        spec = lease.setdefault("spec", {})
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = max(1, round(self.lease_duration))
        spec["acquireTime"] = now_text
        spec["renewTime"] = now_text
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        _set_owners(lease, owners)
        self.client.request("PUT", self.path, body=lease)
        logger.info("Took Lease %s/%s over from %s.", self.namespace, self.name, previous)
        self._became_leader(owners)

    def _became_leader(self, owners: frozenset[str]) -> None:
        with self._lock:
            self._owners = owners
            self._prune_owners = False
        self._last_renew = self._clock()
        self._set_leader(True, f"record owners {', '.join(sorted(owners))}")

    def _set_leader(self, leader: bool, reason: str, *, expected: bool = False) -> None:
        if leader == self.is_leader.is_set():
            return
        if leader:
            self.is_leader.set()
            logger.info(
                "Became the leader of Lease %s/%s as %s: %s.",
                self.namespace,
                self.name,
                self.identity,
                reason,
            )
        else:
            self.is_leader.clear()
            log = logger.info if expected else logger.warning
            log("Stopped leading Lease %s/%s: %s.", self.namespace, self.name, reason)
        if self._on_change is not None:
            self._on_change(leader)


def _holder(lease: dict[str, Any]) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _owners(lease: dict[str, Any]) -> frozenset[str]:
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(RECORD_OWNERS_ANNOTATION, "")
    return frozenset(owner.strip() for owner in text.split(",") if owner.strip())


def _set_owners(lease: dict[str, Any], owners: frozenset[str]) -> None:
    metadata = lease.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    annotations[RECORD_OWNERS_ANNOTATION] = ",".join(sorted(owners))
    metadata["annotations"] = annotations
