"""The controller: watches fill caches, and a reconcile loop turns them into etcd writes.

Threads and what each does:

- two reflectors list and watch vertex pods (selected by Numaflow's vertex
  labels, in all namespaces) and namespaces into caches;
- the leader elector holds the Lease, when leader election is on;
- the reconcile loop runs a sync after every cache change, after a short
  pause that gathers a burst of events into one sync, and a full sync every
  resync interval. Only the leader syncs.

A sync computes the desired records from the caches, plans against the
values last read from etcd under the zone, and applies the plan. An
event-driven sync reuses the values read before, updated with its own
writes. A full sync reads etcd again, which repairs drift and removes the
records of pods deleted while dnssync was down. When etcd is unavailable,
the controller keeps its caches, reports not ready and tries again with
backoff. The first sync after an outage is a full one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from numaflow_rdma import names
from numaflow_rdma.dnssync.addresses import NetworkSelector
from numaflow_rdma.dnssync.desired import (
    DesiredState,
    RecordSettings,
    Skip,
    desired_state,
    namespace_fields,
    pod_fields,
)
from numaflow_rdma.dnssync.etcd import ApplyResult, EtcdUnavailableError, RecordStore, apply_plan
from numaflow_rdma.dnssync.kube import KubeClient
from numaflow_rdma.dnssync.leader import LeaderElector, new_identity
from numaflow_rdma.dnssync.metrics import Metrics
from numaflow_rdma.dnssync.plan import Conflict, ConflictKind, CurrentRecord, Plan, calculate_plan
from numaflow_rdma.dnssync.reporting import ProblemReporter
from numaflow_rdma.dnssync.retry import Backoff
from numaflow_rdma.dnssync.settings import Settings
from numaflow_rdma.dnssync.watch import (
    DEFAULT_WATCH_TIMEOUT,
    ObjectCache,
    Reflector,
    Resource,
    list_objects,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

POD_RESOURCE = Resource(
    "pods",
    "/api/v1/pods",
    label_selector=",".join(
        f"{key}={value}" for key, value in sorted(names.VERTEX_POD_LABELS.items())
    ),
    fields=pod_fields,
)
NAMESPACE_RESOURCE = Resource("namespaces", "/api/v1/namespaces", fields=namespace_fields)

# Seconds to wait after a cache change before syncing, so a burst of events
# becomes one sync.
COALESCE_SECONDS = 0.02


def record_settings(settings: Settings) -> RecordSettings:
    """Return what every record is built from, taken from the instance's settings."""
    return RecordSettings(
        owner=settings.owner_id,
        zone=settings.zone,
        prefix=settings.prefix,
        port=settings.transport_port,
        ttl=settings.record_ttl,
        selector=NetworkSelector(settings.network, settings.interface),
        publish_not_ready=settings.publish_not_ready,
    )


def namespace_labels(namespaces: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Map each namespace's name to its labels."""
    return {
        str(namespace["metadata"]["name"]): dict(namespace["metadata"].get("labels") or {})
        for namespace in namespaces
        if namespace.get("metadata", {}).get("name")
    }


@dataclass(frozen=True)
class SyncResult:
    """The counts of one sync, in etcd keys unless named otherwise, and its duration in seconds."""

    desired: int
    created: int
    updated: int
    deleted: int
    conflicts: int
    """Keys the plan left alone and reported."""
    failed_compares: int
    """Changes not made because the key changed after it was read."""
    owned: int
    """Records owned by this instance after the sync."""
    pod_problems: int
    full: bool
    interrupted: bool
    seconds: float


class Synchronizer:
    """Plans and applies against a RecordStore, remembering the values it last read and wrote."""

    def __init__(
        self,
        settings: Settings,
        store: RecordStore,
        metrics: Metrics,
        reporter: ProblemReporter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.reporter = reporter
        self.current: dict[str, CurrentRecord] | None = None
        self.former_owner_records = 0

    def sync(
        self,
        desired: DesiredState,
        owners: Collection[str],
        *,
        full: bool,
        may_write: Callable[[], bool] = lambda: True,
    ) -> SyncResult:
        """Plan and apply once; ``full`` reads etcd again first. Raises EtcdUnavailableError."""
        started = time.monotonic()

        # First, the current values: read again, or those of the last sync.
        full = full or self.current is None
        if full:
            values = self.store.get_prefix(self.settings.zone_prefix)
            self.current = {
                key: CurrentRecord.from_value(key, value) for key, value in values.items()
            }
        assert self.current is not None

        # Then the plan, reported before anything is written.
        plan = calculate_plan(desired.values(), self.current, owners)
        self._record_plan(desired, plan)
        if self.reporter is not None:
            self.reporter.report(desired.problems, plan.conflicts)
        if plan.has_changes:
            logger.info(
                "Applying plan: %d to create, %d to update, %d to delete.",
                len(plan.creates),
                len(plan.updates),
                len(plan.deletes),
            )
            for change in plan.changes:
                logger.debug("Plan: %s %s -> %s", change.key, change.old, change.new)

        # Then apply it, keeping the remembered values in step with each write.
        try:
            result = apply_plan(plan, self.store, may_write)
        except EtcdUnavailableError:
            self.metrics.apply_errors.labels("unavailable").inc()
            self.current = None
            raise
        for change in result.applied:
            if change.new is None:
                self.current.pop(change.key, None)
            else:
                self.current[change.key] = CurrentRecord.from_value(change.key, change.new)
            if change.new is None:
                action = "delete"
            elif change.old is None:
                action = "create"
            else:
                action = "update"
            self.metrics.changes.labels(action).inc()
        if result.conflicts:
            self.metrics.apply_errors.labels("conflict").inc(len(result.conflicts))
            for change in result.conflicts:
                logger.warning(
                    "Not changing etcd key %s: its value changed after it was read.", change.key
                )
            self.current = None
        if result.interrupted:
            logger.warning("Stopped applying the plan: this instance is no longer the leader.")

        return self._finish(desired, plan.conflicts, owners, result, full, started)

    def _record_plan(self, desired: DesiredState, plan: Plan) -> None:
        metrics = self.metrics
        metrics.desired_records.set(len(desired.records))
        metrics.plan_size.labels("create").set(len(plan.creates))
        metrics.plan_size.labels("update").set(len(plan.updates))
        metrics.plan_size.labels("delete").set(len(plan.deletes))
        for kind in ConflictKind:
            count = sum(1 for conflict in plan.conflicts if conflict.kind == kind)
            metrics.conflicts.labels(kind.value).set(count)
        for skip in Skip:
            metrics.skipped_pods.labels(skip.value).set(desired.skipped[skip])
        # Reasons come and go with the pods, so the old series are dropped first.
        metrics.pod_problems.clear()
        for reason in sorted({problem.reason for _, problem in desired.problems}):
            count = sum(1 for _, problem in desired.problems if problem.reason == reason)
            metrics.pod_problems.labels(reason).set(count)

    def _finish(
        self,
        desired: DesiredState,
        conflicts: tuple[Conflict, ...],
        owners: Collection[str],
        result: ApplyResult,
        full: bool,
        started: float,
    ) -> SyncResult:
        current = self.current or {}
        owned = sum(1 for record in current.values() if record.owner == self.settings.owner_id)
        self.former_owner_records = sum(
            1
            for record in current.values()
            if record.owner in owners and record.owner != self.settings.owner_id
        )
        self.metrics.records.set(owned)
        seconds = time.monotonic() - started
        self.metrics.sync_seconds.labels("full" if full else "event").observe(seconds)
        applied = result.applied
        return SyncResult(
            desired=len(desired.records),
            created=sum(1 for c in applied if c.old is None),
            updated=sum(1 for c in applied if c.old is not None and c.new is not None),
            deleted=sum(1 for c in applied if c.new is None),
            conflicts=len(conflicts),
            failed_compares=len(result.conflicts),
            owned=owned,
            pod_problems=len(desired.problems),
            full=full,
            interrupted=result.interrupted,
            seconds=seconds,
        )


def sync_once(
    settings: Settings,
    kube: KubeClient,
    store: RecordStore,
    *,
    owners: Collection[str] | None = None,
    metrics: Metrics | None = None,
) -> SyncResult:
    """List pods and namespaces once, read etcd, plan and apply: one full sync without watches.

    Benchmarks and one-off repairs call this; the controller does the same on
    every resync from its caches.
    """
    pods, _ = list_objects(kube, POD_RESOURCE)
    namespaces, _ = list_objects(kube, NAMESPACE_RESOURCE)
    desired = desired_state(pods, namespace_labels(namespaces), record_settings(settings))
    synchronizer = Synchronizer(settings, store, metrics or Metrics())
    return synchronizer.sync(desired, owners or {settings.owner_id}, full=True)


class Controller:
    """One dnssync instance: watches, leader election and the reconcile loop."""

    def __init__(
        self,
        settings: Settings,
        api_client: ApiClient,
        store: RecordStore,
        *,
        metrics: Metrics | None = None,
        identity: str | None = None,
        watch_timeout: int = DEFAULT_WATCH_TIMEOUT,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.kube = KubeClient(api_client)
        self.metrics = metrics or Metrics()
        self.stop_event = stop or threading.Event()
        self.identity = identity or new_identity(settings.owner_id)
        self.reporter = ProblemReporter(self.kube, self.identity)
        self.synchronizer = Synchronizer(settings, store, self.metrics, self.reporter)
        self.record_settings = record_settings(settings)
        self.last_result: SyncResult | None = None

        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pending_since: float | None = None
        self._needs_full_sync = True
        self._sync_error: str | None = None
        self._backoff = Backoff(initial=0.5, maximum=30.0)

        self.pods = ObjectCache("pods", self._on_cache_change)
        self.namespaces = ObjectCache("namespaces", self._on_cache_change)
        self.reflectors = [
            Reflector(
                self.kube,
                POD_RESOURCE,
                self.pods,
                self.stop_event,
                metrics=self.metrics,
                watch_timeout=watch_timeout,
            ),
            Reflector(
                self.kube,
                NAMESPACE_RESOURCE,
                self.namespaces,
                self.stop_event,
                metrics=self.metrics,
                watch_timeout=watch_timeout,
            ),
        ]
        self.elector: LeaderElector | None = None
        if settings.leader_election:
            self.elector = LeaderElector(
                self.kube,
                settings.lease_namespace,
                settings.lease_name,
                self.identity,
                settings.owner_id,
                settings.lease_duration,
                on_change=self._on_leadership_change,
            )
        else:
            self.metrics.is_leader.set(1)
        self._threads: list[threading.Thread] = []

    # Lifecycle.

    def start(self) -> None:
        """Start the watches, the leader elector and the reconcile loop, each on its own thread."""
        targets: list[tuple[str, Callable[[], None]]] = [
            (f"watch-{reflector.resource.name}", reflector.run) for reflector in self.reflectors
        ]
        if self.elector is not None:
            elector = self.elector
            targets.append(("leader-election", lambda: elector.run(self.stop_event)))
        targets.append(("reconcile", self._reconcile_loop))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread, release the Lease, and wait up to ``timeout`` seconds for them."""
        self.stop_event.set()
        self._wake.set()
        for reflector in self.reflectors:
            reflector.interrupt()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("Thread %s did not stop within %.0f s.", thread.name, timeout)

    # Health.

    def is_leader(self) -> bool:
        """Tell whether this instance writes records now."""
        return self.elector is None or self.elector.is_leader.is_set()

    def liveness(self) -> tuple[bool, str]:
        """Return whether every thread runs, with a reason."""
        stopped = [thread.name for thread in self._threads if not thread.is_alive()]
        if stopped and not self.stop_event.is_set():
            return False, f"threads stopped: {', '.join(stopped)}"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Return whether the caches are filled and, on the leader, etcd responds, with a reason."""
        ok, reason = self._readiness()
        self.metrics.ready.set(1 if ok else 0)
        return ok, reason

    def _readiness(self) -> tuple[bool, str]:
        if not (self.pods.synced.is_set() and self.namespaces.synced.is_set()):
            return False, "waiting for the first list of pods and namespaces"
        if not self.is_leader():
            return True, "ok: standby"
        with self._lock:
            error = self._sync_error
        if error is not None:
            return False, error
        if self.last_result is None:
            return False, "waiting for the first sync"
        return True, f"ok: leader, {self.last_result.owned} records"

    # Events from the caches and the elector.

    def _on_cache_change(self, resource: str) -> None:
        with self._lock:
            if self._pending_since is None:
                self._pending_since = time.monotonic()
        self._wake.set()

    def _on_leadership_change(self, leader: bool) -> None:
        self.metrics.is_leader.set(1 if leader else 0)
        with self._lock:
            # A new leader reads etcd again: the former one may have written since.
            self._needs_full_sync = True
        self._wake.set()

    # The reconcile loop.

    def _can_sync(self) -> bool:
        return self.is_leader() and self.pods.synced.is_set() and self.namespaces.synced.is_set()

    def _reconcile_loop(self) -> None:
        next_full_sync = 0.0
        retry_at = 0.0
        failures = 0
        while not self.stop_event.is_set():
            # First, wait: for a change, a retry after an etcd error, or the next full sync.
            # A standby, or a leader whose caches are still empty, waits for a change only.
            now = time.monotonic()
            if self._can_sync():
                wake_at = retry_at if retry_at > now else next_full_sync
                timeout = max(0.0, min(wake_at - now, self.settings.resync_interval))
            else:
                timeout = self.settings.resync_interval
            self._wake.wait(timeout)
            if self.stop_event.is_set():
                break
            self._wake.clear()
            now = time.monotonic()
            if not self._can_sync():
                with self._lock:
                    # A standby handles no events; its first sync as leader is a full one.
                    self._pending_since = None
                continue
            if now < retry_at:
                continue
            self.stop_event.wait(COALESCE_SECONDS)

            # Then sync, a full one when due or requested.
            with self._lock:
                full = self._needs_full_sync or now >= next_full_sync
                self._needs_full_sync = False
            try:
                self._sync(full)
            except Exception as error:
                # Any error, etcd's or a bug's, costs one sync and not the controller.
                failures += 1
                delay = self._backoff.delay(failures)
                retry_at = time.monotonic() + delay
                unavailable = isinstance(error, EtcdUnavailableError)
                with self._lock:
                    self._sync_error = (
                        f"etcd is unavailable: {error}"
                        if unavailable
                        else f"the last sync failed: {error}"
                    )
                    self._needs_full_sync = True
                if unavailable:
                    logger.error(
                        "etcd is unavailable; keeping the state of %d pods and trying again "
                        "in %.1f s: %s",
                        len(self.pods),
                        delay,
                        error,
                    )
                else:
                    logger.exception("Sync failed; trying again in %.1f s: %s", delay, error)
                continue
            if failures:
                logger.info("Sync succeeded again after %d failed attempts.", failures)
            failures = 0
            retry_at = 0.0
            with self._lock:
                self._sync_error = None
            if full:
                next_full_sync = time.monotonic() + self.settings.resync_interval

    def _sync(self, full: bool) -> SyncResult:
        with self._lock:
            events_since, self._pending_since = self._pending_since, None
        desired = desired_state(
            self.pods.objects(), namespace_labels(self.namespaces.objects()), self.record_settings
        )
        owners = (
            self.elector.record_owners() if self.elector else frozenset({self.settings.owner_id})
        )
        try:
            result = self.synchronizer.sync(desired, owners, full=full, may_write=self.is_leader)
        except EtcdUnavailableError:
            with self._lock:
                # The events are not handled yet; keep the oldest one's time.
                if events_since is not None:
                    self._pending_since = min(events_since, self._pending_since or events_since)
            raise
        self.last_result = result

        written = result.created + result.updated + result.deleted
        if written and events_since is not None:
            self.metrics.event_to_write_seconds.observe(time.monotonic() - events_since)
        # Every full sync is logged, once per resync interval, so the log shows the loop is alive.
        if written or result.full:
            logger.info(
                "%s sync: %d desired, %d created, %d updated, %d deleted, %d conflicts, "
                "%d records owned, %.3f s.",
                "Full" if result.full else "Event",
                result.desired,
                result.created,
                result.updated,
                result.deleted,
                result.conflicts,
                result.owned,
                result.seconds,
            )
        if (
            self.elector is not None
            and result.full
            and not result.interrupted
            and self.synchronizer.former_owner_records == 0
        ):
            self.elector.forget_former_owners()
        return result
