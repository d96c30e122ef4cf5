"""What every backend provides: listeners and message channels.

A ``Channel`` carries protocol messages in both directions over one
connection. Sending is serialized by a lock, so the parts of one message
never interleave with another's. Receiving is done by a single reader task
per channel. It reads a preamble, then the header, then the payload into a
buffer of its choosing.

Every I/O failure leaves a channel as ``ConnectionLostError``, whatever the
backend raised underneath.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from numaflow_rdma.transport.errors import ConnectionLostError, ProtocolError
from numaflow_rdma.transport.protocol import (
    PREAMBLE_SIZE,
    Kind,
    Preamble,
    decode_preamble,
    encode_preamble,
)

logger = logging.getLogger(__name__)


class Channel(abc.ABC):
    """One connection that carries protocol messages."""

    backend = ""
    supports_cuda = False
    """True when payloads in device memory can be sent and received as they are."""

    def __init__(self, peer: str, local_host: str | None = None) -> None:
        self.peer = peer
        """The remote side for log lines: ``host:port`` where the backend can tell."""
        self.local_host = local_host
        """The local address the connection arrived on, or None where the backend cannot tell."""
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._peer_closed = asyncio.Event()

    @property
    def closed(self) -> bool:
        """Return True once the channel was aborted or closed."""
        return self._closed

    @property
    def payload_path(self) -> str:
        """Return how frame payloads travel on this connection, for log lines: ``TCP`` or ``UCX``."""
        return "TCP"

    @property
    def sending(self) -> bool:
        """Return True while a message is being sent."""
        return self._send_lock.locked()

    async def send(
        self, kind: Kind, header: bytes = b"", payload: Any = None, nbytes: int = 0
    ) -> None:
        """Send one message; ``payload`` is a host ``uint8`` array or, where supported, a device array.

        Raises ConnectionLostError when the channel fails or is closed.
        """
        preamble = encode_preamble(kind, len(header), nbytes if payload is not None else 0)
        async with self._send_lock:
            if self._closed:
                raise ConnectionLostError(f"connection to {self.peer} is closed", self.peer)
            await self._send_parts(preamble, header, payload if nbytes else None)

    async def receive_preamble(self) -> Preamble:
        """Receive the next message's preamble."""
        buffer = bytearray(PREAMBLE_SIZE)
        await self._receive(buffer)
        return decode_preamble(buffer)

    async def receive_header(self, preamble: Preamble, limit: int) -> bytes:
        """Receive the header announced by ``preamble``, after checking it against ``limit``."""
        if preamble.header_length > limit:
            raise ProtocolError(
                f"{preamble.kind.name} header of {preamble.header_length} bytes from {self.peer} "
                f"is larger than the maximum of {limit} bytes"
            )
        if preamble.header_length == 0:
            return b""
        buffer = bytearray(preamble.header_length)
        await self._receive(buffer)
        return bytes(buffer)

    async def receive_payload(self, buffer: Any) -> None:
        """Receive a payload into ``buffer``, exactly its size: a host array or a device array."""
        await self._receive(buffer)

    async def discard_payload(self, nbytes: int, chunk: int = 1 << 20) -> None:
        """Read and drop a payload of ``nbytes``, for messages that carry one unexpectedly."""
        remaining = nbytes
        while remaining:
            size = min(chunk, remaining)
            await self._receive(bytearray(size))
            remaining -= size

    async def _receive(self, buffer: Any) -> None:
        try:
            await self._receive_into(buffer)
        except ConnectionLostError:
            self._peer_closed.set()
            raise

    def handshake_offer(self) -> dict[str, Any]:
        """Return the fields a sender adds to HELLO to offer a backend's own payload path.

        The default offers nothing, so payloads travel on the channel itself.
        """
        return {}

    def handshake_grant(self, hello: dict[str, Any]) -> dict[str, Any]:
        """Return the fields a receiver adds to WELCOME to accept what ``hello`` offered.

        Called once the sender passed the handshake's checks; the default grants nothing.
        """
        return {}

    async def handshake_complete(self, welcome: dict[str, Any]) -> None:
        """Set up, on the sender, what the receiver granted in ``welcome``.

        Runs within the handshake's timeout, before any frame is sent. Raises
        ProtocolError for invalid fields and ConnectionLostError when the
        granted path cannot be opened. The default has nothing to set up.
        """
        return None

    @abc.abstractmethod
    async def _send_parts(self, preamble: bytes, header: bytes, payload: Any) -> None:
        """Send a preamble, a header (may be empty) and a payload (may be None) in order."""

    @abc.abstractmethod
    async def _receive_into(self, buffer: Any) -> None:
        """Fill ``buffer`` with exactly its size in bytes."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Break the connection at once; pending sends and receives fail with ConnectionLostError."""

    async def close(self, linger: float = 1.0) -> None:
        """Close after the message being sent, if any, is out and the peer had time to read it.

        Waits up to ``linger`` seconds for the peer to close its side, then aborts.
        """
        async with self._send_lock:
            await self._finish_sending(linger)
            self.abort()

    async def _finish_sending(self, linger: float) -> None:
        """Wait for the peer to close its side, which it does once it has read everything.

        A completed send only means the data left this process: tearing the
        connection down at once can make the peer lose the last frames.
        This needs the channel's reader to run, which notices the close.
        """
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._peer_closed.wait(), linger)

    def _lost(self, error: BaseException | None, action: str) -> ConnectionLostError:
        detail = f": {error}" if error is not None and str(error) else ""
        name = type(error).__name__ if error is not None else "end of stream"
        return ConnectionLostError(
            f"connection to {self.peer} lost while {action} ({name}{detail})", self.peer
        )


ChannelHandler = Callable[[Channel], Coroutine[Any, Any, None]]


class Listener(abc.ABC):
    """A listening socket that hands each accepted connection to a handler."""

    host: str
    port: int

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop accepting connections; connections already accepted stay open."""


class Backend(abc.ABC):
    """A way to move messages: ``tcp`` or ``ucx``."""

    name = ""
    supports_cuda = False

    @abc.abstractmethod
    async def listen(self, host: str, port: int, handler: ChannelHandler) -> Listener:
        """Listen on ``host:port`` (port 0 picks a free one) and run ``handler`` per connection."""

    @abc.abstractmethod
    async def connect(self, host: str, port: int, timeout: float) -> Channel:
        """Connect to ``host:port``; raise PeerConnectionError on failure or after ``timeout`` s."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Return one line for the start-up log: the backend, its versions and transports."""

    def transports(self) -> frozenset[str]:
        """Return the names of the transports the backend can use (UCX's, or ``tcp``)."""
        return frozenset({"tcp"})
