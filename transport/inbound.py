"""The receiver's machinery on the transport loop: connections, buffers, delivery.

Every accepted connection goes through the same steps:

1. handshake (``handshake.accept_handshake``), rejected and logged on failure;
2. a reader task that takes one message at a time: for a FRAME it checks the
   payload length against ``max_frame_size`` and takes a free slot before
   reading the header and receiving the payload into the slot's buffer;
3. a watchdog task that sends a heartbeat every ``heartbeat_interval`` and
   drops a sender that was silent for ``peer_timeout`` (except while a
   payload is arriving, which may take longer for a large frame);
4. one CREDIT message back per frame the UDF releases.

Received frames go into one queue, in arrival order across connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma.transport import cuda
from numaflow_rdma.transport.backends import Backend, Channel, Listener
from numaflow_rdma.transport.buffers import Slot, SlotPool
from numaflow_rdma.transport.delivery import DeliveryQueue, QueueClosedError
from numaflow_rdma.transport.errors import (
    ConnectionLostError,
    HandshakeRejectedError,
    ProtocolError,
    TransportClosedError,
)
from numaflow_rdma.transport.frames import Frame
from numaflow_rdma.transport.handshake import (
    Identity,
    RejectReason,
    Terms,
    accept_handshake,
)
from numaflow_rdma.transport.metrics import TransportMetrics
from numaflow_rdma.transport.options import ReceiverOptions
from numaflow_rdma.transport.payload import host_view
from numaflow_rdma.transport.protocol import (
    FrameHeader,
    Kind,
    Memory,
    Preamble,
    encode_json,
)
from numaflow_rdma.transport.runtime import get_runtime

logger = logging.getLogger(__name__)

# A payload may take longer than peer_timeout to arrive; the watchdog allows
# peer_timeout plus the time it takes at this rate, in bytes per second.
_SLOWEST_PAYLOAD_RATE = 10_000_000
REJECTION_LOG_INTERVAL = 10.0
"""Seconds between two log lines about rejected handshakes with the same reason."""



@dataclass(eq=False)
class _Inbound:
    """One sender's connection."""

    channel: Channel
    pool: SlotPool
    name: str = ""
    outstanding: int = 0
    delivered: int = 0
    last_heard: float = field(default_factory=time.monotonic)
    payload_started: float | None = None
    payload_bytes: int = 0
    credits_to_send: int = 0
    credit_task: asyncio.Task[None] | None = None
    heartbeat_task: asyncio.Task[None] | None = None
    closing: bool = False


async def send_heartbeat(channel: Channel) -> None:
    """Send one HEARTBEAT; a lost connection is noticed by the reader instead."""
    with contextlib.suppress(ConnectionLostError):
        await channel.send(Kind.HEARTBEAT)


class ReceiverCore:
    """Accepts senders and queues their frames; lives on the transport loop."""

    def __init__(
        self,
        backend: Backend,
        host: str,
        port: int,
        identity: Identity,
        secret: bytes | None,
        options: ReceiverOptions,
        metrics: TransportMetrics,
        check_address: bool,
    ) -> None:
        self._backend = backend
        self._host = host
        self._port = port
        self._identity = identity
        self._secret = secret
        self._options = options
        self.metrics = metrics
        self._check_address = check_address
        self._listener: Listener | None = None
        self._connections: set[_Inbound] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.frames: DeliveryQueue[Frame] = DeliveryQueue()
        """Received frames, in arrival order across connections, for the receiving code."""
        self._closed = False
        self._warned_host_delivery = False
        self._rejections_logged: dict[str, tuple[float, int]] = {}
        """The time of the last rejection logged, and how many were not logged since, per reason."""
        self.metrics.in_flight = self._in_flight
        get_runtime().track(self)

    @property
    def port(self) -> int:
        """Return the port the listener is bound to."""
        return self._listener.port if self._listener else self._port

    @property
    def closed(self) -> bool:
        """Return True once ``close`` began."""
        return self._closed

    @property
    def connection_count(self) -> int:
        """Return how many senders are connected now."""
        return len(self._connections)

    def _in_flight(self) -> dict[str, int]:
        return {inbound.name: inbound.outstanding for inbound in list(self._connections)}

    async def start(self) -> None:
        """Listen for senders."""
        self._listener = await self._backend.listen(self._host, self._port, self._serve)
        logger.info(
            "Receiver %r listening on %s:%d over %s for pipeline %s.",
            self._identity.name,
            self._host,
            self.port,
            self._backend.name,
            self._identity.pipeline_path,
        )

    async def _serve(self, channel: Channel) -> None:
        if self._closed:
            channel.abort()
            return
        # First, the handshake; nothing else is read before it passes.
        terms = Terms(
            credits=self._options.credits,
            max_frame_size=self._options.max_frame_size,
            max_header_size=self._options.max_header_size,
            heartbeat_interval=self._options.heartbeat_interval,
            receiver=self._identity.name,
        )
        own_host = self._own_host(channel)
        try:
            hello = await accept_handshake(
                channel,
                self._identity,
                self._secret,
                own_host,
                terms,
                self._options.handshake_timeout,
            )
        except HandshakeRejectedError as error:
            self.metrics.connection_rejected(error.reason or RejectReason.MALFORMED)
            self._log_rejection(error)
            channel.abort()
            return

        # Then read frames until the sender leaves or the connection fails.
        inbound = _Inbound(
            channel, SlotPool(self._options.credits), name=hello.name or channel.peer
        )
        self._connections.add(inbound)
        logger.info("Sender %r connected (%s).", inbound.name, channel.peer)
        watchdog = asyncio.get_running_loop().create_task(self._watch(inbound))
        try:
            await self._read(inbound)
        except HandshakeRejectedError as error:
            self.metrics.connection_rejected(error.reason)
            logger.warning("Closed the connection of %s: %s", inbound.name, error)
        except ProtocolError as error:
            self.metrics.connection_rejected(RejectReason.MALFORMED)
            logger.warning(
                "Closed the connection of %s after a malformed message: %s", inbound.name, error
            )
        except ConnectionLostError as error:
            if not inbound.closing:
                logger.warning("Lost sender %s: %s", inbound.name, error)
        finally:
            watchdog.cancel()
            inbound.closing = True
            channel.abort()
            self._connections.discard(inbound)
            logger.info("Sender %s disconnected.", inbound.name)

    def _log_rejection(self, error: HandshakeRejectedError) -> None:
        """Log a rejected handshake, at most once per ``REJECTION_LOG_INTERVAL`` s per reason.

        A sender that fails the handshake retries with backoff, so without a
        limit one misconfigured sender fills the log. The metrics count every
        rejection.
        """
        now = time.monotonic()
        last, suppressed = self._rejections_logged.get(error.reason, (-REJECTION_LOG_INTERVAL, 0))
        if now - last < REJECTION_LOG_INTERVAL:
            self._rejections_logged[error.reason] = (last, suppressed + 1)
            return
        self._rejections_logged[error.reason] = (now, 0)
        extra = f"; {suppressed} more with this reason were not logged" if suppressed else ""
        logger.warning("Rejected a connection: %s (reason %s%s).", error, error.reason, extra)

    def _count_allocation(self) -> None:
        self.metrics.buffer_allocations += 1

    def _own_host(self, channel: Channel) -> str | None:
        if not self._check_address or self._host in ("0.0.0.0", "::", ""):
            return None
        # A TCP listener is bound to the RDMA address itself; where the
        # backend reports the local address, it must be that one too.
        if channel.local_host is not None and channel.local_host != self._host:
            logger.warning(
                "Connection %s arrived on %s instead of the RDMA address %s.",
                channel.peer,
                channel.local_host,
                self._host,
            )
        return self._host

    async def _read(self, inbound: _Inbound) -> None:
        channel = inbound.channel
        while True:
            preamble = await channel.receive_preamble()
            inbound.last_heard = time.monotonic()
            if preamble.kind is Kind.FRAME:
                await self._receive_frame(inbound, preamble)
            elif preamble.kind in (Kind.HEARTBEAT, Kind.GOODBYE):
                await channel.receive_header(preamble, self._options.max_header_size)
                if preamble.payload_length:
                    raise ProtocolError(
                        f"{preamble.kind.name} from {inbound.name} carries a payload"
                    )
                if preamble.kind is Kind.GOODBYE:
                    inbound.closing = True
                    return
            else:
                raise ProtocolError(f"unexpected {preamble.kind.name} message from {inbound.name}")

    async def _receive_frame(self, inbound: _Inbound, preamble: Preamble) -> None:
        channel = inbound.channel
        nbytes = preamble.payload_length

        # Check the size before allocating anything for the frame.
        if nbytes > self._options.max_frame_size:
            self.metrics.frame_dropped(inbound.name, "too_large")
            reason = (
                f"frame of {nbytes} bytes is larger than this receiver's maximum of "
                f"{self._options.max_frame_size} bytes"
            )
            with contextlib.suppress(ConnectionLostError):
                await asyncio.wait_for(
                    channel.send(
                        Kind.REJECT,
                        encode_json({"reason": reason, "code": RejectReason.FRAME_TOO_LARGE}),
                    ),
                    1.0,
                )
            raise HandshakeRejectedError(reason, inbound.name, RejectReason.FRAME_TOO_LARGE)
        header = FrameHeader.decode(
            await channel.receive_header(preamble, self._options.max_header_size), nbytes
        )
        slot = inbound.pool.acquire()

        # Receive the payload into the slot, on the device when that is wanted and possible.
        inbound.payload_started = time.monotonic()
        inbound.payload_bytes = nbytes
        try:
            data, memory = await self._receive_payload(inbound, slot, header, nbytes)
        except BaseException:
            inbound.pool.release(slot)
            raise
        finally:
            inbound.payload_started = None
            inbound.last_heard = time.monotonic()
        received_at_ns = time.time_ns()

        inbound.outstanding += 1
        frame = Frame(
            data,
            frame_id=header.frame_id,
            sequence=header.sequence,
            sent_at_ns=header.sent_at_ns,
            received_at_ns=received_at_ns,
            metadata=header.metadata,
            key=header.key,
            sender=inbound.name,
            nbytes=nbytes,
            memory=memory,
            on_release=functools.partial(get_runtime().call_soon, self._release, inbound, slot),
        )
        self.metrics.frame_received(
            inbound.name, nbytes, (received_at_ns - header.sent_at_ns) / 1e9
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "[Receive #%d] from %s, frame %s, key %s, %d bytes, %s memory, slot %d",
                header.sequence,
                inbound.name,
                header.frame_id,
                header.key,
                nbytes,
                memory.value,
                slot.index,
            )
        try:
            self.frames.put(frame)
        except QueueClosedError:
            # The receiver closed while this payload arrived, so no consumer will take the frame.
            frame.release()
            self.metrics.frame_dropped(inbound.name, "closed")

    async def _receive_payload(
        self, inbound: _Inbound, slot: Slot, header: FrameHeader, nbytes: int
    ) -> tuple[Any, Memory]:
        channel = inbound.channel
        helper = (
            cuda.runtime() if header.memory is Memory.CUDA and self._options.device_frames else None
        )
        if helper is not None and helper.available:
            device = inbound.pool.device_buffer(slot, nbytes)
            if nbytes and channel.supports_cuda:
                await channel.receive_payload(device)
            elif nbytes:
                # The backend cannot write device memory: stage through the slot's host buffer.
                host = inbound.pool.host_buffer(slot, nbytes)
                await channel.receive_payload(host)
                helper.copy(device.pointer, host.ctypes.data, nbytes, "to_device")
                self.metrics.staged_copies += 1
            return helper.as_user_array(device, header.dtype, header.shape or (0,)), Memory.CUDA

        if header.memory is Memory.CUDA and not self._warned_host_delivery:
            self._warned_host_delivery = True
            logger.warning(
                "CUDA frames from %s are delivered as NumPy arrays in host memory, because %s.",
                inbound.name,
                "device_frames is off"
                if not self._options.device_frames
                else "neither CuPy nor RMM with cuda-bindings can be imported",
            )
        host = inbound.pool.host_buffer(slot, nbytes)
        if nbytes:
            await channel.receive_payload(host)
        return host_view(host, header.kind, header.dtype, header.shape), Memory.HOST

    def _release(self, inbound: _Inbound, slot: Slot) -> None:
        inbound.pool.release(slot)
        inbound.outstanding -= 1
        inbound.delivered += 1
        if inbound.closing or inbound.channel.closed:
            return
        inbound.credits_to_send += 1
        if inbound.credit_task is None or inbound.credit_task.done():
            inbound.credit_task = asyncio.get_running_loop().create_task(
                self._send_credits(inbound)
            )

    async def _send_credits(self, inbound: _Inbound) -> None:
        # Credits released while a CREDIT message is on its way go out together in the next one.
        while inbound.credits_to_send and not inbound.channel.closed:
            count, inbound.credits_to_send = inbound.credits_to_send, 0
            message = encode_json({"credits": count, "delivered": inbound.delivered})
            try:
                await inbound.channel.send(Kind.CREDIT, message)
            except ConnectionLostError:
                return

    async def _watch(self, inbound: _Inbound) -> None:
        interval = self._options.heartbeat_interval
        timeout = self._options.peer_timeout
        while not inbound.channel.closed:
            await asyncio.sleep(interval)
            now = time.monotonic()
            allowed = timeout
            if inbound.payload_started is not None:
                allowed += inbound.payload_bytes / _SLOWEST_PAYLOAD_RATE
                silent = now - inbound.payload_started
            else:
                silent = now - inbound.last_heard
            if silent > allowed:
                logger.warning(
                    "Sender %s sent nothing for %.1f s; closing its connection.",
                    inbound.name,
                    silent,
                )
                inbound.channel.abort()
                return
            # The heartbeat goes out from its own task, so a full socket buffer
            # cannot stop this loop from noticing a silent sender.
            idle = inbound.heartbeat_task is None or inbound.heartbeat_task.done()
            if idle and not inbound.channel.sending:
                inbound.heartbeat_task = asyncio.get_running_loop().create_task(
                    send_heartbeat(inbound.channel)
                )

    def next_frame(self, timeout: float | None) -> Frame | None:
        """Block for the next frame up to ``timeout`` seconds; return None when none came.

        Called from the receiving code's thread, never the transport thread.
        Raises TransportClosedError once closed and every frame was delivered.
        """
        try:
            return self.frames.get(timeout)
        except QueueClosedError:
            raise _drained() from None

    async def next_frame_async(self, timeout: float | None) -> Frame | None:
        """Await the next frame on the caller's loop; see ``next_frame``."""
        try:
            return await self.frames.get_async(timeout)
        except QueueClosedError:
            raise _drained() from None

    async def close(self, timeout: float) -> None:
        """Stop accepting, say goodbye, and wait up to ``timeout`` s for senders to finish.

        Frames already received stay in the queue and are still delivered.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        if self._listener is not None:
            await self._listener.close()

        # First, ask every sender to stop; they finish the frame they are sending and leave.
        for inbound in list(self._connections):
            with contextlib.suppress(ConnectionLostError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    inbound.channel.send(Kind.GOODBYE), max(deadline - time.monotonic(), 0.01)
                )

        # Then wait for their connections to end, and cut those that do not.
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for inbound in list(self._connections):
            logger.warning(
                "Sender %s did not leave within %.1f s; closing its connection.",
                inbound.name,
                timeout,
            )
            inbound.closing = True
            inbound.channel.abort()
        self.frames.close()
        logger.info("Receiver %s closed.", self._identity.name)


def _drained() -> TransportClosedError:
    return TransportClosedError("the receiver is closed and every received frame was delivered")
