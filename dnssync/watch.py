"""List-then-watch of pods and namespaces, kept in a local cache.

The watch has three layers, one concern each:

- ``open_watch`` sends one watch request and ``watch_request`` yields its
  events. A 410 Gone, as an HTTP status or as an ERROR event in the stream,
  raises WatchExpiredError.
- ``Reflector.list_then_watch`` lists when it has no resource version, then
  watches from the last resource version it saw, one request after another,
  moving that version forward on every event and bookmark. It returns on 410
  Gone, after forgetting the version, so the next call lists again.
- ``Reflector.run`` calls it again until stopped, with backoff after errors.
  A dropped connection resumes the watch from the last version without a list.

A list replaces the whole cache, so objects deleted while the watch was down
disappear too."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from numaflow_rdma.dnssync.kube import KubeApiError, KubeClient, LineStream
from numaflow_rdma.dnssync.retry import Backoff, retry_message

if TYPE_CHECKING:
    from numaflow_rdma.dnssync.metrics import Metrics

logger = logging.getLogger(__name__)

# Seconds one watch request stays open; the API server ends it then and the
# next request resumes from the last resource version.
DEFAULT_WATCH_TIMEOUT = 300
# Extra seconds to wait for bytes past the request's own timeout before the
# connection is taken for dead.
_READ_GRACE = 30
LIST_PAGE_SIZE = 500


class WatchExpiredError(Exception):
    """The resource version is too old for the API server (410 Gone): list again."""


class WatchError(Exception):
    """The watch stream sent an ERROR event other than 410 Gone."""


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Return the object without ``metadata.managedFields``, often the largest part of it."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        obj = {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
    return obj


@dataclass(frozen=True)
class Resource:
    """A watched collection: its API path, across all namespaces, and a label selector.

    ``fields`` cuts each listed or watched object down to what the cache
    should keep, before the next page or event is read.
    """

    name: str
    path: str
    label_selector: str = ""
    fields: Callable[[dict[str, Any]], dict[str, Any]] = without_managed_fields


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch: ADDED, MODIFIED, DELETED or BOOKMARK, with the object."""

    type: str
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        """Return the object's resource version; for a bookmark, the point the watch has reached."""
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


def watch_request(stream: LineStream) -> Iterator[WatchEvent]:
    """Yield the events of one open watch stream until the server ends it."""
    for line in stream:
        if not line.strip():
            continue
        event = json.loads(line)
        event_type = event.get("type")
        body = event.get("object") or {}
        if event_type == "ERROR":
            if body.get("code") == 410:
                raise WatchExpiredError(str(body.get("message", "410 Gone")))
            raise WatchError(f"{body.get('code')} {body.get('reason')}: {body.get('message')}")
        yield WatchEvent(str(event_type), body)


def open_watch(
    client: KubeClient, resource: Resource, resource_version: str, timeout_seconds: int
) -> LineStream:
    """Send one watch request from ``resource_version`` with bookmarks; 410 Gone raises WatchExpiredError."""
    query = {
        "watch": "true",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(timeout_seconds),
        "labelSelector": resource.label_selector or None,
    }
    try:
        return client.open_stream(resource.path, query, read_timeout=timeout_seconds + _READ_GRACE)
    except KubeApiError as error:
        if error.status == 410:
            raise WatchExpiredError(error.message) from error
        raise


def list_objects(
    client: KubeClient, resource: Resource, page_size: int = LIST_PAGE_SIZE
) -> tuple[list[dict[str, Any]], str]:
    """List every object in pages, each cut down by ``resource.fields``, and the list's version."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        body = client.request(
            "GET",
            resource.path,
            query={
                "labelSelector": resource.label_selector or None,
                "limit": str(page_size),
                "continue": token,
            },
        )
        items.extend(resource.fields(item) for item in body.get("items") or [])
        body.pop("items", None)
        metadata = body.get("metadata") or {}
        token = metadata.get("continue") or None
        if token is None:
            return items, str(metadata.get("resourceVersion") or "")


ObjectKey = tuple[str, str]


def object_key(obj: dict[str, Any]) -> ObjectKey:
    """Return ``(namespace, name)`` of an object; the namespace is empty for cluster objects."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class ObjectCache:
    """The latest version of each watched object, safe to read from other threads.

    ``on_change`` is called with the resource name after every change, from
    the thread that made it.
    """

    def __init__(self, resource: str, on_change: Callable[[str], None] | None = None) -> None:
        self.resource = resource
        self.synced = threading.Event()
        self._on_change = on_change
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def replace(self, objects: list[dict[str, Any]]) -> None:
        """Replace every object with the result of a list."""
        with self._lock:
            self._objects = {object_key(obj): obj for obj in objects}
        self.synced.set()
        self._changed()

    def apply(self, event: WatchEvent) -> None:
        """Apply one ADDED, MODIFIED or DELETED event."""
        key = object_key(event.object)
        with self._lock:
            if event.type == "DELETED":
                self._objects.pop(key, None)
            else:
                self._objects[key] = event.object
        self._changed()

    def objects(self) -> list[dict[str, Any]]:
        """Return a snapshot of the objects; the dicts are shared and must not be changed."""
        with self._lock:
            return list(self._objects.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.resource)


class Reflector:
    """Keeps an ObjectCache in step with one resource until ``stop`` is set."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        cache: ObjectCache,
        stop: threading.Event,
        *,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        watch_timeout: int = DEFAULT_WATCH_TIMEOUT,
    ) -> None:
        self.client = client
        self.resource = resource
        self.cache = cache
        self.resource_version: str | None = None
        self._stop = stop
        self._metrics = metrics
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._watch_timeout = watch_timeout
        self._stream: LineStream | None = None
        self._failures = 0

    def run(self) -> None:
        """List and watch until stopped, reconnecting with backoff after errors."""
        logger.info("Starting the watch of %s.", self.resource.name)
        while not self._stop.is_set():
            try:
                self.list_then_watch()
            except Exception as error:  # every failure of a watch is retried
                if self._stop.is_set():
                    break
                self._failures += 1
                if self._metrics is not None:
                    self._metrics.watch_errors.labels(self.resource.name).inc()
                delay = self._backoff.delay(self._failures)
                operation = f"WATCH {self.resource.name}"
                logger.warning(
                    retry_message(self._failures, None, delay, operation, _describe(error))
                )
                self._stop.wait(delay)
        logger.info("Stopped the watch of %s.", self.resource.name)

    def interrupt(self) -> None:
        """End a watch request blocked in another thread; call after setting ``stop``."""
        stream = self._stream
        if stream is not None:
            try:
                stream.shutdown()
            except Exception:  # the stream may be closing on its own
                logger.debug(
                    "Interrupting the watch of %s failed.", self.resource.name, exc_info=True
                )

    def list_then_watch(self) -> None:
        """List unless a resource version is known, then watch until 410 Gone or stop."""
        # First, list, unless an earlier watch left a version to resume from.
        if self.resource_version is None:
            started = time.monotonic()
            items, resource_version = list_objects(self.client, self.resource)
            self.cache.replace(items)
            self.resource_version = resource_version
            self._failures = 0
            if self._metrics is not None:
                self._metrics.watch_relists.labels(self.resource.name).inc()
            logger.info(
                "Listed %d %s at resource version %s in %.3f s.",
                len(items),
                self.resource.name,
                resource_version,
                time.monotonic() - started,
            )

        # Then watch from that version, one request after another, until it expires.
        while not self._stop.is_set():
            try:
                self._watch_once(self.resource_version)
            except WatchExpiredError as error:
                logger.info(
                    "The watch of %s expired at resource version %s (410 Gone: %s); listing again.",
                    self.resource.name,
                    self.resource_version,
                    error,
                )
                self.resource_version = None
                return

    def _watch_once(self, resource_version: str) -> None:
        stream = open_watch(self.client, self.resource, resource_version, self._watch_timeout)
        self._stream = stream
        try:
            if self._stop.is_set():
                return
            for event in watch_request(stream):
                if event.type != "BOOKMARK":
                    self.cache.apply(WatchEvent(event.type, self.resource.fields(event.object)))
                if event.resource_version:
                    self.resource_version = event.resource_version
                self._failures = 0
        finally:
            self._stream = None
            stream.close()


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
