"""Rate-limited warnings, and Kubernetes Events on pods that dnssync skips for bad input.

The controller recomputes every pod's record on each sync, so the same bad
pod or the same foreign etcd value is seen again and again. Each distinct
problem (pod or key, reason, message) is logged, and for a pod sent as a
Warning Event, once per ``interval`` seconds. Repeats in between are only
counted. A problem that goes away and comes back is reported again.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from numaflow_rdma.dnssync.desired import PodProblem, PodRef
from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient
from numaflow_rdma.dnssync.plan import Conflict

logger = logging.getLogger(__name__)

COMPONENT = "numaflow-rdma-dnssync"
DEFAULT_INTERVAL = 600.0


class RateLimiter:
    """Lets each key through once per ``interval`` seconds and counts what it holds back."""

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self.suppressed = 0

    def allow(self, key: Hashable) -> bool:
        """Return True when ``key`` was not let through within the interval, and note the time."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        self._last[key] = now
        return True

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Forget every key not in ``keys``, so a problem that returns is reported at once."""
        keep = set(keys)
        self._last = {key: last for key, last in self._last.items() if key in keep}


class ProblemReporter:
    """Logs pod problems and etcd conflicts, rate-limited, and sends Events for pod problems."""

    def __init__(
        self,
        client: KubeClient | None,
        instance: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._instance = instance
        self._limiter = RateLimiter(interval, clock)

    def report(
        self,
        problems: Iterable[tuple[PodRef, PodProblem]],
        conflicts: Iterable[Conflict],
    ) -> None:
        """Report the problems and conflicts of one sync; those not seen again are forgotten."""
        seen: list[Hashable] = []
        for pod, problem in problems:
            key = ("pod", pod.uid or str(pod), problem.reason, problem.message)
            seen.append(key)
            if self._limiter.allow(key):
                logger.warning(
                    "Skipping pod %s: %s",
                    pod,
                    problem.message,
                    extra={"pod": str(pod), "reason": problem.reason},
                )
                self._send_event(pod, problem)
        for conflict in conflicts:
            key = ("etcd", conflict.key, conflict.kind.value, conflict.detail)
            seen.append(key)
            if self._limiter.allow(key):
                logger.warning(
                    "Leaving etcd key %s alone: %s",
                    conflict.key,
                    conflict.detail,
                    extra={"key": conflict.key, "conflict": conflict.kind.value},
                )
        self._limiter.retain(seen)

    @property
    def suppressed(self) -> int:
        """Return how many repeated reports were held back so far."""
        return self._limiter.suppressed

    def _send_event(self, pod: PodRef, problem: PodProblem) -> None:
        if self._client is None:
            return
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod.name}.{uuid.uuid4().hex[:16]}", "namespace": pod.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": pod.namespace,
                "name": pod.name,
                "uid": pod.uid,
            },
            "reason": problem.reason,
            "message": f"No DNS record for this pod: {problem.message}"[:1024],
            "type": "Warning",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._client.request("POST", f"/api/v1/namespaces/{pod.namespace}/events", body=event)
        except KubeApiError as error:
            logger.warning(
                "Sending an Event to pod %s failed: %s", pod, error, extra={"pod": str(pod)}
            )
