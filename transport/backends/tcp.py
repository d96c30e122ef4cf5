"""The TCP backend: asyncio on plain sockets, with the wire semantics of the UCX backend.

It needs nothing beyond the standard library, so it is what the base install
runs. Payloads go from the caller's buffer to ``sock_sendall`` and from
``sock_recv_into`` into the receiver's slot, with no copy in Python; the
kernel's socket copies remain. Reads shorter than ``READ_AHEAD`` go through
a staging buffer instead, so one system call takes a preamble and its
header, and often the next message's too. Device memory is staged through host memory
by the caller (``supports_cuda`` is False).

The listener binds the given address only, so a receiver on its RDMA
address cannot be reached through the pod's other interfaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

from numaflow_rdma.transport.backends.base import Backend, Channel, ChannelHandler, Listener
from numaflow_rdma.transport.errors import PeerConnectionError

logger = logging.getLogger(__name__)

# Bytes read from the socket at once for reads shorter than this; the rest
# waits in the channel for the next read.
READ_AHEAD = 64 * 1024
_LOW_WATER_MAX = 256 * 1024


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def format_address(host: str, port: int) -> str:
    """Return ``host:port``, with brackets around IPv6 addresses."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TcpChannel(Channel):
    """A connected, non-blocking TCP socket."""

    backend = "tcp"
    supports_cuda = False

    def __init__(self, sock: socket.socket, peer: str, local_host: str | None) -> None:
        super().__init__(peer, local_host)
        self._socket = sock
        self._loop = asyncio.get_running_loop()
        self._pending = 0
        self._staging = memoryview(bytearray(READ_AHEAD))
        self._staged_start = 0
        self._staged_end = 0

    async def _send_parts(self, preamble: bytes, header: bytes, payload: Any) -> None:
        self._pending += 1
        try:
            await self._loop.sock_sendall(self._socket, preamble + header)
            if payload is not None:
                await self._loop.sock_sendall(self._socket, memoryview(payload).cast("B"))
        except OSError as error:
            self.abort()
            raise self._lost(error, "sending") from error
        finally:
            self._operation_done()

    @property
    def has_read_ahead(self) -> bool:
        """Return True when bytes of the next message were already read from the socket."""
        return self._staged_end > self._staged_start

    async def _receive_into(self, buffer: Any) -> None:
        if self._closed:
            raise self._lost(None, "receiving")
        view = memoryview(buffer).cast("B")
        received = self._take_staged(view)
        self._pending += 1
        try:
            while received < len(view):
                if len(view) - received < READ_AHEAD:
                    # A small read (preamble, header, small payload) fills the staging
                    # buffer, which usually takes the next message's preamble and header too.
                    self._staged_start = 0
                    self._staged_end = await self._receive_some(self._staging, 1)
                    received += self._take_staged(view[received:])
                else:
                    received += await self._receive_some(view[received:], len(view) - received)
        finally:
            self._operation_done()

    async def _receive_some(self, view: memoryview, needed: int) -> int:
        """Receive at least one byte into ``view``; return how many arrived.

        ``needed`` is how many bytes the caller needs in all: the loop is
        woken only once that many, or ``_LOW_WATER_MAX``, are there to read.

        The socket is read directly and the loop is only asked to wait when
        it has nothing to read, because a large payload arrives in dozens of
        pieces and ``sock_recv_into`` costs a coroutine and a future for each.
        """
        while True:
            try:
                count = self._socket.recv_into(view)
            except (BlockingIOError, InterruptedError):
                await self._readable(needed)
                continue
            except OSError as error:
                self.abort()
                raise self._lost(error, "receiving") from error
            if count == 0:
                self.abort()
                raise self._lost(None, "receiving")
            return count

    async def _readable(self, needed: int) -> None:
        """Wait until the socket has bytes to read, or its end, or an error."""
        if self._closed:
            raise self._lost(None, "receiving")
        readable = self._loop.create_future()
        descriptor = self._socket.fileno()
        low_water = min(needed, _LOW_WATER_MAX)
        if low_water > 1:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, low_water)
        self._loop.add_reader(descriptor, _set_done, readable)
        try:
            await readable
        finally:
            self._loop.remove_reader(descriptor)
            if low_water > 1 and not self._closed:
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

    def _take_staged(self, view: memoryview) -> int:
        """Copy read-ahead bytes into ``view``; return how many were copied."""
        count = min(self._staged_end - self._staged_start, len(view))
        if count:
            view[:count] = self._staging[self._staged_start : self._staged_start + count]
            self._staged_start += count
        return count

    async def _finish_sending(self, linger: float) -> None:
        """Half-close first, so the peer reads the end of the stream after the last message.

        Closing a socket that still holds unread bytes (heartbeats, credits)
        makes Linux send a reset, and a reset makes the peer discard what it
        had not read yet: the last frames.
        """
        if self._closed:
            return
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_WR)
        await super()._finish_sending(linger)

    def _operation_done(self) -> None:
        self._pending -= 1
        if self._closed and self._pending == 0:
            self._socket.close()

    def abort(self) -> None:
        """Shut the socket down, which wakes pending sends and receives, then close it.

        The descriptor is closed only once no socket operation is pending,
        because asyncio must first remove its reader or writer for it.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        if self._pending == 0:
            self._socket.close()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


ChannelFactory = Callable[[socket.socket, str, str | None], TcpChannel]
"""Makes the channel of a connected socket from the socket, the peer and the local address."""


class TcpListener(Listener):
    """A listening TCP socket with its accept loop."""

    def __init__(
        self, sock: socket.socket, handler: ChannelHandler, channel_factory: ChannelFactory
    ) -> None:
        self._socket = sock
        self._handler = handler
        self._channel_factory = channel_factory
        name = sock.getsockname()
        self.host = str(name[0])
        self.port = int(name[1])
        self._connections: set[asyncio.Task[None]] = set()
        self._accept_task = asyncio.get_running_loop().create_task(
            self._accept_loop(), name=f"tcp-accept-{self.port}"
        )

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, address = await loop.sock_accept(self._socket)
            except OSError as error:
                if self._socket.fileno() < 0:
                    return
                logger.warning("Accepting a TCP connection on port %d failed: %s", self.port, error)
                await asyncio.sleep(0.1)
                continue
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local = str(connection.getsockname()[0])
            channel = self._channel_factory(
                connection, format_address(str(address[0]), int(address[1])), local
            )
            task = loop.create_task(self._handler(channel), name=f"tcp-connection-{channel.peer}")
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def close(self) -> None:
        """Stop accepting; accepted connections are left to their handlers."""
        self._accept_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._accept_task
        self._socket.close()


class TcpBackend(Backend):
    """Messages over TCP sockets."""

    name = "tcp"
    supports_cuda = False

    async def listen(self, host: str, port: int, handler: ChannelHandler) -> Listener:
        """Bind ``host:port`` and accept connections until closed."""
        sock = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            raise PeerConnectionError(
                f"cannot listen on {format_address(host, port)} over TCP: {error}; "
                "check that the address belongs to this pod and the port is free",
                format_address(host, port),
            ) from error
        return TcpListener(sock, handler, self._make_channel)

    async def connect(self, host: str, port: int, timeout: float) -> Channel:
        """Open a TCP connection, with TCP_NODELAY so small control messages are not delayed."""
        peer = format_address(host, port)
        sock = socket.socket(_family(host), socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout
            )
        except (OSError, asyncio.TimeoutError) as error:
            sock.close()
            what = (
                f"timed out after {timeout:g} s"
                if isinstance(error, asyncio.TimeoutError)
                else str(error)
            )
            raise PeerConnectionError(f"cannot connect to {peer} over TCP: {what}", peer) from error
        except BaseException:
            # Cancelled: a connection the kernel completes later must not stay open.
            sock.close()
            raise
        return self._make_channel(sock, peer, str(sock.getsockname()[0]))

    def _make_channel(self, sock: socket.socket, peer: str, local_host: str | None) -> TcpChannel:
        return TcpChannel(sock, peer, local_host)

    def describe(self) -> str:
        """Return the start-up log line of this backend."""
        return "backend tcp (asyncio sockets)"
