"""The UCX backend: control messages over TCP, frame payloads over UCX (the ``ucx`` extra).

Each connection is a TCP connection that carries the wire protocol exactly as
the tcp backend does: the handshake, frame headers, credits, heartbeats and
goodbyes. In the handshake the sender offers UCX payloads (HELLO field
``ucx_payloads``), and the receiver grants them in WELCOME with its UCX
worker address and a tag base for the connection. The sender creates an
endpoint to that worker and sends one small check message, which the
receiver confirms with a HEARTBEAT over TCP before the handshake ends. From
then on each payload is one tagged UCX message, tagged with the base plus
its number on the connection (modulo 2**32, 0 being the check message),
while the frame's preamble and header still travel over TCP. The receiver
reads the header, waits for the message with the next tag, checks its
length against the header, and receives it into the frame's buffer. Payloads
above ``UCX_RNDV_THRESH`` (ucxx sets 8 KiB) use UCX's rendezvous protocol:
the data stays in the sender's buffer until the receiver has a buffer for
it, and is then moved by RDMA, CMA or the tcp transport. The send lock is
released once a payload is posted, so a second frame's header can follow
while UCX still moves the first payload.

Why the payload goes to a worker endpoint and not to a ucxx listener's:

- endpoints made from a worker address need no endpoint error handling, so
  UCX may use shared memory and CMA between processes of one host, and
  verbs between hosts where it has them. Listener endpoints require error
  handling, which limits UCX to transports that report peer failures, so
  two processes on one host talk over tcp;
- no UCX listener is needed. The ucxx 0.52 listener binds every address of
  the pod, while this backend's TCP listener binds the RDMA address only.
  UCX's tcp transport still listens on the interfaces in
  ``UCX_NET_DEVICES``, but only a sender that passed the handshake learns
  the worker address.

UCX does not report a failed peer on endpoints without error handling. The
control connection does: when it ends, or when heartbeats stop for
``peer_timeout``, the channel is aborted, and whatever it waits for (a
payload being sent, or a payload expected) fails at once with
ConnectionLostError. A receiver that waits for a payload also watches the
TCP connection, so a sender that dies mid-frame is noticed without waiting
for the heartbeat timeout.

A receiver that does not grant UCX payloads (one that uses the tcp backend),
and a sender that does not offer them, get payloads over TCP, so the two
backends can talk to each other. A sender also offers none, for a while, to
a receiver whose check message UCX did not deliver.

The backend sets ``UCX_WARN_UNUSED_ENV_VARS=n`` unless it is set already,
because ucxx sets ``UCX_MEMTYPE_CACHE``, which UCX 1.21 no longer
recognizes, and UCX warns about it on every start. It leaves UCX 1.21's
protocol layer (v2) on. On a two-vCPU VM, two processes passing
6,220,800-byte messages one at a time this way reached a median of 9.1 GB/s
with v2 and 3.7 GB/s with v1 (``UCX_PROTO_ENABLE=n``) over shared memory and
CMA. Over tcp between two network and IPC namespaces joined by a veth pair
they reached 3.0 against 1.8 GB/s (six or seven runs each). Only tcp over
loopback favoured v1 (2.0 against 1.2 GB/s).

UCX writes its own log lines to standard output, not standard error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import importlib
import importlib.util
import logging
import os
import secrets
import socket
import time
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any

import numpy as np

from numaflow_rdma.transport.backends.tcp import TcpBackend, TcpChannel
from numaflow_rdma.transport.backends.ucx_worker import UcxWorker
from numaflow_rdma.transport.errors import (
    BackendUnavailableError,
    ConnectionLostError,
    ProtocolError,
)
from numaflow_rdma.transport.protocol import (
    MAX_CONTROL_HEADER_SIZE,
    Kind,
    decode_json,
    encode_json,
    encode_preamble,
)

logger = logging.getLogger(__name__)

# UCX transports that move data by RDMA (InfiniBand or RoCE through verbs).
RDMA_TRANSPORT_PREFIXES = ("rc", "ud", "dc")
CUDA_TRANSPORTS = frozenset({"cuda_copy", "cuda_ipc", "gdr_copy"})

PAYLOAD_FIELD = "ucx_payloads"
"""The HELLO and WELCOME field that offers and grants UCX payloads."""
PAYLOAD_SCHEME = 1
"""The version of the payload scheme a sender offers in HELLO."""
# A tag is the connection's base (its upper 32 bits) plus the payload's number.
_NUMBER_BITS = 32
_NUMBER_MASK = (1 << _NUMBER_BITS) - 1
# WELCOME must fit the handshake's 4096-byte header limit with its other fields.
_MAX_ADDRESS_TEXT = 3072
CHECK_TIMEOUT = 3.0
"""Seconds a sender waits for the receiver to confirm the UCX check message."""
CHECK_CONFIRMATION = "ready"
TCP_FALLBACK_PERIOD = 300.0
"""Seconds a sender sends payloads over TCP to a receiver that UCX failed to reach."""


def is_installed() -> bool:
    """Tell whether ``ucxx`` can be imported, without importing it (which takes about 0.5 s)."""
    return importlib.util.find_spec("ucxx") is not None


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the UCX defaults described in the module docstring where unset; return those set."""
    environ = os.environ if environ is None else environ
    wanted = {"UCX_WARN_UNUSED_ENV_VARS": "n"}
    applied: dict[str, str] = {}
    for name, value in wanted.items():
        if name not in environ:
            environ[name] = value
            applied[name] = value
    return applied


def rdma_transports(transports: frozenset[str]) -> frozenset[str]:
    """Return the RDMA transports among UCX transport names such as ``rc_mlx5``."""
    return frozenset(name for name in transports if name.startswith(RDMA_TRANSPORT_PREFIXES))


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise BackendUnavailableError(
            f"the ucx backend needs the ucxx package, and importing {name} failed ({error}); "
            "install numaflow-rdma[ucx] or choose the tcp backend"
        ) from error


class UcxChannel(TcpChannel):
    """A TCP connection for control messages whose payloads go as tagged UCX messages."""

    backend = "ucx"

    def __init__(
        self, sock: socket.socket, peer: str, local_host: str | None, owner: UcxBackend
    ) -> None:
        super().__init__(sock, peer, local_host)
        self._owner = owner
        self._endpoint: Any = None
        """The sender's endpoint to the receiver's worker, once the check message arrived."""
        self._receive_base: int | None = None
        """The receiver's tag base for this connection, once granted."""
        self._send_base = 0
        self._count = 0
        self._waiting: set[asyncio.Future[Any]] = set()
        self._watched_descriptor = -1
        self._check_task: asyncio.Task[None] | None = None

    @property
    def payload_path(self) -> str:
        """Return ``UCX`` once payloads go to the receiver's worker, ``TCP`` otherwise."""
        return "UCX" if self._endpoint is not None or self._receive_base is not None else "TCP"

    # Handshake.

    def handshake_offer(self) -> dict[str, Any]:
        """Offer UCX payloads, unless UCX recently failed to reach this receiver."""
        if self._owner.payloads_over_tcp(self.peer):
            return {}
        return {PAYLOAD_FIELD: PAYLOAD_SCHEME}

    def handshake_grant(self, hello: dict[str, Any]) -> dict[str, Any]:
        """Grant UCX payloads when the sender offered them: this worker's address and a tag base.

        A task then waits for the sender's check message and confirms it
        with a HEARTBEAT that carries ``{"ucx_payloads": "ready"}``.
        """
        if hello.get(PAYLOAD_FIELD) != PAYLOAD_SCHEME:
            logger.info(
                "Sender %s does not offer UCX payloads; its frames come over TCP.", self.peer
            )
            return {}
        address = self._owner.address_text()
        if address is None:
            return {}
        base = self._owner.allocate_tag_base()
        self._receive_base = base
        # NOTE: device payloads on these endpoints were not run; the machine
        # this path was developed on has no GPU.
        self.supports_cuda = self._owner.supports_cuda
        self._check_task = self._loop.create_task(
            self._confirm_check(self._next_tag(base)), name=f"ucx-check-{self.peer}"
        )
        return {PAYLOAD_FIELD: {"address": address, "tag": base}}

    async def handshake_complete(self, welcome: dict[str, Any]) -> None:
        """Open the endpoint to the receiver's worker and check that UCX delivers to it.

        The check is one small UCX message, which the receiver confirms over
        TCP. UCX can pick a transport that never delivers: shared memory
        between network namespaces that share one IPC namespace, for one.
        Without the confirmation within ``CHECK_TIMEOUT`` seconds the
        connection fails, and the next ones to this receiver send payloads
        over TCP for ``TCP_FALLBACK_PERIOD`` seconds.
        """
        grant = welcome.get(PAYLOAD_FIELD)
        if grant is None:
            logger.info("Receiver %s does not grant UCX payloads; frames go over TCP.", self.peer)
            return
        address, base = _parse_grant(grant, self.peer)
        worker = self._owner.worker
        try:
            endpoint = worker.connect(address)
        except Exception as error:  # ucxx raises its own UCXError family
            raise ConnectionLostError(
                f"cannot create a UCX endpoint to the worker of {self.peer}: {error}", self.peer
            ) from error
        self._send_base = base
        tag = self._next_tag(base)
        try:
            sent = worker.send(endpoint, _check_message(tag), tag)
        except Exception as error:  # ucxx raises its own UCXError family
            worker.close_endpoint(endpoint)
            raise self._lost(error, "sending the UCX check message") from error
        # The receiver drops a sender that stays silent for its peer timeout,
        # which can be shorter than the check.
        confirmed = asyncio.Event()
        heartbeats = self._loop.create_task(
            self._send_heartbeats(float(welcome["heartbeat_interval"]), confirmed)
        )
        try:
            await asyncio.wait_for(self._read_confirmation(), CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            worker.close_endpoint(endpoint)
            self._owner.send_payloads_over_tcp(self.peer)
            raise ConnectionLostError(
                f"UCX did not deliver the check message to {self.peer} within "
                f"{CHECK_TIMEOUT:g} s; frames to it go over TCP for the next "
                f"{TCP_FALLBACK_PERIOD:g} s",
                self.peer,
            ) from None
        except BaseException:
            worker.close_endpoint(endpoint)
            raise
        finally:
            # Stopped between messages, so no HEARTBEAT is cut in half.
            confirmed.set()
            await heartbeats
            _discard(sent)
        self._endpoint = endpoint
        self.supports_cuda = self._owner.supports_cuda

    async def _send_heartbeats(self, interval: float, stop: asyncio.Event) -> None:
        """Send a HEARTBEAT every ``interval`` seconds until ``stop`` is set or the check times out."""
        for _ in range(int(CHECK_TIMEOUT / interval) + 1):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.send(Kind.HEARTBEAT)
            except ConnectionLostError:
                return

    async def _read_confirmation(self) -> None:
        """Read control messages until the receiver's HEARTBEAT confirms the check message."""
        # The caller's timeout bounds this loop; the count is a second bound.
        for _ in range(10_000):
            preamble = await self.receive_preamble()
            header = await self.receive_header(preamble, MAX_CONTROL_HEADER_SIZE)
            if preamble.kind is not Kind.HEARTBEAT or preamble.payload_length:
                raise ProtocolError(
                    f"expected the UCX check confirmation from {self.peer}, "
                    f"got {preamble.kind.name}"
                )
            if header and decode_json(header, "HEARTBEAT").get(PAYLOAD_FIELD) == CHECK_CONFIRMATION:
                return
        raise ProtocolError(f"{self.peer} sent no UCX check confirmation")

    async def _confirm_check(self, tag: int) -> None:
        """Receive the sender's check message and confirm it over TCP; abort when it is wrong."""
        message = np.empty(len(_check_message(tag)), dtype=np.uint8)
        try:
            await self._receive_tagged(message, tag, watch_end=False)
            if bytes(message) != bytes(_check_message(tag)):
                raise ProtocolError(f"invalid UCX check message from {self.peer}")
            await self.send(Kind.HEARTBEAT, encode_json({PAYLOAD_FIELD: CHECK_CONFIRMATION}))
        except ConnectionLostError:
            # The reader notices the lost connection and reports it.
            return
        except ProtocolError as error:
            logger.warning("Closing the connection of %s: %s", self.peer, error)
            self.abort()

    # Payloads.

    def _next_tag(self, base: int) -> int:
        tag = base | (self._count & _NUMBER_MASK)
        self._count += 1
        return tag

    async def send(
        self, kind: Kind, header: bytes = b"", payload: Any = None, nbytes: int = 0
    ) -> None:
        """Send one message; a payload goes to UCX and is waited for outside the send lock.

        The next message can then go out while UCX moves this payload, so
        concurrent senders keep the connection busy. Raises
        ConnectionLostError when the channel fails or is closed.
        """
        if self._endpoint is None or payload is None or not nbytes:
            await super().send(kind, header, payload, nbytes)
            return
        preamble = encode_preamble(kind, len(header), nbytes)
        async with self._send_lock:
            sent = await self._post(preamble, header, payload)
        await self._wait(sent, "sending")

    async def _send_parts(self, preamble: bytes, header: bytes, payload: Any) -> None:
        if self._endpoint is None or payload is None:
            await super()._send_parts(preamble, header, payload)
            return
        sent = await self._post(preamble, header, payload)
        await self._wait(sent, "sending")

    async def _post(self, preamble: bytes, header: bytes, payload: Any) -> asyncio.Future[None]:
        """Post the payload to UCX, then send preamble and header over TCP; return the send."""
        endpoint = self._endpoint
        if self._closed or endpoint is None:
            raise self._lost(None, "sending")
        try:
            sent = self._owner.worker.send(endpoint, payload, self._next_tag(self._send_base))
        except Exception as error:  # ucxx raises its own UCXError family
            self.abort()
            raise self._lost(error, "sending") from error
        # The header follows the payload's post, so the first UCX packet is
        # usually there by the time the receiver has read the header.
        try:
            await super()._send_parts(preamble, header, None)
        except BaseException:
            _discard(sent)
            raise
        return sent

    async def receive_payload(self, buffer: Any) -> None:
        """Receive a payload: the next UCX message of this connection, or from TCP without UCX."""
        base = self._receive_base
        if base is None:
            await super().receive_payload(buffer)
            return
        try:
            await self._receive_tagged(buffer, self._next_tag(base), watch_end=True)
        except ConnectionLostError:
            self._peer_closed.set()
            raise

    async def discard_payload(self, nbytes: int, chunk: int = 1 << 20) -> None:
        """Read and drop a payload of ``nbytes``; a UCX message arrives as one piece."""
        if self._receive_base is None:
            await super().discard_payload(nbytes, chunk)
            return
        await self.receive_payload(bytearray(nbytes))

    async def _receive_tagged(self, buffer: Any, tag: int, watch_end: bool) -> None:
        """Wait for the message with ``tag``, check its length, and receive it into ``buffer``.

        ``watch_end`` makes the end of the TCP connection abort the wait; only
        the channel's reader may use it, because it listens on the socket.
        """
        if self._closed:
            raise self._lost(None, "receiving")
        worker = self._owner.worker
        expected = worker.nbytes(buffer)
        arrival = worker.expect(tag)
        try:
            probe = await self._wait(arrival, "receiving", watch_end)
        finally:
            worker.forget(tag)
        if probe.length != expected:
            # The message stays unreceived; aborting the channel ends the connection.
            self.abort()
            raise ProtocolError(
                f"UCX message of {probe.length} bytes from {self.peer} where "
                f"{expected} bytes were announced"
            )
        try:
            received = worker.receive(probe, buffer)
        except Exception as error:  # ucxx raises its own UCXError family
            self.abort()
            raise self._lost(error, "receiving") from error
        await self._wait(received, "receiving", watch_end)

    async def _wait(self, future: asyncio.Future[Any], action: str, watch_end: bool = False) -> Any:
        """Wait for a UCX future; abort and raise ConnectionLostError if it fails or the channel ends."""
        # A transfer UCX finished within the call that started it needs no watch.
        watch_end = watch_end and not future.done()
        self._waiting.add(future)
        if watch_end:
            self._watch_end()
        try:
            return await future
        except (ConnectionLostError, asyncio.CancelledError):
            raise
        except Exception as error:  # ucxx raises its own UCXError family
            self.abort()
            raise self._lost(error, action) from error
        finally:
            self._waiting.discard(future)
            if watch_end:
                self._unwatch_end()

    def _watch_end(self) -> None:
        descriptor = self._socket.fileno()
        # Bytes of a later message already read mean the sender got past this payload.
        if self._watched_descriptor < 0 and descriptor >= 0 and not self.has_read_ahead:
            self._watched_descriptor = descriptor
            self._loop.add_reader(descriptor, self._check_end)

    def _unwatch_end(self) -> None:
        if self._watched_descriptor >= 0:
            self._loop.remove_reader(self._watched_descriptor)
            self._watched_descriptor = -1

    def _check_end(self) -> None:
        """Abort when the TCP connection ended; stop watching when a message waits instead."""
        try:
            data = self._socket.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            # The reader takes that message after the payload.
            self._unwatch_end()
        else:
            self.abort()

    def abort(self) -> None:
        """Break the connection; every UCX transfer being waited for fails with ConnectionLostError."""
        if self._closed:
            return
        self._unwatch_end()
        for future in list(self._waiting):
            if not future.done():
                future.set_exception(
                    ConnectionLostError(
                        f"connection to {self.peer} was closed during a UCX transfer", self.peer
                    )
                )
        if self._endpoint is not None:
            endpoint, self._endpoint = self._endpoint, None
            self._owner.worker.close_endpoint(endpoint)
        if self._receive_base is not None:
            self._owner.release_tag_base(self._receive_base)
        super().abort()


def _parse_grant(grant: Any, peer: str) -> tuple[bytes, int]:
    """Return the worker address and tag base of a WELCOME's grant; raise ProtocolError if invalid."""
    address_text = grant.get("address") if isinstance(grant, dict) else None
    base = grant.get("tag") if isinstance(grant, dict) else None
    if (
        not isinstance(address_text, str)
        or not isinstance(base, int)
        or isinstance(base, bool)
        or not 0 < base < 1 << 64
        or base & _NUMBER_MASK
    ):
        raise ProtocolError(f"invalid {PAYLOAD_FIELD} in WELCOME from {peer}: {grant!r}")
    try:
        return base64.b64decode(address_text, validate=True), base
    except (binascii.Error, ValueError) as error:
        raise ProtocolError(
            f"invalid UCX worker address in WELCOME from {peer}: {error}"
        ) from error


def _check_message(tag: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Return the check message of a connection: its tag, 8 bytes big-endian."""
    return np.frombuffer(tag.to_bytes(8, "big"), dtype=np.uint8).copy()


def _discard(future: asyncio.Future[Any]) -> None:
    """Stop caring about ``future``; the UCX worker keeps the request and its buffer."""
    if future.done():
        if not future.cancelled():
            future.exception()
    else:
        future.cancel()


class UcxBackend(TcpBackend):
    """Control messages over TCP, payloads over UCX: RDMA, shared memory or tcp, as UCX chooses."""

    name = "ucx"

    def __init__(self) -> None:
        super().__init__()
        self._worker: UcxWorker | None = None
        self._versions = ""
        self._transports: frozenset[str] = frozenset()
        self._tag_bases: set[int] = set()
        self._address_text: str | None = None
        self._tcp_until: dict[str, float] = {}
        self.supports_cuda = False

    async def start(self) -> None:
        """Import ucxx and create the UCX worker, progressed by the running loop."""
        if self._worker is not None:
            return
        ucxx = _import("ucxx")
        core = _import("ucxx._lib.libucxx")
        arrays = _import("ucxx._lib.arr")
        self._worker = UcxWorker(core, arrays.Array, asyncio.get_running_loop())
        self._versions = f"ucxx {ucxx.__version__}, UCX {ucxx.__ucx_version__}"
        self._transports = self._worker.transports()
        self.supports_cuda = bool(self._transports & CUDA_TRANSPORTS)
        text = base64.b64encode(self._worker.address).decode("ascii")
        if len(text) > _MAX_ADDRESS_TEXT:
            logger.warning(
                "The UCX worker address is %d bytes, too long for the handshake, so frames go "
                "over TCP; restrict UCX_NET_DEVICES or UCX_TLS to the devices frames should use.",
                len(self._worker.address),
            )
        else:
            self._address_text = text

    @property
    def worker(self) -> UcxWorker:
        """Return the UCX worker; raise BackendUnavailableError before ``start``."""
        if self._worker is None:
            raise BackendUnavailableError("the ucx backend was used before start() ran")
        return self._worker

    def address_text(self) -> str | None:
        """Return the worker address in base64, or None when it does not fit the handshake."""
        return self._address_text

    def allocate_tag_base(self) -> int:
        """Return a tag base that no other connection of this worker uses."""
        for _ in range(100):
            base = (secrets.randbits(_NUMBER_BITS) or 1) << _NUMBER_BITS
            if base not in self._tag_bases:
                self._tag_bases.add(base)
                return base
        raise RuntimeError("no free UCX tag base after 100 random draws")

    def release_tag_base(self, base: int) -> None:
        """Let another connection use ``base``."""
        self._tag_bases.discard(base)

    def send_payloads_over_tcp(self, peer: str) -> None:
        """Offer no UCX payloads to ``peer`` for ``TCP_FALLBACK_PERIOD`` seconds; warn at the start."""
        if not self.payloads_over_tcp(peer):
            logger.warning(
                "UCX did not deliver a check message to receiver %s, so frames to it go over "
                "TCP for the next %g s. Check that UCX_TLS and UCX_NET_DEVICES allow a transport "
                "that reaches it.",
                peer,
                TCP_FALLBACK_PERIOD,
            )
        self._tcp_until[peer] = time.monotonic() + TCP_FALLBACK_PERIOD

    def payloads_over_tcp(self, peer: str) -> bool:
        """Tell whether payloads to ``peer`` go over TCP because UCX recently failed to reach it."""
        until = self._tcp_until.get(peer)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._tcp_until[peer]
            return False
        return True

    def _make_channel(self, sock: socket.socket, peer: str, local_host: str | None) -> TcpChannel:
        return UcxChannel(sock, peer, local_host, self)

    def describe(self) -> str:
        """Return the backend, ucxx and UCX versions, and the active UCX transports."""
        return (
            f"backend ucx ({self._versions}; control messages over TCP, payloads over UCX); "
            f"UCX transports: {', '.join(sorted(self._transports)) or 'none'}"
        )

    def transports(self) -> frozenset[str]:
        """Return the transports UCX may use, as its context lists them."""
        return self._transports
