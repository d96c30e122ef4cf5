"""Payload types accepted for sending, and the form in which the UDF receives them.

Accepted payloads, checked in this order:

- ``numpy.ndarray`` of any non-object dtype: dtype (structured ones too) and
  shape arrive intact. A non-contiguous array is copied once into a
  contiguous one, the only copy the transport itself makes on the send path;
- objects with ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors,
  Numba): arrive as device arrays when the receiver can allocate device
  memory, as NumPy arrays otherwise;
- DLPack producers (``__dlpack__``): CPU tensors travel as NumPy arrays,
  CUDA tensors as device arrays;
- ``bytes``, ``bytearray``, ``memoryview`` and any other object with the
  buffer protocol: arrive as a ``memoryview`` of unsigned bytes.

The metadata of a frame is a dict that ``json.dumps`` accepts.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from numaflow_rdma.transport import cuda
from numaflow_rdma.transport.errors import PayloadError
from numaflow_rdma.transport.protocol import Memory, PayloadKind, descr_dtype, dtype_descr

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingPayload:
    """A payload ready for a backend: one contiguous buffer and how to rebuild it."""

    buffer: Any
    """A 1-D NumPy ``uint8`` array for host memory, or an object with
    ``__cuda_array_interface__`` for device memory."""
    nbytes: int
    kind: PayloadKind
    memory: Memory
    dtype: str | list[Any] | None
    shape: tuple[int, ...] | None
    owner: Any
    """The caller's object, kept alive until the frame is sent."""
    stream: int | None = None
    """The CUDA stream to synchronize before the buffer is read, if any."""
    copied: bool = False
    """True when a non-contiguous array was copied into a contiguous one."""


def prepare_payload(data: object) -> OutgoingPayload:
    """Describe ``data`` for sending without copying it, unless it is a non-contiguous array."""
    if isinstance(data, np.ndarray):
        return _host_array(data)
    if cuda.is_cuda_array(data):
        return _cuda_array(data, owner=data)
    device = cuda.dlpack_device(data)
    if device is not None:
        return _dlpack(data, device[0])
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise PayloadError(
            f"cannot send a {type(data).__name__}: expected bytes, bytearray, memoryview, "
            "a NumPy array, or a CUDA array (__cuda_array_interface__ or DLPack)"
        ) from None
    return _host_bytes(view, owner=data)


def _host_bytes(view: memoryview, owner: object) -> OutgoingPayload:
    if not view.c_contiguous:
        raise PayloadError(
            "cannot send a non-contiguous memoryview without copying it; pass bytes(view) "
            "or a contiguous NumPy array"
        )
    buffer = np.frombuffer(view, dtype=np.uint8) if view.nbytes else np.empty(0, np.uint8)
    return OutgoingPayload(
        buffer=buffer,
        nbytes=view.nbytes,
        kind=PayloadKind.BYTES,
        memory=Memory.HOST,
        dtype=None,
        shape=None,
        owner=owner,
    )


def _host_array(array: np.ndarray[Any, Any]) -> OutgoingPayload:
    descr = dtype_descr(array.dtype)
    copied = not array.flags.c_contiguous
    if copied:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Copying a non-contiguous array of shape %s before sending.", array.shape)
        array = np.ascontiguousarray(array)
    flat = array.reshape(-1).view(np.uint8) if array.size else np.empty(0, np.uint8)
    return OutgoingPayload(
        buffer=flat,
        nbytes=array.nbytes,
        kind=PayloadKind.ARRAY,
        memory=Memory.HOST,
        dtype=descr,
        shape=tuple(int(size) for size in array.shape),
        owner=array,
        copied=copied,
    )


def _cuda_array(data: object, owner: object) -> OutgoingPayload:
    interface = cuda.cuda_interface(data)
    dtype = np.dtype(interface["typestr"])
    shape = tuple(int(size) for size in interface["shape"])
    nbytes = dtype.itemsize * math.prod(shape)
    # CAI v3: "stream" names the stream the producer last used; None or absent means none to wait for.
    stream = interface.get("stream")
    return OutgoingPayload(
        buffer=data,
        nbytes=nbytes,
        kind=PayloadKind.ARRAY,
        memory=Memory.CUDA,
        dtype=dtype_descr(dtype),
        shape=shape,
        owner=owner,
        stream=stream,
    )


def _dlpack(data: Any, device_type: int) -> OutgoingPayload:
    if device_type == 1:
        try:
            return _host_array(np.from_dlpack(data))
        except (TypeError, ValueError, BufferError, RuntimeError) as error:
            raise PayloadError(f"cannot read the DLPack CPU tensor: {error}") from error
    if not cuda.is_dlpack_cuda_device(device_type):
        raise PayloadError(
            f"cannot send a DLPack tensor on device type {device_type}: only CPU and CUDA "
            "memory are supported"
        )
    # With stream=None the producer orders its work before the legacy default
    # stream, which is then synchronized before UCX reads the memory.
    view = cuda.dlpack_view(data.__dlpack__(stream=None))
    view.stream = cuda.LEGACY_DEFAULT_STREAM
    payload = _cuda_array(view, owner=(data, view))
    return payload


def check_metadata(metadata: object) -> dict[str, Any]:
    """Return ``metadata`` if it is a dict of JSON values; raise PayloadError otherwise."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise PayloadError(f"frame metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PayloadError(
            f"frame metadata must be JSON-serialisable: {error}; send bytes or arrays as the payload"
        ) from error
    return metadata


def host_view(
    buffer: np.ndarray[Any, np.dtype[np.uint8]],
    kind: PayloadKind,
    descr: Any,
    shape: tuple[int, ...] | None,
) -> Any:
    """Present received host bytes as the sender's type: a memoryview or a NumPy array."""
    if kind is PayloadKind.BYTES:
        return memoryview(buffer.data)
    dtype = descr_dtype(descr)
    return buffer.view(dtype).reshape(shape or ())
