"""Backend selection and the start-up report.

``auto`` picks ``ucx`` when ``ucxx`` is installed and ``tcp`` otherwise.
Both backends connect over TCP; the ucx backend moves payloads over UCX
when both ends use it, so a tcp and a ucx peer still exchange frames, with
the payloads over TCP. Each backend is created once per process, on the
transport thread, and logs one line saying what it is and which transports
it may use. When the pod has an RDMA device but frames would not travel by
RDMA, it logs a warning that explains the fix.
"""

from __future__ import annotations

import logging

from numaflow_rdma.transport.backends import ucx
from numaflow_rdma.transport.backends.base import Backend, Channel, Listener
from numaflow_rdma.transport.backends.tcp import TcpBackend
from numaflow_rdma.transport.errors import TransportConfigError

logger = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "ucx", "tcp")

_backends: dict[str, Backend] = {}

_NO_VERBS_ADVICE = (
    "The libucx wheel on PyPI is built without verbs: install a UCX built with verbs (rdma-core) "
    "in the image and set RAPIDS_LIBUCX_PREFER_SYSTEM_LIBRARY=true so that ucxx loads it."
)


def resolve_backend_name(name: str | None) -> str:
    """Return ``ucx`` or ``tcp`` for a requested name; ``auto`` and None pick by what is installed."""
    requested = (name or "auto").strip().lower()
    if requested not in BACKEND_NAMES:
        raise TransportConfigError(
            f"invalid backend {name!r}: expected one of {', '.join(BACKEND_NAMES)}"
        )
    if requested == "auto":
        return "ucx" if ucx.is_installed() else "tcp"
    return requested


async def open_backend(name: str | None, rdma_device: str | None = None) -> Backend:
    """Return the process's backend of that name, started on the running loop.

    ``rdma_device`` describes the pod's RDMA device, or is None when it has
    none; it decides the start-up warnings.
    """
    resolved = resolve_backend_name(name)
    backend = _backends.get(resolved)
    if backend is not None:
        return backend

    if resolved == "ucx":
        applied = ucx.apply_defaults()
        if applied:
            logger.info(
                "Set UCX defaults: %s.",
                ", ".join(f"{key}={value}" for key, value in applied.items()),
            )
        ucx_backend = ucx.UcxBackend()
        await ucx_backend.start()
        backend = ucx_backend
    else:
        backend = TcpBackend()
    _backends[resolved] = backend
    logger.info("Transport started: %s.", backend.describe())
    _warn_without_rdma(backend, rdma_device)
    return backend


def _warn_without_rdma(backend: Backend, rdma_device: str | None) -> None:
    if rdma_device is None:
        return
    if backend.name == "tcp":
        logger.warning(
            "The pod has an RDMA device (%s) but the transport uses the tcp backend, so frames "
            "go over TCP. Install numaflow-rdma[ucx] and choose the ucx backend. %s",
            rdma_device,
            _NO_VERBS_ADVICE,
        )
        return
    if not ucx.rdma_transports(backend.transports()):
        logger.warning(
            "The pod has an RDMA device (%s) but UCX has no RDMA transport (active: %s), so "
            "frames go over TCP. %s",
            rdma_device,
            ", ".join(sorted(backend.transports())) or "none",
            _NO_VERBS_ADVICE,
        )


def forget_backends() -> None:
    """Drop the process's backends, after a fork: the child must start its own."""
    _backends.clear()


__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "Channel",
    "Listener",
    "forget_backends",
    "open_backend",
    "resolve_backend_name",
]
