"""Send frames to the receivers of a destination vertex: ``Sender`` and ``AsyncSender``.

In a UDF::

    sender = Sender.from_environment("infer")       # the downstream vertex's name
    result = sender.send(frame, metadata={"camera": "cam-7"}, key="cam-7")
    if result.dropped:
        ...                                          # result.reason is the DropReason

Outside Kubernetes, name the receivers explicitly::

    sender = Sender(["198.18.0.2:7470", "198.18.0.3:7470"], namespace="ns", pipeline="video")

``send`` returns once the frame has left this process or was dropped, so the
caller may reuse the payload's memory as soon as it returns. ``submit``
returns at once with a future instead, so several frames can be on their
way while the caller prepares the next one. The payload must then stay
unchanged until the future is done. Frames are delivered at most once; see
``SendResult`` and ``DropReason``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.transport import environment
from numaflow_rdma.transport.backends import open_backend
from numaflow_rdma.transport.discovery import (
    Discovery,
    DnsDiscovery,
    StaticDiscovery,
    parse_peer,
)
from numaflow_rdma.transport.errors import TransportClosedError, TransportConfigError
from numaflow_rdma.transport.frames import SendResult
from numaflow_rdma.transport.handshake import Identity
from numaflow_rdma.transport.metrics import TransportMetrics
from numaflow_rdma.transport.options import SenderOptions
from numaflow_rdma.transport.outbound import OutgoingFrame, SenderCore
from numaflow_rdma.transport.payload import check_metadata, prepare_payload
from numaflow_rdma.transport.runtime import get_runtime


def _is_ip_peer(text: str) -> bool:
    host = text.strip()
    if host.startswith("["):
        return True
    if host.count(":") == 1:
        host = host.split(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def make_discovery(
    destination: str | Sequence[str], port: int, nameserver: str | None, timeout: float
) -> Discovery:
    """Return static discovery for IP addresses and DNS discovery for a name."""
    if isinstance(destination, str):
        items = [item for item in destination.split(",") if item.strip()]
        if not items:
            raise TransportConfigError(
                "the destination is empty: give a DNS name or peer addresses"
            )
        if len(items) == 1 and not _is_ip_peer(items[0]):
            server = parse_peer(nameserver, 53) if nameserver else None
            address = (server.host, server.port) if server else None
            return DnsDiscovery(items[0].strip(), port, address, timeout)
        destination = items
    peers = frozenset(parse_peer(item, port) for item in destination)
    if not peers:
        raise TransportConfigError("the list of peers is empty")
    return StaticDiscovery(peers)


def _options(options: SenderOptions | None, overrides: dict[str, Any]) -> SenderOptions:
    try:
        return replace(options or SenderOptions(), **overrides)
    except TypeError as error:
        raise TransportConfigError(f"invalid sender option: {error}") from error


def _secret(secret: bytes | str | None) -> bytes | None:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


class AsyncSender:
    """Send frames from asyncio code; every method is a coroutine except ``peers``.

    Use it as ``async with AsyncSender(...) as sender:`` or call ``start()``.
    The network I/O runs on the transport thread, so a UDF that blocks its
    own event loop does not stall heartbeats.
    """

    def __init__(
        self,
        destination: str | Sequence[str],
        *,
        port: int = names.DEFAULT_TRANSPORT_PORT,
        nameserver: str | None = None,
        namespace: str = "",
        pipeline: str = "",
        name: str | None = None,
        secret: bytes | str | None = None,
        backend: str | None = None,
        rdma_device: str | None = None,
        options: SenderOptions | None = None,
        **overrides: Any,
    ) -> None:
        """Describe a sender; nothing connects before ``start``.

        ``destination`` is a DNS name (looked up through the system resolver,
        or ``nameserver`` given as ``ip[:port]``), or IP addresses as
        ``ip[:port]``, in a list or comma-separated. ``port`` is the default
        for addresses without one. ``namespace`` and ``pipeline`` must match
        the receivers'. ``secret`` is the pipeline's shared secret, if any.
        ``backend`` is ``auto``, ``ucx`` or ``tcp``. ``rdma_device`` describes
        the pod's RDMA device for start-up warnings. Keyword ``overrides``
        replace fields of ``options`` (see ``SenderOptions``).
        """
        self.options = _options(options, overrides)
        self._discovery = make_discovery(
            destination, port, nameserver, self.options.connect_timeout
        )
        self._identity = Identity(namespace, pipeline, name or "sender")
        self._secret = _secret(secret)
        self._backend_name = backend
        self._rdma_device = rdma_device
        self.metrics = TransportMetrics("sender", self._discovery.description)
        self._core: SenderCore | None = None
        self._runtime = get_runtime()

    @classmethod
    def from_environment(
        cls, vertex: str | None = None, *, environ: dict[str, str] | None = None, **kwargs: Any
    ) -> AsyncSender:
        """Build a sender to downstream ``vertex`` from the variables the webhook injected.

        ``vertex`` is a key of ``$NUMAFLOW_RDMA_DESTINATIONS`` (or a full DNS
        name); None picks the only destination. Keyword arguments override
        the values read from the environment.
        """
        settings = environment.read_environment(environ)
        identity = settings.identity(kwargs.pop("name", None))
        arguments: dict[str, Any] = {
            "port": settings.port,
            "namespace": identity.namespace,
            "pipeline": identity.pipeline,
            "name": identity.name,
            "secret": settings.secret,
            "backend": settings.backend,
            "rdma_device": _pod_rdma_device(settings),
        }
        arguments.update(kwargs)
        return cls(settings.destination(vertex), **arguments)

    async def start(self) -> AsyncSender:
        """Start the backend, look up the destination, and wait briefly for a first receiver."""
        if self._core is None:
            self._core = await self._runtime.call_async(self._create_core())
            await self._runtime.call_async(self._core.start(self.options.connect_timeout))
        return self

    async def _create_core(self) -> SenderCore:
        backend = await open_backend(self._backend_name, self._rdma_device)
        return SenderCore(
            backend, self._discovery, self._identity, self._secret, self.options, self.metrics
        )

    def _prepare(
        self, data: object, metadata: dict[str, Any] | None, key: str | None
    ) -> OutgoingFrame:
        if key is not None and not isinstance(key, str):
            raise TransportConfigError(f"the key must be a string, got {type(key).__name__}")
        return OutgoingFrame(prepare_payload(data), check_metadata(metadata), key)

    def _require_core(self) -> SenderCore:
        if self._core is None:
            raise TransportClosedError(
                "the sender is not started: use 'async with' or await start()"
            )
        return self._core

    async def send(
        self,
        data: object,
        *,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send one frame; return when it has left this process or was dropped.

        ``data`` is bytes-like, a NumPy array or a CUDA array. ``metadata``
        is a JSON-serialisable dict delivered with the frame. ``key`` (a
        camera or stream id) steers ``key_affinity``. ``timeout`` overrides
        ``send_timeout`` for this frame. Raises PayloadError for a payload
        that cannot be sent, FrameTooLargeError when the chosen receiver
        accepts no frame this large.
        """
        core = self._require_core()
        frame = self._prepare(data, metadata, key)
        if self._runtime.in_loop_thread():
            return await core.send(frame, timeout)
        return await asyncio.wrap_future(core.submit_threadsafe(frame, timeout))

    async def wait_for_peers(self, count: int = 1, timeout: float = 10.0) -> int:
        """Wait until ``count`` receivers are connected or ``timeout`` s pass; return how many are."""
        core = self._require_core()
        return await self._runtime.call_async(core.wait_for_peers(count, timeout))

    def peers(self) -> dict[str, str]:
        """Return the known receivers and the state of each connection."""
        return dict(self._core.peers()) if self._core else {}

    async def close(self, timeout: float | None = None) -> None:
        """Let waiting frames go out for up to ``timeout`` s, then leave every receiver."""
        if self._core is not None:
            await self._runtime.call_async(self._core.close(self._close_timeout(timeout)))

    def _close_timeout(self, timeout: float | None) -> float:
        return self.options.close_timeout if timeout is None else timeout

    async def __aenter__(self) -> AsyncSender:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Sender:
    """Send frames from synchronous code, for example a pynumaflow ``MapServer`` handler.

    It is started on construction and safe to use from several threads.
    Arguments are those of ``AsyncSender``.
    """

    def __init__(self, destination: str | Sequence[str], **kwargs: Any) -> None:
        """Start a sender; see ``AsyncSender`` for the arguments."""
        self._start(AsyncSender(destination, **kwargs))

    def _start(self, template: AsyncSender) -> None:
        self._async = template
        self._runtime = get_runtime()
        self.options = template.options
        self.metrics = template.metrics
        self._core = self._runtime.call(template._create_core())
        template._core = self._core
        self._runtime.call(self._core.start(self.options.connect_timeout))

    @classmethod
    def from_environment(
        cls, vertex: str | None = None, *, environ: dict[str, str] | None = None, **kwargs: Any
    ) -> Sender:
        """Start a sender to downstream ``vertex`` from the injected environment.

        See ``AsyncSender.from_environment``.
        """
        sender = cls.__new__(cls)
        sender._start(AsyncSender.from_environment(vertex, environ=environ, **kwargs))
        return sender

    def send(
        self,
        data: object,
        *,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send one frame and block until it has left this process or was dropped.

        See ``AsyncSender.send``.
        """
        return self.submit(data, metadata=metadata, key=key, timeout=timeout).result()

    def submit(
        self,
        data: object,
        *,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
        timeout: float | None = None,
    ) -> concurrent.futures.Future[SendResult]:
        """Start sending one frame and return at once with a future of its ``SendResult``.

        Several frames can be on their way at the same time this way, up to
        the receivers' credits, which keeps the link busy while this thread
        prepares the next frame. The payload's memory is read until the
        future is done: do not change or free it before then. Raises
        PayloadError and TransportConfigError at once; FrameTooLargeError
        and TransportClosedError come from the future. See ``AsyncSender.send``.
        """
        if self._runtime.in_loop_thread():
            raise RuntimeError(
                "Sender.send or Sender.submit was called on the transport thread; "
                "use AsyncSender inside transport callbacks"
            )
        frame = self._async._prepare(data, metadata, key)
        return self._core.submit_threadsafe(frame, timeout)

    def wait_for_peers(self, count: int = 1, timeout: float = 10.0) -> int:
        """Block until ``count`` receivers are connected or ``timeout`` s pass; return how many are."""
        return self._runtime.call(self._core.wait_for_peers(count, timeout))

    def peers(self) -> dict[str, str]:
        """Return the known receivers and the state of each connection."""
        return self._async.peers()

    def close(self, timeout: float | None = None) -> None:
        """Let waiting frames go out for up to ``timeout`` s, then leave every receiver."""
        self._runtime.call(self._core.close(self._async._close_timeout(timeout)))

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pod_rdma_device(settings: environment.PodEnvironment) -> str | None:
    """Describe the pod's RDMA device for the start-up warning; a sender needs no address."""
    try:
        attachment = settings.rdma_attachment() if settings.annotations_file else None
    except TransportConfigError:
        attachment = None
    return environment.rdma_device(attachment)


__all__ = ["AsyncSender", "Sender", "make_discovery"]
