"""CUDA frames: device arrays in, device arrays out. Skipped without CuPy and a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from netnamespaces import REPO, requires_root, run_isolated

pytestmark = [pytest.mark.gpu, pytest.mark.netns, requires_root]


def _cupy() -> Any:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as error:
        pytest.skip(f"no usable CUDA device: {error}")
    return cupy


class _DlpackOnly:
    """A CUDA tensor that offers only DLPack, as JAX arrays do."""

    def __init__(self, array: Any) -> None:
        self._array = array

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self._array.__dlpack__(stream=stream)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._array.__dlpack_device__()  # type: ignore[no-any-return]


def _check_device_frames(backend: str) -> dict[str, Any]:
    import cupy

    from numaflow_rdma.transport import Receiver, Sender

    identity = {"namespace": "ns", "pipeline": "gpu"}
    report: dict[str, Any] = {}
    with (
        Receiver("127.0.0.1", 0, backend=backend, **identity) as receiver,
        Sender(f"127.0.0.1:{receiver.port}", backend=backend, **identity) as sender,
    ):
        frame = cupy.arange(1080 * 1920 * 3, dtype=cupy.uint32).reshape(1080, 1920, 3) % 251
        frame = frame.astype(cupy.uint8)
        for payload in (frame, _DlpackOnly(frame)):
            assert sender.send(payload, metadata={"camera": "c"}).sent
            received = receiver.receive(timeout=30)
            assert received is not None
            assert isinstance(received.data, cupy.ndarray), type(received.data)
            assert received.data.shape == frame.shape
            assert received.data.dtype == frame.dtype
            assert bool((received.data == frame).all())
            received.release()
        report["staged_copies"] = sender.metrics.staged_copies + receiver.metrics.staged_copies
    return report


@pytest.mark.parametrize("backend", ["ucx", "tcp"])
def test_cuda_frames_arrive_on_device(backend: str) -> None:
    _cupy()
    if backend == "ucx":
        pytest.importorskip("ucxx")
    report = run_isolated(_check_device_frames, backend, timeout=180)
    if backend == "tcp":
        # The TCP backend stages device memory through the host on both sides.
        assert report["staged_copies"] == 4


def test_gpu_benchmark_script_verifies_frames() -> None:
    _cupy()
    pytest.importorskip("ucxx")
    # The ucxx listener binds every address: run the script in a private network namespace.
    script = f"ip link set lo up && exec {sys.executable} {REPO / 'bench' / 'gpu_frames.py'} --sizes 1048576 --count 5"
    command = ["unshare", "--net", "sh", "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["verified"] is True
    assert report["results"][0]["bytes"] == 1048576
