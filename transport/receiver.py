"""Receive frames from upstream senders: ``Receiver`` and ``AsyncReceiver``.

In a UDF::

    receiver = Receiver.from_environment()     # listens on the pod's RDMA address
    for frame in receiver:                      # or receiver.run(handler)
        process(frame.data, frame.metadata)     # valid until the next frame

Outside Kubernetes, give the address::

    receiver = Receiver("198.18.0.2", 7470, namespace="ns", pipeline="video")

Buffer lifetime: a frame's ``data`` lives in a receive buffer that is reused,
and is valid until the frame is released. Iterators release a frame when the
next one is requested, handlers when they return. ``frame.keep()`` exempts a
frame; ``frame.release()`` ends it. See ``Frame``.

``close(timeout)`` stops accepting, sends GOODBYE to the senders, and waits up to
``timeout`` seconds for the frames they are sending; frames received before
that are still delivered by iterators and handlers, which end afterwards.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

from numaflow_rdma import names
from numaflow_rdma.transport import environment
from numaflow_rdma.transport.backends import open_backend
from numaflow_rdma.transport.errors import TransportClosedError, TransportConfigError
from numaflow_rdma.transport.frames import Frame
from numaflow_rdma.transport.handshake import Identity
from numaflow_rdma.transport.inbound import ReceiverCore
from numaflow_rdma.transport.metrics import TransportMetrics
from numaflow_rdma.transport.options import ReceiverOptions
from numaflow_rdma.transport.runtime import get_runtime

logger = logging.getLogger(__name__)

FrameHandler = Callable[[Frame], Any]


def _options(options: ReceiverOptions | None, overrides: dict[str, Any]) -> ReceiverOptions:
    try:
        return replace(options or ReceiverOptions(), **overrides)
    except TypeError as error:
        raise TransportConfigError(f"invalid receiver option: {error}") from error


class AsyncReceiver:
    """Receive frames in asyncio code.

    Use it as ``async with AsyncReceiver(...) as receiver:`` or call
    ``start()``; then ``async for frame in receiver``, ``await
    receiver.receive()``, or ``await receiver.serve(handler)``.
    """

    def __init__(
        self,
        host: str,
        port: int = names.DEFAULT_TRANSPORT_PORT,
        *,
        namespace: str = "",
        pipeline: str = "",
        name: str | None = None,
        secret: bytes | str | None = None,
        backend: str | None = None,
        rdma_device: str | None = None,
        check_address: bool = True,
        options: ReceiverOptions | None = None,
        **overrides: Any,
    ) -> None:
        """Describe a receiver; nothing listens before ``start``.

        ``host`` is the address to listen on, the pod's RDMA address in
        Kubernetes; ``port`` 0 picks a free port. ``namespace`` and
        ``pipeline`` must match the senders'. With ``check_address``, a
        sender whose HELLO names another address than ``host`` is rejected. Keyword ``overrides`` replace fields of ``options`` (see
        ``ReceiverOptions``).
        """
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise TransportConfigError(
                f"invalid receiver host {host!r}: expected the IP address to listen on, "
                "such as the pod's RDMA address or 127.0.0.1"
            ) from None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise TransportConfigError(
                f"invalid receiver port {port!r}: expected a TCP port from 1 to 65535, "
                "or 0 for a free one"
            )
        self.options = _options(options, overrides)
        self.host = host
        self._port = port
        self._identity = Identity(namespace, pipeline, name or "receiver")
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._backend_name = backend
        self._rdma_device = rdma_device
        self._check_address = check_address
        self.metrics = TransportMetrics("receiver", name or host)
        self._core: ReceiverCore | None = None
        self._runtime = get_runtime()

    @classmethod
    def from_environment(
        cls, *, environ: dict[str, str] | None = None, **kwargs: Any
    ) -> AsyncReceiver:
        """Build a receiver on the pod's RDMA address from the injected environment.

        The address comes from the Multus network-status annotation in the
        downward-API annotations file, entry of ``$NUMAFLOW_RDMA_NETWORK`` or
        of interface ``$NUMAFLOW_RDMA_INTERFACE``. Keyword arguments override
        the values read from the environment (``host=`` too).
        """
        settings = environment.read_environment(environ)
        identity = settings.identity(kwargs.pop("name", None))
        host = kwargs.pop("host", None)
        attachment = None
        if host is None:
            attachment = settings.rdma_attachment()
            host = attachment.address
        arguments: dict[str, Any] = {
            "port": settings.port,
            "namespace": identity.namespace,
            "pipeline": identity.pipeline,
            "name": identity.name,
            "secret": settings.secret,
            "backend": settings.backend,
            "rdma_device": environment.rdma_device(attachment),
        }
        arguments.update(kwargs)
        return cls(host, **arguments)

    @property
    def port(self) -> int:
        """Return the port listened on (the chosen one when 0 was asked for)."""
        return self._core.port if self._core else self._port

    @property
    def connection_count(self) -> int:
        """Return how many senders are connected."""
        return self._core.connection_count if self._core else 0

    async def _create_core(self) -> ReceiverCore:
        backend = await open_backend(self._backend_name, self._rdma_device)
        core = ReceiverCore(
            backend,
            self.host,
            self._port,
            self._identity,
            self._secret,
            self.options,
            self.metrics,
            self._check_address,
        )
        await core.start()
        return core

    async def start(self) -> AsyncReceiver:
        """Start the backend and listen."""
        if self._core is None:
            self._core = await self._runtime.call_async(self._create_core())
        return self

    def _require_core(self) -> ReceiverCore:
        if self._core is None:
            raise TransportClosedError(
                "the receiver is not started: use 'async with' or await start()"
            )
        return self._core

    async def receive(self, timeout: float | None = None) -> Frame | None:
        """Return the next frame, or None after ``timeout`` seconds.

        Raises TransportClosedError once the receiver is closed and every
        received frame was delivered. The caller releases the frame.
        """
        core = self._require_core()
        return await core.next_frame_async(timeout)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        current: Frame | None = None
        try:
            while True:
                # The previous frame goes back first: its buffer is the sender's next credit.
                if current is not None and not current.kept:
                    current.release()
                current = None
                try:
                    frame = await self.receive()
                except TransportClosedError:
                    return
                if frame is None:
                    continue
                current = frame
                yield frame
        finally:
            if current is not None and not current.kept:
                current.release()

    async def serve(self, handler: Callable[[Frame], Awaitable[Any] | Any]) -> None:
        """Run ``handler`` for every frame until the receiver is closed; release after each.

        ``handler`` may be a function or a coroutine function. An exception
        it raises is logged and counted (``handler_errors``), and the next
        frame is handled.
        """
        async for frame in self:
            try:
                result = handler(frame)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.metrics.handler_errors += 1
                logger.exception(
                    "The frame handler failed on frame %d from %s.", frame.sequence, frame.sender
                )

    async def close(self, timeout: float | None = None) -> None:
        """Stop accepting, ask senders to stop, and wait up to ``timeout`` s for their frames."""
        if self._core is not None:
            seconds = self.options.close_timeout if timeout is None else timeout
            await self._runtime.call_async(self._core.close(seconds))

    async def __aenter__(self) -> AsyncReceiver:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Receiver:
    """Receive frames in synchronous code; started on construction.

    Arguments are those of ``AsyncReceiver``. Iterate over it, call
    ``receive()``, ``run(handler)``, or ``serve_in_background(handler)``.
    """

    def __init__(self, host: str, port: int = names.DEFAULT_TRANSPORT_PORT, **kwargs: Any) -> None:
        """Start listening; see ``AsyncReceiver`` for the arguments."""
        self._start(AsyncReceiver(host, port, **kwargs))

    def _start(self, template: AsyncReceiver) -> None:
        self._async = template
        self._runtime = get_runtime()
        self.options = template.options
        self.metrics = template.metrics
        self.host = template.host
        self._core = self._runtime.call(template._create_core())
        template._core = self._core

    @classmethod
    def from_environment(cls, *, environ: dict[str, str] | None = None, **kwargs: Any) -> Receiver:
        """Start a receiver on the pod's RDMA address; see ``AsyncReceiver.from_environment``."""
        receiver = cls.__new__(cls)
        receiver._start(AsyncReceiver.from_environment(environ=environ, **kwargs))
        return receiver

    @property
    def port(self) -> int:
        """Return the port listened on."""
        return self._core.port

    @property
    def connection_count(self) -> int:
        """Return how many senders are connected."""
        return self._core.connection_count

    def receive(self, timeout: float | None = None) -> Frame | None:
        """Block for the next frame, up to ``timeout`` seconds; see ``AsyncReceiver.receive``."""
        if self._runtime.in_loop_thread():
            raise RuntimeError(
                "Receiver.receive was called on the transport thread; "
                "use AsyncReceiver inside transport callbacks"
            )
        return self._core.next_frame(timeout)

    def __iter__(self) -> Iterator[Frame]:
        current: Frame | None = None
        try:
            while True:
                # The previous frame goes back first: its buffer is the sender's next credit.
                if current is not None and not current.kept:
                    current.release()
                current = None
                try:
                    frame = self.receive()
                except TransportClosedError:
                    return
                if frame is None:
                    continue
                current = frame
                yield frame
        finally:
            if current is not None and not current.kept:
                current.release()

    def run(self, handler: FrameHandler) -> None:
        """Call ``handler`` for every frame until the receiver is closed; release after each.

        An exception from ``handler`` is logged and counted (``handler_errors``).
        """
        for frame in self:
            try:
                handler(frame)
            except Exception:
                self.metrics.handler_errors += 1
                logger.exception(
                    "The frame handler failed on frame %d from %s.", frame.sequence, frame.sender
                )

    def serve_in_background(self, handler: FrameHandler) -> threading.Thread:
        """Run ``handler`` for every frame on a daemon thread; return the thread.

        This suits a UDF whose main thread runs the pynumaflow server.
        """
        thread = threading.Thread(
            target=self.run, args=(handler,), name="numaflow-rdma-receiver", daemon=True
        )
        thread.start()
        return thread

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, ask senders to stop, and wait up to ``timeout`` s for their frames."""
        seconds = self.options.close_timeout if timeout is None else timeout
        self._runtime.call(self._core.close(seconds), seconds + 5.0)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["AsyncReceiver", "Receiver"]
