"""One UCX context and worker, progressed by the transport loop when UCX signals an event.

The ucx backend drives ucxx's core bindings (``ucxx._lib.libucxx``) itself
instead of ucxx's asyncio layer, because with ucxx 0.52 that layer busy-waits
(read in its source and measured on a two-vCPU VM):

- its ``blocking`` progress mode never arms the worker again after the first
  event, so the worker's epoll descriptor stays readable and the loop calls
  ``progress`` on every iteration: an idle sender and receiver used about
  half a core each;
- without its notifier thread, every request is awaited by a loop of
  ``asyncio.sleep(0)``.

Here the worker is progressed whenever its epoll descriptor is readable and
armed again once UCX has nothing left to do, and each tracked request
completes an asyncio future. While a request or an expected message is
outstanding, a timer also progresses the worker every
``SAFETY_PROGRESS_INTERVAL`` seconds, so a missed wake-up delays a transfer
instead of stopping it.

Send requests cannot be cancelled in UCX 1.21 (``ucp_request_cancel`` only
cancels tag receives that have not matched a message), and a receive that
has matched stays outstanding if its sender dies. A request whose waiter is
gone therefore stays tracked, with its buffer, until UCX completes it, so UCX
never writes to or reads from freed memory.

NOTE: a request whose peer died never completes, so each connection lost
mid-transfer keeps one payload buffer for the rest of the process's life.

NOTE: between processes of one host UCX copies a payload with CMA inside
``progress``, on the transport thread, so that copy and the per-frame Python
work of the receiver run one after the other. On a two-vCPU VM this keeps
the backend near 0.5-0.65x of ``ucx_perftest``, which overlaps 32 messages
from C (docs/benchmarks.md); the copy is about 75% of the receiving
thread's time. Two ways to overlap them were measured there and not kept:
progressing in a second thread (``progress_worker_event`` releases the GIL,
``ucp_worker_signal`` wakes it) with receives posted as soon as the header
arrives and the reader moving on to the next header, and handing only large
receives to such a thread. With three busy threads per process on two
vCPUs, each gave the same or lower frames per second than this design. A
machine with more cores, or a compiled receive loop, is where to try again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

# UCX resources listed in the context's description, e.g. "#  resource 1 : md 1 dev 1 flags -- tcp/lo".
_RESOURCE = re.compile(r"^#.*resource.*md.*dev.*flags.*$", re.MULTILINE)
SAFETY_PROGRESS_INTERVAL = 0.01
# Progress rounds per wake-up before the rest is left to the next loop iteration.
_MAX_ROUNDS = 64


@dataclass(eq=False, slots=True)
class _Tracked:
    """A UCX request, the future that reports it, and what must outlive it."""

    request: Any
    future: asyncio.Future[None]
    keep: object


class UcxWorker:
    """A UCX context and worker for tagged messages, progressed on the running asyncio loop."""

    def __init__(self, api: ModuleType, array_type: type, loop: asyncio.AbstractEventLoop) -> None:
        """Create the context and worker with ucxx's core module ``api`` and its ``Array`` type."""
        self._api = api
        self._array = array_type
        self._loop = loop
        self.context = api.UCXContext({}, feature_flags=(api.Feature.TAG, api.Feature.WAKEUP))
        self.worker = api.UCXWorker(self.context)
        self.worker.init_blocking_progress_mode()
        self.address: bytes = self.worker.address.tobytes()
        """This worker's address, which a peer needs to create an endpoint to it."""
        self._requests: list[_Tracked] = []
        self._arrivals: dict[int, asyncio.Future[Any]] = {}
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._descriptor = int(self.worker.epoll_file_descriptor)
        loop.add_reader(self._descriptor, self._progress)

    def transports(self) -> frozenset[str]:
        """Return the names of the transports UCX may use, such as ``tcp`` or ``cma``."""
        resources = _RESOURCE.findall(self.context.info)
        return frozenset(line.split()[-1].split("/")[0] for line in resources)

    @property
    def cuda_support(self) -> bool:
        """Return True when UCX was built with CUDA support and found a device."""
        return bool(self.context.cuda_support)

    # Endpoints and requests.

    def nbytes(self, buffer: Any) -> int:
        """Return the size of a host or device buffer in bytes."""
        return int(self._array(buffer).nbytes)

    def connect(self, address: bytes) -> Any:
        """Create an endpoint to the worker at ``address``, without endpoint error handling.

        Error handling would restrict UCX to transports that report peer
        failures, which excludes shared memory; the transport's control
        connection detects a lost peer instead.
        """
        remote = self._api.UCXAddress.create_from_buffer(address)
        endpoint = self._api.UCXEndpoint.create_from_worker_address(self.worker, remote, False)
        self._schedule()
        return endpoint

    def send(self, endpoint: Any, buffer: Any, tag: int) -> asyncio.Future[None]:
        """Send ``buffer`` as one tagged message; the future completes when UCX is done with it."""
        request = endpoint.tag_send(self._array(buffer), self._api.UCXXTag(tag))
        return self._track(request, buffer)

    def expect(self, tag: int) -> asyncio.Future[Any]:
        """Return a future for the probe result of the message with ``tag``, once it arrived."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._arrivals[tag] = future
        # Progress at once: the message has often arrived, unprocessed, before its header.
        self._progress()
        return future

    def forget(self, tag: int) -> None:
        """Stop waiting for the message with ``tag``."""
        self._arrivals.pop(tag, None)

    def receive(self, probe: Any, buffer: Any) -> asyncio.Future[None]:
        """Receive the message that ``expect`` found into ``buffer``."""
        request = self.worker.tag_recv_with_handle(self._array(buffer), probe)
        return self._track(request, buffer)

    def close_endpoint(self, endpoint: Any) -> None:
        """Close ``endpoint`` without waiting for its peer, keeping it until UCX is done.

        UCX only flushes what this side has queued, because it cannot
        force-close an endpoint without error handling. A send still waiting
        for a dead peer stays outstanding and keeps its buffer (see the
        module docstring).
        """
        request = endpoint.close()
        future = self._track(request, endpoint)
        future.add_done_callback(_log_close_error)

    def _track(self, request: Any, keep: object) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        tracked = _Tracked(request, future, keep)
        if request.completed:
            _finish(tracked)
        else:
            self._requests.append(tracked)
            # Progress at once, so a transfer that UCX can finish now (a shared-memory
            # copy) completes before the caller awaits it.
            self._progress()
        return future

    # Progress.

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._progress)

    def _progress(self) -> None:
        """Progress until UCX has nothing left to do, then arm the worker for the next event."""
        self._scheduled = False
        for _ in range(_MAX_ROUNDS):
            self.worker.progress()
            self._complete()
            if self.worker.arm():
                break
        else:
            # UCX keeps reporting events: continue on the next loop iteration.
            self._schedule()
        self._set_timer()

    def _complete(self) -> None:
        if self._requests:
            still: list[_Tracked] = []
            for tracked in self._requests:
                if tracked.request.completed:
                    _finish(tracked)
                else:
                    still.append(tracked)
            self._requests = still
        for tag, future in list(self._arrivals.items()):
            if future.done():
                del self._arrivals[tag]
                continue
            probe = self.worker.tag_probe(self._api.UCXXTag(tag), remove=True)
            if probe.matched:
                del self._arrivals[tag]
                future.set_result(probe)

    def _set_timer(self) -> None:
        waited = bool(self._arrivals) or any(not item.future.done() for item in self._requests)
        if not waited:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._timer is None:
            self._timer = self._loop.call_later(SAFETY_PROGRESS_INTERVAL, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._progress()


def _finish(tracked: _Tracked) -> None:
    if tracked.future.done():
        return
    try:
        tracked.request.check_error()
    except Exception as error:
        tracked.future.set_exception(error)
    else:
        tracked.future.set_result(None)


def _log_close_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("Closing a UCX endpoint failed: %s", future.exception())
