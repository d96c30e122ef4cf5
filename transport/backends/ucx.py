"""The UCX backend, through the ``ucxx`` package (the ``ucx`` extra).

ucxx is imported on first use, so the base install never needs it. Every
message part is one tagged send on the endpoint's default tag; UCX matches
messages of one endpoint and tag in order, so preamble, header and payload
arrive as sent. Payloads above ``UCX_RNDV_THRESH`` (ucxx sets 8 KiB) use
UCX's rendezvous protocol: the data stays in the sender's buffer until the
receiver has posted its own buffer, and is then moved into it directly, by
RDMA where UCX has an RDMA transport.

Defaults set here, each only when the variable is not set already, because
they were measured with ucxx 0.52 and UCX 1.21 on two-vCPU VMs (listener
mode over tcp on loopback):

- ``UCXPY_PROGRESS_MODE=blocking``: ucxx's default ``thread`` progress cost
  2-4 times the throughput there;
- ``UCX_PROTO_ENABLE=n`` when the pod has no RDMA device: UCX 1.21's newer
  protocol layer sends large tagged messages over tcp at about 1.2-1.5 GB/s,
  the older one at 4-5 GB/s, close to plain TCP sockets;
- ``UCX_WARN_UNUSED_ENV_VARS=n``: ucxx sets ``UCX_MEMTYPE_CACHE``, which UCX
  1.21 no longer knows, and UCX warns about it on every start.

UCX writes its own log lines to standard output, not standard error.

The ucxx 0.52 listener binds every address of the pod and cannot be told
otherwise, and endpoints do not report their local address. The receiver
therefore checks, in the handshake, the address the sender says it dialed,
and a shared secret is what keeps strangers out.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any

from numaflow_rdma.transport.backends.base import Backend, Channel, ChannelHandler, Listener
from numaflow_rdma.transport.backends.tcp import format_address
from numaflow_rdma.transport.errors import BackendUnavailableError, PeerConnectionError

logger = logging.getLogger(__name__)

PROGRESS_MODE_VARIABLE = "UCXPY_PROGRESS_MODE"

# UCX transports that move data by RDMA (InfiniBand or RoCE through verbs).
RDMA_TRANSPORT_PREFIXES = ("rc", "ud", "dc")
CUDA_TRANSPORTS = frozenset({"cuda_copy", "cuda_ipc", "gdr_copy"})

# How long ``Endpoint.abort`` may wait for UCX to close the endpoint, in ns.
_ABORT_PERIOD_NS = 100_000_000


def is_installed() -> bool:
    """Tell whether ``ucxx`` can be imported, without importing it (which takes about 0.5 s)."""
    return importlib.util.find_spec("ucxx") is not None


def apply_defaults(
    rdma_device: bool, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Set the UCX defaults described in the module docstring where unset; return those set."""
    environ = os.environ if environ is None else environ
    wanted = {PROGRESS_MODE_VARIABLE: "blocking", "UCX_WARN_UNUSED_ENV_VARS": "n"}
    if not rdma_device:
        wanted["UCX_PROTO_ENABLE"] = "n"
    applied: dict[str, str] = {}
    for name, value in wanted.items():
        if name not in environ:
            environ[name] = value
            applied[name] = value
    return applied


def rdma_transports(transports: frozenset[str]) -> frozenset[str]:
    """Return the RDMA transports among UCX transport names such as ``rc_mlx5``."""
    return frozenset(name for name in transports if name.startswith(RDMA_TRANSPORT_PREFIXES))


def _import_ucxx() -> ModuleType:
    try:
        return importlib.import_module("ucxx")
    except ImportError as error:
        raise BackendUnavailableError(
            f"the ucx backend needs the ucxx package, which failed to import ({error}); "
            "install numaflow-rdma[ucx] or choose the tcp backend"
        ) from error


class UcxChannel(Channel):
    """One ucxx endpoint."""

    backend = "ucx"

    def __init__(self, endpoint: Any, peer: str, supports_cuda: bool) -> None:
        super().__init__(peer, local_host=None)
        self._endpoint = endpoint
        self.supports_cuda = supports_cuda

    async def _send_parts(self, preamble: bytes, header: bytes, payload: Any) -> None:
        # TODO: a frame is three tagged messages, each with its own ucxx request and
        # await. With bench_peer between two namespaces on a 2-vCPU VM (UCX 1.21 over
        # tcp), 6.2 MB frames moved at 0.45 GB/s against 1.17 GB/s for the TCP
        # backend; sending preamble and header as one message is the first thing to try.
        for part in (preamble, header, payload):
            if part is None or (isinstance(part, bytes) and not part):
                continue
            if self._closed:
                raise self._lost(None, "sending")
            try:
                await self._endpoint.send(part)
            except Exception as error:
                self.abort()
                raise self._lost(error, "sending") from error
        if self._closed:
            # ucxx returns normally from a send that UCX cancelled while the
            # endpoint was being closed, so a closed channel means the message is lost.
            raise self._lost(None, "sending")

    async def _receive_into(self, buffer: Any) -> None:
        # NOTE: ucxx 0.52 does not report the received length. A longer message
        # fails with a truncation error, but a shorter one leaves the rest of the
        # buffer as it was, so a sender that passed the handshake is trusted to
        # send the payload size it announced.
        if self._closed:
            raise self._lost(None, "receiving")
        try:
            await self._endpoint.recv(buffer)
        except Exception as error:
            self.abort()
            raise self._lost(error, "receiving") from error
        if self._closed:
            raise self._lost(None, "receiving")

    def abort(self) -> None:
        """Close the endpoint at once; UCX cancels its pending requests."""
        if self._closed:
            return
        self._closed = True
        try:
            self._endpoint.abort(period=_ABORT_PERIOD_NS, max_attempts=1)
        except Exception as error:
            logger.debug("Aborting the UCX endpoint of %s failed: %s", self.peer, error)


class UcxListener(Listener):
    """A ucxx listener, which binds every address of the pod."""

    def __init__(self, listener: Any, host: str) -> None:
        self._listener = listener
        self.host = host
        self.port = int(listener.port)

    async def close(self) -> None:
        """Stop accepting connections."""
        self._listener.close()


class UcxBackend(Backend):
    """Messages over UCX: RDMA, shared memory or TCP, as UCX chooses."""

    name = "ucx"

    def __init__(self) -> None:
        self._ucxx: ModuleType | None = None
        self._transports: frozenset[str] = frozenset()
        self.supports_cuda = False

    async def start(self) -> None:
        """Import ucxx and create its context on the running loop, which then progresses UCX."""
        if self._ucxx is not None:
            return
        ucxx = _import_ucxx()
        from ucxx import core  # ucxx keeps one context per process in core._ctx.

        if core._ctx is None:
            ucxx.init()
        self._transports = frozenset(ucxx.get_active_transports())
        self.supports_cuda = bool(self._transports & CUDA_TRANSPORTS)
        self._ucxx = ucxx

    def _module(self) -> ModuleType:
        if self._ucxx is None:
            raise BackendUnavailableError("the ucx backend was used before start() ran")
        return self._ucxx

    async def listen(self, host: str, port: int, handler: ChannelHandler) -> Listener:
        """Start a ucxx listener on ``port``; ucxx binds it to every address, whatever ``host`` is."""
        ucxx = self._module()
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def accept(endpoint: Any) -> None:
            channel = UcxChannel(endpoint, f"ucx-endpoint-{endpoint.uid:#x}", self.supports_cuda)
            task = loop.create_task(handler(channel), name=f"ucx-connection-{channel.peer}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            listener = ucxx.create_listener(accept, port=port, endpoint_error_handling=True)
        except Exception as error:
            raise PeerConnectionError(
                f"cannot listen on port {port} over UCX: {error}; check that the port is free",
                format_address(host, port),
            ) from error
        return UcxListener(listener, host)

    async def connect(self, host: str, port: int, timeout: float) -> Channel:
        """Create a ucxx endpoint to ``host:port``."""
        ucxx = self._module()
        peer = format_address(host, port)
        try:
            endpoint = await asyncio.wait_for(
                ucxx.create_endpoint(
                    host, port, endpoint_error_handling=True, connect_timeout=timeout
                ),
                timeout,
            )
        except Exception as error:
            what = (
                f"timed out after {timeout:g} s"
                if isinstance(error, asyncio.TimeoutError)
                else str(error)
            )
            raise PeerConnectionError(f"cannot connect to {peer} over UCX: {what}", peer) from error
        return UcxChannel(endpoint, peer, self.supports_cuda)

    def describe(self) -> str:
        """Return the backend, ucxx and UCX versions, progress mode and active UCX transports."""
        ucxx = self._module()
        return (
            f"backend ucx (ucxx {ucxx.__version__}, UCX {ucxx.__ucx_version__}, progress mode "
            f"{os.environ.get(PROGRESS_MODE_VARIABLE, 'thread')}); "
            f"UCX transports: {', '.join(sorted(self._transports)) or 'none'}"
        )

    def transports(self) -> frozenset[str]:
        """Return the transports UCX may use, as ``ucxx.get_active_transports`` lists them."""
        return self._transports
