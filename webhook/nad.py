"""Find the device-plugin resource of a NetworkAttachmentDefinition, with a short cache.

Multus and the RDMA device plugins share one convention: the
NetworkAttachmentDefinition of a device-backed network names the resource its
pods must request in its ``k8s.v1.cni.cncf.io/resourceName`` annotation, for
example ``rdma/hca_shared_devices_a`` or ``nvidia.com/hostdev``. Multus uses
it to find the device the kubelet allocated to the pod.

Admission is on the path of every pod creation, so results are cached for a
configurable time per network: a scale-up of many replicas costs one API
call. When a refresh fails, the last answer is used for up to ten times
that time, so a short API hiccup does not block pod creation; failed lookups
with no earlier answer are not cached, so the next pod tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from numaflow_rdma.names import MULTUS_RESOURCE_NAME_ANNOTATION
from numaflow_rdma.webhook.multus import NetworkRef

logger = logging.getLogger(__name__)

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_PLURAL = "network-attachment-definitions"

# How much longer than the cache time a stale result may replace a failed refresh.
STALE_FACTOR = 10


class NetworkLookupError(RuntimeError):
    """The NetworkAttachmentDefinition could not be read."""


class NetworkNotFoundError(NetworkLookupError):
    """The NetworkAttachmentDefinition does not exist."""


class ResourceNameResolver(Protocol):
    """Returns the resource that pods attached to ``network`` must request, or None if it names none."""

    def __call__(self, network: NetworkRef) -> str | None: ...


def fixed_resource_name(resource_name: str) -> ResourceNameResolver:
    """Return a resolver that gives ``resource_name`` for every network, with no API call."""

    def resolve(network: NetworkRef) -> str | None:
        return resource_name

    return resolve


@dataclass
class _Entry:
    resource_name: str | None
    fetched: float


class CachedNadResolver:
    """Reads the resourceName annotation of NetworkAttachmentDefinitions, cached for ``ttl`` seconds.

    ``fetch`` returns the object as a dict and raises NetworkNotFoundError or
    NetworkLookupError; ``kubernetes_fetch`` builds one from a client.
    Thread-safe. Two threads that miss the cache at once may both fetch.
    """

    def __init__(
        self,
        fetch: Callable[[NetworkRef], dict[str, Any]],
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[NetworkRef, _Entry] = {}
        self._lock = threading.Lock()

    def __call__(self, network: NetworkRef) -> str | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(network)
        if entry is not None and now - entry.fetched < self._ttl:
            return entry.resource_name

        try:
            definition = self._fetch(network)
        except NetworkNotFoundError:
            with self._lock:
                self._entries.pop(network, None)
            raise
        except NetworkLookupError as error:
            if entry is None or now - entry.fetched >= self._ttl * STALE_FACTOR:
                raise
            logger.warning(
                "Refreshing NetworkAttachmentDefinition %s failed; using the result from %.0f s ago: %s",
                network,
                now - entry.fetched,
                error,
            )
            return entry.resource_name

        annotations = (definition.get("metadata") or {}).get("annotations") or {}
        resource_name = annotations.get(MULTUS_RESOURCE_NAME_ANNOTATION) or None
        with self._lock:
            self._entries[network] = _Entry(resource_name, now)
        logger.debug(
            "Read NetworkAttachmentDefinition %s: resource name %s.",
            network,
            resource_name or "(none)",
        )
        return resource_name


def kubernetes_fetch(
    api_client: Any, timeout: float = 3.0
) -> Callable[[NetworkRef], dict[str, Any]]:
    """Return a ``fetch`` for CachedNadResolver that GETs through a ``kubernetes`` ApiClient.

    ``timeout`` is in seconds. It stays well under the webhook configuration's
    ``timeoutSeconds``, so a slow API server gives a clear rejection and not a
    webhook timeout.
    """
    from kubernetes import client

    api = client.CustomObjectsApi(api_client)

    def fetch(network: NetworkRef) -> dict[str, Any]:
        try:
            definition = api.get_namespaced_custom_object(
                NAD_GROUP,
                NAD_VERSION,
                network.namespace,
                NAD_PLURAL,
                network.name,
                _request_timeout=timeout,
            )
        except client.ApiException as error:
            if error.status == 404:
                raise NetworkNotFoundError(
                    f"NetworkAttachmentDefinition {network} not found"
                ) from error
            raise NetworkLookupError(
                f"reading NetworkAttachmentDefinition {network} failed: HTTP {error.status} {error.reason}"
            ) from error
        except Exception as error:  # urllib3 raises several unrelated types for network failures.
            raise NetworkLookupError(
                f"reading NetworkAttachmentDefinition {network} failed: {error}"
            ) from error
        if not isinstance(definition, dict):
            raise NetworkLookupError(
                f"reading NetworkAttachmentDefinition {network} failed: the API returned "
                f"{type(definition).__name__}, not an object"
            )
        return definition

    return fetch
