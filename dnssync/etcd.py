"""Reading and writing records in the etcd that CoreDNS serves from.

The controller reaches etcd through ``RecordStore``, three methods wide: read
every value under a prefix, put one key, delete one key. Each write is an etcd
transaction that first compares the key with what the plan read: a create
requires that the key does not exist, an update or delete that the value is
still the one read, owner field included. So a key someone else wrote in the
meantime is never overwritten or deleted, and the method returns False.
Deletes name one exact key, never a prefix, because an etcd prefix is a byte
prefix and ``.../pod-1`` would also remove ``.../pod-10``.

``EtcdRecordStore`` retries each request with backoff, logging every failed
attempt in the shape of ``retry.retry_message``, rotates through the endpoints
and rebuilds its gRPC client after an error. That also renews the auth token,
which etcd expires. When all attempts fail it raises ``EtcdUnavailableError``
and the caller keeps its state and tries again later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from numaflow_rdma.dnssync.plan import Change, Plan
from numaflow_rdma.dnssync.retry import Backoff, retry_message
from numaflow_rdma.dnssync.settings import EtcdEndpoint, EtcdSettings

if TYPE_CHECKING:
    from numaflow_rdma.dnssync.metrics import Metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


class EtcdUnavailableError(RuntimeError):
    """etcd did not respond to a request in any of its attempts."""


class RecordStore(Protocol):
    """The three etcd operations dnssync needs."""

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Return every key under ``prefix`` with its value."""
        ...

    def put(self, key: str, value: str, *, expected: str | None) -> bool:
        """Write ``value`` if the key's value is ``expected`` (None: no such key); return whether it did."""
        ...

    def delete(self, key: str, *, expected: str) -> bool:
        """Delete the key if its value is ``expected``; return whether it did."""
        ...


class EtcdRecordStore:
    """A RecordStore over a real etcd cluster through the pyetcd gRPC client."""

    def __init__(
        self,
        settings: EtcdSettings,
        *,
        attempts: int = 5,
        backoff: Backoff | None = None,
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._settings = settings
        self._attempts = attempts
        self._backoff = backoff or Backoff(initial=0.2, maximum=2.0)
        self._metrics = metrics
        # Set to end the waits between attempts early when the process stops.
        self._stop = stop or threading.Event()
        self._client: Any = None
        self._endpoint_index = 0
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> EtcdEndpoint:
        """Return the endpoint the next request goes to."""
        return self._settings.endpoints[self._endpoint_index]

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Return every key under ``prefix`` with its value, decoded as UTF-8."""

        def read(client: Any) -> dict[str, str]:
            return {
                metadata.key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
                for value, metadata in client.get_prefix(prefix)
            }

        return self._call(f"GET {prefix}*", read)

    def put(self, key: str, value: str, *, expected: str | None) -> bool:
        """Write ``value`` in one transaction that compares the key with ``expected`` first."""

        def write(client: Any) -> bool:
            transactions = client.transactions
            if expected is None:
                compare = [transactions.version(key) == 0]
            else:
                compare = [transactions.value(key) == expected]
            succeeded, _ = client.transaction(
                compare=compare, success=[transactions.put(key, value)], failure=[]
            )
            return bool(succeeded)

        return self._call(f"PUT {key}", write)

    def delete(self, key: str, *, expected: str) -> bool:
        """Delete exactly ``key`` in one transaction that compares its value with ``expected`` first."""

        def remove(client: Any) -> bool:
            transactions = client.transactions
            succeeded, _ = client.transaction(
                compare=[transactions.value(key) == expected],
                success=[transactions.delete(key)],
                failure=[],
            )
            return bool(succeeded)

        return self._call(f"DELETE {key}", remove)

    def close(self) -> None:
        """Close the gRPC channel, if one is open."""
        with self._lock:
            self._discard_client(rotate=False)

    def _call(self, operation: str, request: Callable[[Any], T]) -> T:
        """Run ``request`` with a client, retrying with backoff on any etcd or gRPC error."""
        retried = _retried_errors()
        with self._lock:
            for attempt in range(1, self._attempts + 1):
                endpoint = self.endpoint
                try:
                    return request(self._connected_client())
                except retried as error:
                    message = f"{_describe(error)} (endpoint {endpoint})"
                    self._discard_client(rotate=True)
                    if self._metrics is not None:
                        self._metrics.etcd_errors.labels(operation.split(" ", 1)[0]).inc()
                    if attempt == self._attempts or self._stop.is_set():
                        logger.warning(
                            retry_message(attempt, self._attempts, None, operation, message)
                        )
                        raise EtcdUnavailableError(f"{operation} failed: {message}") from error
                    # The next endpoint is tried at once; a full round of them is followed by backoff.
                    rounds, position = divmod(attempt, len(self._settings.endpoints))
                    delay = 0.0 if position else self._backoff.delay(rounds)
                    logger.warning(
                        retry_message(attempt, self._attempts, delay, operation, message)
                    )
                    self._stop.wait(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _connected_client(self) -> Any:
        if self._client is None:
            self._client = _make_client(self._settings, self.endpoint)
        return self._client

    def _discard_client(self, *, rotate: bool) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # a broken channel may fail to close; it is dropped anyway
                logger.debug("Closing the etcd client failed.", exc_info=True)
            self._client = None
        if rotate:
            self._endpoint_index = (self._endpoint_index + 1) % len(self._settings.endpoints)


def _retried_errors() -> tuple[type[BaseException], ...]:
    """Return the errors of an etcd request that a retry, maybe on another endpoint, can fix."""
    import grpc
    import pyetcd

    # pyetcd turns some gRPC status codes into its own exceptions and raises the
    # rest, and the errors of authenticating when a client is built, as they are.
    # OSError covers certificate files that are being replaced when a client is built.
    return (grpc.RpcError, pyetcd.Etcd3Exception, OSError)


def _describe(error: BaseException) -> str:
    details = getattr(error, "details", None)
    if callable(details):
        # A grpc.RpcError: its code and details describe it better than its str().
        return f"{error.code().name}: {details()}"  # type: ignore[attr-defined]
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _make_client(settings: EtcdSettings, endpoint: EtcdEndpoint) -> Any:
    """Build a pyetcd client for one endpoint; authenticates at once when a user is set."""
    import grpc
    import pyetcd

    credentials = None
    if endpoint.secure:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(settings.ca_file),
            private_key=_read(settings.key_file),
            certificate_chain=_read(settings.cert_file),
        )
    # time_retry=0 keeps pyetcd from marking the endpoint failed for minutes after one
    # error; this class rebuilds the client and picks the next endpoint instead.
    channel_endpoint = pyetcd.Endpoint(
        endpoint.host, endpoint.port, secure=endpoint.secure, creds=credentials, time_retry=0
    )
    return pyetcd.MultiEndpointEtcd3Client(
        endpoints=[channel_endpoint],
        timeout=settings.timeout,
        user=settings.username or None,
        password=settings.password or None,
    )


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as file:
        return file.read()


class DryRunStore:
    """A RecordStore that reads from ``store`` and logs each write instead of making it."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """Return every key under ``prefix`` from the real store."""
        return self._store.get_prefix(prefix)

    def put(self, key: str, value: str, *, expected: str | None) -> bool:
        """Log the write and report it as done."""
        action = "create" if expected is None else "update"
        logger.info("Dry run: would %s %s = %s", action, key, value)
        return True

    def delete(self, key: str, *, expected: str) -> bool:
        """Log the delete and report it as done."""
        logger.info("Dry run: would delete %s (value %s)", key, expected)
        return True


@dataclass
class ApplyResult:
    """The changes of a plan that were made and those whose compare failed."""

    applied: list[Change] = field(default_factory=list)
    conflicts: list[Change] = field(default_factory=list)
    interrupted: bool = False
    """True when ``may_write`` turned False before the plan was done."""


def apply_plan(
    plan: Plan, store: RecordStore, may_write: Callable[[], bool] = lambda: True
) -> ApplyResult:
    """Make the plan's changes one key at a time, checking ``may_write`` before each.

    A change whose compare fails (the key changed since it was read) is
    skipped and listed in ``conflicts``; the next full sync reads it again.
    EtcdUnavailableError propagates, with the changes before it already made.
    """
    result = ApplyResult()
    for change in plan.changes:
        if not may_write():
            result.interrupted = True
            break
        if change.new is None:
            assert change.old is not None
            done = store.delete(change.key, expected=change.old)
        else:
            done = store.put(change.key, change.new, expected=change.old)
        (result.applied if done else result.conflicts).append(change)
    return result
