"""CUDA memory without a hard dependency on CuPy or PyTorch.

Device arrays are recognised by ``__cuda_array_interface__`` (CuPy, PyTorch,
Numba, RMM) or by DLPack (``__dlpack__`` and ``__dlpack_device__``, which
JAX and the array API use). UCX reads device memory through the interface's
pointer, so sending needs no CUDA library at all.

What does need one is allocating device memory on the receiver, copying
between host and device for the TCP backend, and synchronizing the
producer's CUDA stream before UCX reads a buffer. For those this module uses
CuPy when it is importable, and otherwise RMM and ``cuda.bindings``, which
the ``ucx`` extra (``ucxx-cu12``) installs.

NOTE: the paths without CuPy (RMM allocation, ``cuda.bindings`` copies) are
written against the RMM 26.10 and cuda-bindings 12.9 APIs but have only run
where a GPU and CuPy were present.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from numaflow_rdma.transport.errors import PayloadError, TransportError
from numaflow_rdma.transport.protocol import descr_dtype

logger = logging.getLogger(__name__)

# CUDA's "legacy default stream" handle, as the CUDA array interface (v3) and
# DLPack spell it.
LEGACY_DEFAULT_STREAM = 1

_DLPACK_CPU = 1
_DLPACK_CUDA = 2
_DLPACK_CUDA_HOST = 3
_DLPACK_CUDA_MANAGED = 13
_DLPACK_TYPE_CODES = {0: "i", 1: "u", 2: "f", 5: "c", 6: "b"}


def _import_optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
    except Exception as error:
        logger.debug("Importing %s failed: %s", name, error)
        return None


def cupy_module() -> ModuleType | None:
    """Return CuPy if it imports, else None."""
    return _import_optional("cupy")


def is_cuda_array(data: object) -> bool:
    """Tell whether ``data`` exposes the CUDA array interface."""
    return hasattr(data, "__cuda_array_interface__")


def dlpack_device(data: object) -> tuple[int, int] | None:
    """Return the ``(device type, device id)`` of a DLPack producer, or None if it is not one."""
    method = getattr(data, "__dlpack_device__", None)
    if method is None or not hasattr(data, "__dlpack__"):
        return None
    device_type, device_id = method()
    return int(device_type), int(device_id)


def is_dlpack_cuda_device(device_type: int) -> bool:
    """Tell whether a DLPack device type is CUDA memory (device, pinned host or managed)."""
    return device_type in (_DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED)


class CudaArrayView:
    """A contiguous device array described by ``__cuda_array_interface__``.

    It keeps ``owner`` (the allocation, or the DLPack capsule it came from)
    alive for as long as the view lives.
    """

    def __init__(
        self,
        pointer: int,
        shape: tuple[int, ...],
        typestr: str,
        owner: object,
        stream: int | None = None,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        self.pointer = pointer
        self.shape = shape
        self.typestr = typestr
        self.owner = owner
        self.stream = stream
        self._on_release = on_release

    @property
    def nbytes(self) -> int:
        """Return the size of the array in bytes."""
        count = 1
        for size in self.shape:
            count *= size
        return count * np.dtype(self.typestr).itemsize

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "typestr": self.typestr,
            "data": (self.pointer, False),
            "strides": None,
            "version": 3,
            "stream": self.stream,
        }

    def __del__(self) -> None:
        if self._on_release is not None:
            self._on_release()


def cuda_interface(data: object) -> dict[str, Any]:
    """Return the CUDA array interface of ``data``, checked to be a contiguous array."""
    interface: dict[str, Any] = data.__cuda_array_interface__  # type: ignore[attr-defined]
    shape = tuple(int(size) for size in interface["shape"])
    typestr = interface["typestr"]
    strides = interface.get("strides")
    if strides is not None and tuple(strides) != _contiguous_strides(shape, np.dtype(typestr)):
        raise PayloadError(
            f"the CUDA array of shape {shape} and strides {tuple(strides)} is not C-contiguous; "
            "send a contiguous copy (for CuPy: cupy.ascontiguousarray(array))"
        )
    if interface.get("mask") is not None:
        raise PayloadError("masked CUDA arrays cannot be sent; fill or drop the mask first")
    return interface


def _contiguous_strides(shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, ...]:
    strides: list[int] = []
    step = dtype.itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [
    ("dl_tensor", _DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", _DELETER),
]

_capsule_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_capsule_is_valid.restype = ctypes.c_int
_capsule_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_set_name = ctypes.pythonapi.PyCapsule_SetName
_capsule_set_name.restype = ctypes.c_int
_capsule_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]


def dlpack_view(capsule: object) -> CudaArrayView:
    """Take ownership of a legacy ``dltensor`` capsule and describe its memory.

    The capsule is renamed ``used_dltensor``, as the DLPack protocol requires of a
    consumer, and its deleter runs when the returned view is garbage
    collected. The tensor must be C-contiguous.
    """
    if not _capsule_is_valid(capsule, b"dltensor"):
        raise PayloadError("invalid DLPack capsule: expected an unused 'dltensor' capsule")
    address = _capsule_get_pointer(capsule, b"dltensor")
    managed = ctypes.cast(address, ctypes.POINTER(_DLManagedTensor)).contents
    tensor = managed.dl_tensor
    shape = tuple(int(tensor.shape[index]) for index in range(tensor.ndim))
    typestr = _dlpack_typestr(tensor.dtype)
    if tensor.strides:
        strides = tuple(int(tensor.strides[index]) for index in range(tensor.ndim))
        itemsize = np.dtype(typestr).itemsize
        expected = tuple(step // itemsize for step in _contiguous_strides(shape, np.dtype(typestr)))
        # Strides of dimensions of size 1 carry no meaning and producers fill them freely.
        if any(
            size > 1 and got != want
            for size, got, want in zip(shape, strides, expected, strict=True)
        ):
            raise PayloadError(
                f"the DLPack tensor of shape {shape} and strides {strides} (in elements) "
                "is not C-contiguous; send a contiguous copy"
            )
    pointer = int(tensor.data or 0) + int(tensor.byte_offset)
    _capsule_set_name(capsule, b"used_dltensor")
    managed_pointer = ctypes.cast(address, ctypes.POINTER(_DLManagedTensor))

    def release() -> None:
        if managed.deleter:
            managed.deleter(managed_pointer)

    return CudaArrayView(pointer, shape, typestr, owner=capsule, on_release=release)


def _dlpack_typestr(dtype: _DLDataType) -> str:
    kind = _DLPACK_TYPE_CODES.get(int(dtype.code))
    if kind is None or dtype.lanes != 1 or dtype.bits % 8:
        raise PayloadError(
            f"DLPack dtype code {dtype.code} with {dtype.bits} bits and {dtype.lanes} lanes has no "
            "NumPy equivalent (bfloat16 is one); view the tensor as an integer type of the same size"
        )
    return np.dtype(f"<{kind}{dtype.bits // 8}").str


class _Runtime:
    """Copies, stream synchronization and allocation through CuPy or cuda.bindings and RMM."""

    def __init__(self) -> None:
        self._cupy = cupy_module()
        self._bindings: Any = None
        self._rmm: Any = None
        if self._cupy is None:
            self._bindings = _import_optional("cuda.bindings.runtime")
            self._rmm = _import_optional("rmm")

    @property
    def available(self) -> bool:
        """Return True when device memory can be allocated and copied."""
        return self._cupy is not None or (self._bindings is not None and self._rmm is not None)

    def _require(self) -> None:
        if not self.available:
            raise TransportError(
                "a CUDA frame needs CuPy, or RMM and cuda-bindings, to allocate or copy device "
                "memory; install cupy-cuda12x or the numaflow-rdma[ucx] extra"
            )

    def synchronize(self, stream: int | None) -> None:
        """Wait until the work queued on ``stream`` has finished; None means nothing to wait for."""
        if stream is None:
            return
        self._require()
        if self._cupy is not None:
            self._cupy.cuda.runtime.streamSynchronize(stream)
            return
        (status,) = self._bindings.cudaStreamSynchronize(stream)
        self._check(status, "cudaStreamSynchronize")

    def allocate(self, nbytes: int) -> tuple[object, int]:
        """Allocate ``nbytes`` of device memory; return the owning object and its pointer."""
        self._require()
        if self._cupy is not None:
            array = self._cupy.empty(max(nbytes, 1), dtype=self._cupy.uint8)
            return array, int(array.data.ptr)
        buffer = self._rmm.DeviceBuffer(size=max(nbytes, 1))
        return buffer, int(buffer.ptr)

    def copy(self, destination: int, source: int, nbytes: int, direction: str) -> None:
        """Copy ``nbytes`` between pointers; ``direction`` is ``to_host`` or ``to_device``."""
        if nbytes == 0:
            return
        self._require()
        if self._cupy is not None:
            runtime = self._cupy.cuda.runtime
            kind = (
                runtime.memcpyDeviceToHost if direction == "to_host" else runtime.memcpyHostToDevice
            )
            runtime.memcpy(destination, source, nbytes, kind)
            return
        kinds = self._bindings.cudaMemcpyKind
        kind = (
            kinds.cudaMemcpyDeviceToHost if direction == "to_host" else kinds.cudaMemcpyHostToDevice
        )
        (status,) = self._bindings.cudaMemcpy(destination, source, nbytes, kind)
        self._check(status, "cudaMemcpy")

    def as_user_array(self, view: CudaArrayView, descr: Any, shape: tuple[int, ...]) -> object:
        """Return a received device payload as a CuPy array, or as the view itself without CuPy."""
        dtype = descr_dtype(descr) if descr is not None else np.dtype(np.uint8)
        if self._cupy is not None:
            flat = self._cupy.asarray(view)
            return flat.view(dtype).reshape(shape)
        return CudaArrayView(view.pointer, shape, dtype.str, owner=view)

    def _check(self, status: Any, call: str) -> None:
        if int(status) != 0:
            raise TransportError(f"{call} failed with CUDA error {status}")


_runtime: _Runtime | None = None


def runtime() -> _Runtime:
    """Return the process's CUDA helper, created on first use."""
    global _runtime
    if _runtime is None:
        _runtime = _Runtime()
    return _runtime


def copy_to_host(source: object, nbytes: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Copy a contiguous device array into a new host array of bytes (the TCP backend's staging)."""
    interface = cuda_interface(source)
    helper = runtime()
    helper.synchronize(interface.get("stream"))
    host = np.empty(nbytes, dtype=np.uint8)
    helper.copy(host.ctypes.data, int(interface["data"][0]), nbytes, "to_host")
    return host
