"""The sender's machinery on the transport loop: peers, credits, waiting frames.

Each receiver is a ``_Link`` with a supervisor task that connects, runs the
handshake, reads CREDIT and HEARTBEAT messages, declares the receiver lost
after ``peer_timeout`` seconds of silence, and reconnects with exponential
backoff for as long as discovery still lists the receiver.

Every frame takes the same path through ``SenderCore``:

1. ``send`` gives it a sequence number and a deadline;
2. ``_dispatch`` asks the peer choice for a receiver; with a free credit the
   frame is transmitted at once, otherwise the overflow policy decides
   whether it waits, is dropped, or drops an older waiting frame;
3. waiting frames are taken, oldest first, whenever a credit comes back or
   a receiver connects, and dropped when their deadline passes;
4. ``_transmit`` sends it on the link's channel and resolves its result.

A frame is sent at most once. A frame being sent when its receiver is lost
is dropped (``peer_lost``); frames that were sent but not yet confirmed by a
lost receiver are counted as ``frames_unconfirmed``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import itertools
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma.transport import cuda
from numaflow_rdma.transport.backends import Backend, Channel
from numaflow_rdma.transport.balancing import PeerChoice, make_peer_choice
from numaflow_rdma.transport.discovery import Discovery, PeerAddress
from numaflow_rdma.transport.errors import (
    ConnectionLostError,
    DiscoveryError,
    FrameTooLargeError,
    HandshakeError,
    HandshakeRejectedError,
    PayloadError,
    PeerConnectionError,
    ProtocolError,
    TransportClosedError,
)
from numaflow_rdma.transport.frames import DropReason, OverflowPolicy, SendResult
from numaflow_rdma.transport.handshake import Identity, connect_handshake
from numaflow_rdma.transport.inbound import send_heartbeat
from numaflow_rdma.transport.metrics import TransportMetrics
from numaflow_rdma.transport.options import SenderOptions
from numaflow_rdma.transport.payload import OutgoingPayload
from numaflow_rdma.transport.protocol import (
    MAX_CONTROL_HEADER_SIZE,
    FrameHeader,
    Kind,
    Memory,
    decode_json,
    require_field,
)
from numaflow_rdma.transport.runtime import get_runtime

logger = logging.getLogger(__name__)

# Link failures ask for a fresh DNS lookup, at most this often, in seconds.
_MIN_REFRESH_INTERVAL = 0.5
# A failing DNS lookup is logged at most this often, in seconds.
_DISCOVERY_WARNING_INTERVAL = 60.0


class LinkState(enum.Enum):
    """The state of the link to one receiver."""

    CONNECTING = "connecting"
    """Opening the connection or running the handshake."""
    READY = "ready"
    """Connected; frames may be sent within the credits."""
    DRAINING = "draining"
    """The receiver sent GOODBYE or left DNS, so no new frames go to it."""
    BACKOFF = "backoff"
    """Lost or never reached; waiting before the next attempt."""
    REMOVED = "removed"
    """No longer listed by discovery; the link is gone."""


@dataclass(slots=True)
class OutgoingFrame:
    """A frame on its way: the payload and what goes into its header."""

    payload: OutgoingPayload
    metadata: dict[str, Any]
    key: str | None
    frame_id: str = field(default_factory=lambda: os.urandom(16).hex())
    sequence: int = -1


@dataclass(eq=False, slots=True)
class _Pending:
    """A frame waiting for a receiver or a credit."""

    frame: OutgoingFrame
    future: asyncio.Future[SendResult]
    deadline: float
    started: float
    target: _Link | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Link:
    """The connection to one receiver."""

    address: PeerAddress
    state: LinkState = LinkState.CONNECTING
    channel: Channel | None = None
    credits: int = 0
    in_flight: int = 0
    sending: int = 0
    waiting: int = 0
    max_frame_size: int = 0
    max_header_size: int = 0
    listed: bool = True
    failures: int = 0
    last_heard: float = 0.0
    task: asyncio.Task[None] | None = None
    heartbeat_task: asyncio.Task[None] | None = None

    @property
    def peer_id(self) -> str:
        """Return ``host:port``, the identity peer choice hashes on."""
        return str(self.address)

    @property
    def outstanding(self) -> int:
        """Return frames in flight, being sent, or waiting for this receiver."""
        return max(self.in_flight, 0) + self.sending + self.waiting

    @property
    def has_credit(self) -> bool:
        """Return True when a frame can go to this receiver now."""
        return self.state is LinkState.READY and self.credits > 0


class SenderCore:
    """Sends frames to the receivers discovery lists; lives on the transport loop."""

    def __init__(
        self,
        backend: Backend,
        discovery: Discovery,
        identity: Identity,
        secret: bytes | None,
        options: SenderOptions,
        metrics: TransportMetrics,
    ) -> None:
        self._backend = backend
        self._discovery = discovery
        self._identity = identity
        self._secret = secret
        self._options = options
        self.metrics = metrics
        self._choice: PeerChoice = make_peer_choice(options.peer_choice)
        self._links: dict[PeerAddress, _Link] = {}
        self._waiting: list[_Pending] = []
        self._transmissions: set[asyncio.Task[None]] = set()
        self._sequence = itertools.count()
        self._refresh = asyncio.Event()
        self._last_refresh = 0.0
        self._discovery_task: asyncio.Task[None] | None = None
        self._peers_changed = asyncio.Event()
        self._closed = False
        self.metrics.in_flight = self._in_flight
        self._loop = asyncio.get_running_loop()
        get_runtime().track(self)

    @property
    def closed(self) -> bool:
        """Return True once ``close`` began."""
        return self._closed

    def _in_flight(self) -> dict[str, int]:
        return {link.peer_id: max(link.in_flight, 0) for link in list(self._links.values())}

    def peers(self) -> dict[str, str]:
        """Return every known receiver and its link state."""
        return {link.peer_id: link.state.value for link in self._links.values()}

    def _ready_links(self) -> list[_Link]:
        return sorted(
            (link for link in self._links.values() if link.state is LinkState.READY),
            key=lambda link: link.peer_id,
        )

    # Start-up and discovery.

    async def start(self, wait: float) -> None:
        """Look the destination up, connect, and wait up to ``wait`` s for a first receiver."""
        self._discovery_task = asyncio.get_running_loop().create_task(self._discover())
        if not await self.wait_for_peers(1, wait):
            logger.info(
                "No receiver of %s was ready within %g s; frames wait for one up to the send "
                "timeout, and the sender keeps connecting.",
                self._discovery.description,
                wait,
            )

    async def wait_for_peers(self, count: int, timeout: float) -> int:
        """Wait until ``count`` receivers are ready or ``timeout`` s pass; return how many are."""
        deadline = time.monotonic() + timeout
        while len(self._ready_links()) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._peers_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._peers_changed.wait(), remaining)
        return len(self._ready_links())

    async def _discover(self) -> None:
        failing_since: float | None = None
        last_warning = 0.0
        while not self._closed:
            try:
                resolution = await self._discovery.resolve()
            except DiscoveryError as error:
                now = time.monotonic()
                if failing_since is None or now - last_warning >= _DISCOVERY_WARNING_INTERVAL:
                    logger.warning(
                        "Looking up %s failed; keeping the %d known receivers: %s",
                        self._discovery.description,
                        len(self._links),
                        error,
                    )
                    last_warning = now
                failing_since = failing_since or now
                wait = self._options.resolve_retry
            else:
                if failing_since is not None:
                    logger.info("Looking up %s works again.", self._discovery.description)
                    failing_since = None
                self._apply_peers(resolution.peers)
                wait = resolution.ttl
            self._refresh.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), None if wait == float("inf") else wait)

    def _request_refresh(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh >= _MIN_REFRESH_INTERVAL:
            self._last_refresh = now
            self._refresh.set()

    def _apply_peers(self, peers: frozenset[PeerAddress]) -> None:
        for address in sorted(peers - self._links.keys()):
            link = _Link(address)
            self._links[address] = link
            link.task = asyncio.get_running_loop().create_task(self._supervise(link))
            if str(address) == self._discovery.description:
                logger.info("Found receiver %s.", address)
            else:
                logger.info("Found receiver %s of %s.", address, self._discovery.description)
        for address, link in list(self._links.items()):
            if address not in peers and link.listed:
                link.listed = False
                logger.info("Receiver %s is no longer listed; closing its connection.", address)
                self._retire(link)

    # One receiver's connection.

    async def _supervise(self, link: _Link) -> None:
        try:
            while link.listed and not self._closed:
                link.state = LinkState.CONNECTING
                channel = await self._connect(link)
                if channel is not None:
                    link.failures = 0
                    await self._run_link(link, channel)
                if not link.listed or self._closed:
                    break
                link.state = LinkState.BACKOFF
                self._request_refresh()
                await asyncio.sleep(self._backoff(link))
        finally:
            link.state = LinkState.REMOVED
            if link.channel is not None:
                link.channel.abort()
            if self._links.get(link.address) is link:
                del self._links[link.address]
            self._unbind(link)
            self._peers_changed.set()

    def _backoff(self, link: _Link) -> float:
        base: float = min(
            self._options.reconnect_initial * 2.0 ** max(link.failures - 1, 0),
            self._options.reconnect_max,
        )
        # Jitter keeps many senders from reconnecting to a restarted receiver in lockstep.
        return base * random.uniform(0.5, 1.0)

    async def _connect(self, link: _Link) -> Channel | None:
        try:
            channel = await self._backend.connect(
                link.address.host, link.address.port, self._options.connect_timeout
            )
        except PeerConnectionError as error:
            self._log_connect_failure(link, error)
            return None
        try:
            terms = await connect_handshake(
                channel,
                self._identity,
                self._secret,
                str(link.address),
                self._options.handshake_timeout,
            )
        except HandshakeError as error:
            channel.abort()
            self._log_connect_failure(link, error)
            return None
        except BaseException:
            # Cancelled because the sender is closing. A half-open connection
            # would hold the receiver's handshake until its timeout.
            channel.abort()
            raise

        limit = self._options.max_in_flight
        link.credits = min(terms.credits, limit) if limit is not None else terms.credits
        link.max_frame_size = terms.max_frame_size
        link.max_header_size = terms.max_header_size
        link.in_flight = 0
        link.last_heard = time.monotonic()
        link.channel = channel
        link.state = LinkState.READY
        logger.info(
            "Connected to receiver %s (%s) with the %s backend, payloads over %s: "
            "%d credits, frames up to %d bytes.",
            link.address,
            terms.receiver or "unnamed",
            self._backend.name,
            channel.payload_path,
            link.credits,
            link.max_frame_size,
        )
        self._peers_changed.set()
        self._pump()
        return channel

    def _log_connect_failure(self, link: _Link, error: Exception) -> None:
        # Repeated failures are logged at attempts 1, 10, 100, 200, ... and at debug level between.
        link.failures += 1
        log = (
            logger.warning if link.failures in (1, 10) or link.failures % 100 == 0 else logger.debug
        )
        log("Connecting to receiver %s failed (attempt %d): %s", link.address, link.failures, error)

    async def _run_link(self, link: _Link, channel: Channel) -> None:
        watchdog = asyncio.get_running_loop().create_task(self._watch(link, channel))
        lost_error: BaseException | None = None
        try:
            await self._read(link, channel)
        except (ConnectionLostError, ProtocolError, HandshakeRejectedError) as error:
            lost_error = error
        finally:
            watchdog.cancel()
            channel.abort()
        self._link_down(link, lost_error)

    async def _read(self, link: _Link, channel: Channel) -> None:
        while True:
            preamble = await channel.receive_preamble()
            link.last_heard = time.monotonic()
            header = await channel.receive_header(preamble, MAX_CONTROL_HEADER_SIZE)
            if preamble.payload_length:
                raise ProtocolError(
                    f"{preamble.kind.name} from receiver {link.address} carries a payload"
                )
            if preamble.kind is Kind.CREDIT:
                document = decode_json(header, "CREDIT")
                count = require_field(document, "credits", int, "CREDIT")
                # A credit may overtake the end of its own frame's send task, so
                # frames still being sent count as in flight here.
                if count < 0 or count > link.in_flight + link.sending:
                    raise ProtocolError(
                        f"receiver {link.address} returned {count} credits with "
                        f"{link.in_flight + link.sending} frames in flight"
                    )
                link.in_flight -= count
                link.credits += count
                self._pump()
            elif preamble.kind is Kind.GOODBYE:
                logger.info("Receiver %s is closing; sending no more frames to it.", link.address)
                self._retire(link)
                return
            elif preamble.kind is Kind.REJECT:
                document = decode_json(header, "REJECT")
                raise HandshakeRejectedError(
                    f"receiver {link.address} closed the connection: {document.get('reason')}",
                    str(link.address),
                    str(document.get("code", "")),
                )
            elif preamble.kind is not Kind.HEARTBEAT:
                raise ProtocolError(f"unexpected {preamble.kind.name} from receiver {link.address}")

    async def _watch(self, link: _Link, channel: Channel) -> None:
        while not channel.closed:
            await asyncio.sleep(self._options.heartbeat_interval)
            silent = time.monotonic() - link.last_heard
            if silent > self._options.peer_timeout:
                logger.warning(
                    "Receiver %s sent nothing for %.1f s; declaring it lost.", link.address, silent
                )
                channel.abort()
                return
            idle = link.heartbeat_task is None or link.heartbeat_task.done()
            if idle and not channel.sending:
                link.heartbeat_task = asyncio.get_running_loop().create_task(
                    send_heartbeat(channel)
                )

    def _retire(self, link: _Link) -> None:
        """Stop using a receiver that is leaving, without counting its frames as lost."""
        if link.state is LinkState.READY:
            link.state = LinkState.DRAINING
        self._unbind(link)
        channel = link.channel
        if channel is not None and not channel.closed:
            asyncio.get_running_loop().create_task(self._say_goodbye(channel))
        elif link.task is not None and link.state is not LinkState.CONNECTING:
            link.task.cancel()

    async def _say_goodbye(self, channel: Channel) -> None:
        with contextlib.suppress(ConnectionLostError, asyncio.TimeoutError):
            await asyncio.wait_for(channel.send(Kind.GOODBYE), self._options.peer_timeout)
        # The reader sees the receiver close its side, which ends the link's task.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                channel.close(linger=self._options.peer_timeout), 2 * self._options.peer_timeout
            )
        channel.abort()

    def _link_down(self, link: _Link, error: BaseException | None) -> None:
        if link.state is LinkState.READY:
            # Frames still being sent are dropped as peer_lost by their own tasks.
            unconfirmed = max(link.in_flight, 0)
            self.metrics.frames_unconfirmed(link.peer_id, unconfirmed)
            logger.warning(
                "Lost receiver %s with %d frames unconfirmed: %s",
                link.address,
                unconfirmed,
                error or "connection closed",
            )
        link.state = LinkState.BACKOFF
        link.channel = None
        link.credits = 0
        link.in_flight = 0
        self._choice.forget(link.peer_id)
        self._unbind(link)
        self._peers_changed.set()
        self._request_refresh()

    def _unbind(self, link: _Link) -> None:
        """Let frames that waited for ``link`` choose again."""
        for pending in self._waiting:
            if pending.target is link:
                pending.target = None
                link.waiting -= 1
        self._pump()

    # Frames.

    async def send(self, frame: OutgoingFrame, timeout: float | None) -> SendResult:
        """Send one frame; return when it is out or dropped."""
        return await self._start(frame, timeout).future

    def submit_threadsafe(
        self, frame: OutgoingFrame, timeout: float | None
    ) -> concurrent.futures.Future[SendResult]:
        """Start sending one frame from any thread but the loop's; return the outcome's future.

        This is ``send`` without a task or coroutine around it, because the
        synchronous API crosses threads once per frame.
        """
        outcome: concurrent.futures.Future[SendResult] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._start_for, frame, timeout, outcome)
        return outcome

    def _start_for(
        self,
        frame: OutgoingFrame,
        timeout: float | None,
        outcome: concurrent.futures.Future[SendResult],
    ) -> None:
        if not outcome.set_running_or_notify_cancel():
            return
        try:
            pending = self._start(frame, timeout)
        except BaseException as error:
            outcome.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        pending.future.add_done_callback(functools.partial(_copy_outcome, outcome))

    def _start(self, frame: OutgoingFrame, timeout: float | None) -> _Pending:
        if self._closed:
            raise TransportClosedError("the sender is closed")
        frame.sequence = next(self._sequence)
        now = time.monotonic()
        pending = _Pending(
            frame,
            self._loop.create_future(),
            deadline=now + (self._options.send_timeout if timeout is None else timeout),
            started=now,
        )
        self._dispatch(pending)
        return pending

    def _dispatch(self, pending: _Pending) -> None:
        ready = self._ready_links()
        with_credit = [link for link in ready if link.has_credit]
        if self._choice.binds_to_peer:
            link = self._choice.choose(ready, pending.frame.key)
        else:
            link = self._choice.choose(with_credit or ready, pending.frame.key)

        if link is None:
            if self._options.policy is OverflowPolicy.BLOCK:
                self._wait(pending, None, None)
            else:
                self._finish(pending, None, DropReason.NO_PEER)
            return
        if not self._fits(link, pending):
            return
        if link.has_credit and not any(waiting.target is link for waiting in self._waiting):
            self._transmit(link, pending)
            return
        self._wait(pending, link if self._choice.binds_to_peer else None, link)

    def _fits(self, link: _Link, pending: _Pending) -> bool:
        nbytes = pending.frame.payload.nbytes
        if nbytes <= link.max_frame_size:
            return True
        self.metrics.frame_dropped(link.peer_id, DropReason.TOO_LARGE.value)
        if not pending.future.done():
            pending.future.set_exception(
                FrameTooLargeError(
                    f"frame of {nbytes} bytes is larger than the maximum of {link.max_frame_size} "
                    f"bytes that receiver {link.address} accepts; split the frame or raise the "
                    "receiver's max_frame_size",
                    nbytes,
                    link.max_frame_size,
                )
            )
        return False

    def _wait(self, pending: _Pending, target: _Link | None, chosen: _Link | None) -> None:
        """Queue a frame for ``target`` (None: any receiver); ``chosen`` names the peer in drops."""
        group = [waiting for waiting in self._waiting if waiting.target is target]
        policy = self._options.policy
        if policy is not OverflowPolicy.BLOCK and len(group) >= self._options.max_queued:
            if policy is OverflowPolicy.DROP_NEWEST or not group:
                self._finish(pending, chosen, DropReason.QUEUE_FULL)
                return
            oldest = group[0]
            self._remove_waiting(oldest)
            self._finish(oldest, chosen, DropReason.SUPERSEDED)
        pending.target = target
        if target is not None:
            target.waiting += 1
        self._waiting.append(pending)
        pending.timer = asyncio.get_running_loop().call_at(
            _loop_time(pending.deadline), self._expire, pending
        )

    def _remove_waiting(self, pending: _Pending) -> None:
        with contextlib.suppress(ValueError):
            self._waiting.remove(pending)
        if pending.target is not None:
            pending.target.waiting -= 1
            pending.target = None
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _expire(self, pending: _Pending) -> None:
        if pending not in self._waiting:
            return
        target = pending.target
        self._remove_waiting(pending)
        reason = DropReason.TIMEOUT if self._ready_links() else DropReason.NO_PEER
        self._finish(pending, target, reason)

    def _pump(self) -> None:
        """Send waiting frames, oldest first, to receivers that have credits."""
        for pending in list(self._waiting):
            if pending.future.done():
                self._remove_waiting(pending)
                continue
            if pending.target is not None:
                link: _Link | None = pending.target
            else:
                ready = self._ready_links()
                if self._choice.binds_to_peer:
                    link = self._choice.choose(ready, pending.frame.key)
                else:
                    link = self._choice.choose([link for link in ready if link.has_credit], None)
            if link is None or not link.has_credit:
                if link is not None and self._choice.binds_to_peer and pending.target is None:
                    pending.target = link
                    link.waiting += 1
                continue
            self._remove_waiting(pending)
            if self._fits(link, pending):
                self._transmit(link, pending)

    def _transmit(self, link: _Link, pending: _Pending) -> None:
        link.credits -= 1
        link.sending += 1
        task = asyncio.get_running_loop().create_task(self._send_on(link, pending))
        self._transmissions.add(task)
        task.add_done_callback(self._transmissions.discard)

    async def _send_on(self, link: _Link, pending: _Pending) -> None:
        channel = link.channel
        frame = pending.frame
        payload = frame.payload
        try:
            if channel is None:
                raise ConnectionLostError(f"receiver {link.address} is not connected", link.peer_id)
            buffer = self._wire_buffer(channel, payload)
            header = FrameHeader(
                frame_id=frame.frame_id,
                sequence=frame.sequence,
                sent_at_ns=time.time_ns(),
                kind=payload.kind,
                memory=payload.memory,
                dtype=payload.dtype,
                shape=payload.shape,
                key=frame.key,
                metadata=frame.metadata,
            ).encode()
            if len(header) > link.max_header_size:
                # The receiver would drop the connection over it, losing the frames in flight.
                raise PayloadError(
                    f"the header of frame {frame.sequence} is {len(header)} bytes with its "
                    f"metadata, larger than the maximum of {link.max_header_size} bytes that "
                    f"receiver {link.address} accepts; send less metadata or raise the "
                    "receiver's max_header_size"
                )
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "[Send #%d] to %s, frame %s, key %s, %d bytes, %s memory",
                    frame.sequence,
                    link.address,
                    frame.frame_id,
                    frame.key,
                    payload.nbytes,
                    payload.memory.value,
                )
            await channel.send(Kind.FRAME, header, buffer, payload.nbytes)
        except ConnectionLostError:
            link.sending -= 1
            self._finish(pending, link, DropReason.PEER_LOST)
            return
        except BaseException as error:
            link.sending -= 1
            link.credits += 1
            if not pending.future.done():
                pending.future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        link.sending -= 1
        if link.state in (LinkState.READY, LinkState.DRAINING) and link.channel is channel:
            link.in_flight += 1
        duration = time.monotonic() - pending.started
        self.metrics.frame_sent(link.peer_id, payload.nbytes, duration)
        if not pending.future.done():
            pending.future.set_result(
                SendResult(frame.frame_id, frame.sequence, True, link.peer_id)
            )

    def _wire_buffer(self, channel: Channel, payload: OutgoingPayload) -> Any:
        if payload.memory is not Memory.CUDA:
            return payload.buffer
        if channel.supports_cuda:
            # UCX reads the device memory directly: the producer's stream must be done with it.
            cuda.runtime().synchronize(payload.stream)
            return payload.buffer
        self.metrics.staged_copies += 1
        return cuda.copy_to_host(payload.buffer, payload.nbytes)

    def _finish(self, pending: _Pending, link: _Link | None, reason: DropReason) -> None:
        frame = pending.frame
        peer = link.peer_id if link is not None else None
        self.metrics.frame_dropped(peer, reason.value)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "[Drop #%d] frame %s, peer %s: %s",
                frame.sequence,
                frame.frame_id,
                peer,
                reason.value,
            )
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.future.done():
            pending.future.set_result(
                SendResult(frame.frame_id, frame.sequence, False, peer, reason)
            )

    async def close(self, timeout: float) -> None:
        """Finish waiting and outgoing frames for up to ``timeout`` s, then leave every receiver."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout

        # First, let waiting frames go out or reach their deadlines, and let transmissions end.
        while (self._waiting or self._transmissions) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for pending in list(self._waiting):
            target = pending.target
            self._remove_waiting(pending)
            self._finish(pending, target, DropReason.CLOSED)

        # Then send GOODBYE to every receiver and stop the tasks.
        if self._discovery_task is not None:
            self._discovery_task.cancel()
        goodbyes = []
        for link in list(self._links.values()):
            link.listed = False
            if link.state is LinkState.READY:
                link.state = LinkState.DRAINING
            if link.channel is not None and not link.channel.closed:
                goodbyes.append(self._say_goodbye(link.channel))
        await asyncio.gather(*goodbyes, return_exceptions=True)
        for link in list(self._links.values()):
            if link.task is not None:
                link.task.cancel()
        for task in list(self._transmissions):
            task.cancel()
        logger.info("Sender %s to %s closed.", self._identity.name, self._discovery.description)


def _copy_outcome(
    outcome: concurrent.futures.Future[SendResult], future: asyncio.Future[SendResult]
) -> None:
    """Pass the result or error of ``future`` on to ``outcome``, a future of another thread."""
    if future.cancelled():
        outcome.set_exception(concurrent.futures.CancelledError())
    elif future.exception() is not None:
        outcome.set_exception(future.exception())
    else:
        outcome.set_result(future.result())


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a ``time.monotonic`` deadline to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
