"""What can be sent: bytes-like objects, NumPy arrays, CUDA and DLPack arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from numaflow_rdma.transport import cuda
from numaflow_rdma.transport.errors import PayloadError
from numaflow_rdma.transport.payload import check_metadata, host_view, prepare_payload
from numaflow_rdma.transport.protocol import Memory, PayloadKind


def test_bytes_like_payloads_are_not_copied() -> None:
    data = bytearray(b"frame")
    payload = prepare_payload(data)
    assert payload.kind is PayloadKind.BYTES
    assert payload.nbytes == 5
    data[0] = ord("F")
    assert bytes(payload.buffer) == b"Frame"


def test_contiguous_array_is_not_copied() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    payload = prepare_payload(array)
    assert payload.kind is PayloadKind.ARRAY
    assert payload.shape == (3, 4)
    assert payload.dtype == "<f4"
    assert not payload.copied
    assert np.shares_memory(payload.buffer, array)


def test_strided_array_is_copied_once() -> None:
    array = np.arange(20).reshape(4, 5)[:, ::2]
    payload = prepare_payload(array)
    assert payload.copied
    assert payload.nbytes == array.nbytes
    assert np.array_equal(payload.buffer.view(array.dtype).reshape(array.shape), array)


def test_unsupported_payloads_raise() -> None:
    with pytest.raises(PayloadError, match="cannot send a dict"):
        prepare_payload({"a": 1})
    with pytest.raises(PayloadError, match="non-contiguous memoryview"):
        prepare_payload(memoryview(b"abcdef")[::2])
    with pytest.raises(PayloadError, match="Python objects"):
        prepare_payload(np.array([object()]))


def test_metadata_must_be_json() -> None:
    assert check_metadata(None) == {}
    assert check_metadata({"camera": "c1", "boxes": [[1, 2, 3, 4]]}) == {
        "camera": "c1",
        "boxes": [[1, 2, 3, 4]],
    }
    with pytest.raises(PayloadError, match="JSON-serialisable"):
        check_metadata({"image": b"raw"})
    with pytest.raises(PayloadError, match="must be a dict"):
        check_metadata(["a"])


class _CpuTensor:
    """A DLPack producer that is not a NumPy array, like a PyTorch CPU tensor."""

    def __init__(self, array: np.ndarray[Any, Any]) -> None:
        self._array = array

    def __dlpack__(self, stream: object = None, **kwargs: object) -> object:
        return self._array.__dlpack__()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def test_dlpack_cpu_tensor_travels_as_array() -> None:
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    payload = prepare_payload(_CpuTensor(array))
    assert payload.memory is Memory.HOST
    assert payload.shape == (2, 3)
    assert np.shares_memory(payload.buffer, array)


def test_dlpack_capsule_is_parsed() -> None:
    # The ctypes layout is the same for every device; a CPU capsule checks it here.
    array = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    view = cuda.dlpack_view(array.__dlpack__())
    assert view.pointer == array.ctypes.data
    assert view.shape == (2, 3, 4)
    assert view.typestr == "<f8"
    assert view.nbytes == array.nbytes
    with pytest.raises(PayloadError, match="not C-contiguous"):
        cuda.dlpack_view(array[:, :, ::2].__dlpack__())


class _FakeCudaArray:
    """An object with the CUDA array interface; the pointer is never dereferenced here."""

    def __init__(self, strides: tuple[int, ...] | None = None) -> None:
        self.__cuda_array_interface__ = {
            "shape": (1080, 1920, 3),
            "typestr": "|u1",
            "data": (0xDEAD0000, False),
            "strides": strides,
            "version": 3,
            "stream": 1,
        }


def test_cuda_array_is_described_without_copy() -> None:
    device_array = _FakeCudaArray()
    payload = prepare_payload(device_array)
    assert payload.memory is Memory.CUDA
    assert payload.nbytes == 1080 * 1920 * 3
    assert payload.shape == (1080, 1920, 3)
    assert payload.stream == 1
    assert payload.buffer is device_array


def test_strided_cuda_array_is_refused() -> None:
    with pytest.raises(PayloadError, match="not C-contiguous"):
        prepare_payload(_FakeCudaArray(strides=(11520, 6, 1)))
    # Explicit C-contiguous strides are fine.
    assert prepare_payload(_FakeCudaArray(strides=(5760, 3, 1))).nbytes == 6_220_800


def test_host_view_rebuilds_arrays() -> None:
    buffer = np.arange(8, dtype=np.uint8)
    assert bytes(host_view(buffer, PayloadKind.BYTES, None, None)) == bytes(range(8))
    array = host_view(buffer, PayloadKind.ARRAY, "<u2", (2, 2))
    assert array.shape == (2, 2)
    assert np.shares_memory(array, buffer)
