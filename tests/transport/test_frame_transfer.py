"""Frames of every size and type cross a real connection intact, over TCP and UCX.

Each test runs in a forked child with its own network namespace (only lo),
so neither backend listens on this machine's interfaces.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from netnamespaces import BACKENDS, run_isolated

from numaflow_rdma.transport import (
    AsyncReceiver,
    AsyncSender,
    DropReason,
    Frame,
    PayloadError,
    Receiver,
    Sender,
    TransportClosedError,
    TransportConfigError,
)

SIZES = [0, 1, 1 << 20, 6_220_800, 64 << 20]
IDENTITY = {"namespace": "video-ns", "pipeline": "video"}


def _pair(backend: str, **receiver_options: Any) -> tuple[Receiver, Sender]:
    receiver = Receiver("127.0.0.1", 0, backend=backend, **IDENTITY, **receiver_options)
    sender = Sender(f"127.0.0.1:{receiver.port}", backend=backend, **IDENTITY)
    return receiver, sender


def _check_sizes(backend: str) -> None:
    receiver, sender = _pair(backend)
    rng = np.random.default_rng(1)
    with receiver, sender:
        for size in SIZES:
            payload = rng.integers(0, 256, size, dtype=np.uint8)
            result = sender.send(payload, metadata={"size": size}, timeout=30)
            assert result.sent, f"{size} bytes: {result}"
            frame = receiver.receive(timeout=60)
            assert frame is not None, f"no frame of {size} bytes arrived"
            assert frame.nbytes == size
            assert frame.metadata == {"size": size}
            assert frame.data.shape == (size,)
            assert np.array_equal(frame.data, payload), f"payload of {size} bytes differs"
            frame.release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sizes_round_trip(backend: str) -> None:
    run_isolated(_check_sizes, backend, timeout=240)


def _arrays() -> list[np.ndarray[Any, Any]]:
    structured = np.zeros(5, dtype=[("x", "<i4"), ("y", ">f8"), ("tag", "S3")])
    structured["x"] = np.arange(5)
    structured["tag"] = b"abc"
    return [
        np.arange(6, dtype=np.float16).reshape(2, 3),
        np.empty((0, 4), dtype=np.int64),
        np.eye(4, dtype=bool),
        np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
        np.arange(12, dtype=">u4").reshape(3, 2, 2),
        np.array(7, dtype=np.int32),
        np.asfortranarray(np.arange(20, dtype=np.float32).reshape(4, 5)),
        np.arange(30, dtype=np.uint16).reshape(5, 6)[:, ::2],
        structured,
    ]


def _check_dtypes(backend: str) -> None:
    receiver, sender = _pair(backend)
    with receiver, sender:
        for array in _arrays():
            assert sender.send(array, timeout=10).sent
            frame = receiver.receive(timeout=10)
            assert frame is not None
            assert frame.data.dtype == array.dtype, (
                f"dtype {array.dtype} arrived as {frame.data.dtype}"
            )
            assert frame.data.shape == array.shape
            assert np.array_equal(frame.data, array), (
                f"values of {array.dtype} {array.shape} differ"
            )
            frame.release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtypes_and_shapes_round_trip(backend: str) -> None:
    run_isolated(_check_dtypes, backend)


def _check_bytes_like(backend: str) -> None:
    receiver, sender = _pair(backend)
    payloads: list[Any] = [
        b"frame",
        bytearray(b"\x00\x01\x02"),
        memoryview(b"abcdef")[1:4],
        memoryview(np.arange(4, dtype=np.int32)),
    ]
    with receiver, sender:
        for payload in payloads:
            assert sender.send(payload, metadata={"kind": type(payload).__name__}).sent
            frame = receiver.receive(timeout=10)
            assert frame is not None
            assert isinstance(frame.data, memoryview)
            assert bytes(frame.data) == bytes(payload)
            frame.release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bytes_arrive_as_memoryview(backend: str) -> None:
    run_isolated(_check_bytes_like, backend)


def _check_release_returns_credit(backend: str) -> None:
    receiver, sender = _pair(backend, credits=1)
    with receiver, sender:
        assert sender.send(b"first").sent
        held = receiver.receive(timeout=10)
        assert held is not None
        blocked = sender.send(b"second", timeout=0.3)
        assert blocked.reason is DropReason.TIMEOUT, blocked
        held.release()
        assert sender.send(b"third", timeout=5).sent
        frame = receiver.receive(timeout=10)
        assert frame is not None
        assert bytes(frame.data) == b"third"
        frame.release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_release_returns_credit(backend: str) -> None:
    run_isolated(_check_release_returns_credit, backend)


def _check_iterator_releases(backend: str) -> None:
    receiver, sender = _pair(backend, credits=1)
    with receiver, sender:
        frames = iter(receiver)
        assert sender.send(b"first").sent
        first = next(frames)
        assert bytes(first.data) == b"first"
        assert sender.send(b"held back", timeout=0.3).reason is DropReason.TIMEOUT

        # Asking for the next frame releases the first, which returns the credit.
        arrived: list[Frame] = []
        waiter = threading.Thread(target=lambda: arrived.append(next(frames)))
        waiter.start()
        assert sender.send(b"second", timeout=5).sent
        waiter.join(timeout=10)
        assert first.released
        assert bytes(arrived[0].data) == b"second"
        arrived[0].release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_iterator_releases_previous_frame(backend: str) -> None:
    run_isolated(_check_iterator_releases, backend)


def _check_buffer_reuse(backend: str) -> None:
    receiver, sender = _pair(backend, credits=2)
    addresses = set()
    with receiver, sender:
        for index in range(30):
            assert sender.send(np.full(300_000, index % 256, dtype=np.uint8)).sent
            frame = receiver.receive(timeout=10)
            assert frame is not None
            assert int(frame.data[0]) == index % 256
            addresses.add(frame.data.__array_interface__["data"][0])
            frame.release()
    assert len(addresses) <= 2, f"30 frames used {len(addresses)} buffers with 2 credits"
    assert receiver.metrics.snapshot()["buffer_allocations"] <= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_receiver_reuses_buffers(backend: str) -> None:
    run_isolated(_check_buffer_reuse, backend)


async def _async_round_trip(backend: str) -> list[Any]:
    handled: list[Any] = []
    async with (
        AsyncReceiver("127.0.0.1", 0, backend=backend, **IDENTITY) as receiver,
        AsyncSender(f"127.0.0.1:{receiver.port}", backend=backend, **IDENTITY) as sender,
    ):

        async def handler(frame: Frame) -> None:
            handled.append((frame.sequence, frame.key, frame.data.tolist(), frame.metadata))
            if len(handled) == 3:
                await receiver.close(timeout=1.0)

        serving = asyncio.create_task(receiver.serve(handler))
        for index in range(3):
            result = await sender.send(
                np.array([index, index + 1]), metadata={"index": index}, key=f"cam-{index}"
            )
            assert result.sent, result
        await asyncio.wait_for(serving, 20)
    return handled


def _check_async(backend: str) -> None:
    handled = asyncio.run(_async_round_trip(backend))
    assert handled == [
        (0, "cam-0", [0, 1], {"index": 0}),
        (1, "cam-1", [1, 2], {"index": 1}),
        (2, "cam-2", [2, 3], {"index": 2}),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_api_serves_handler(backend: str) -> None:
    run_isolated(_check_async, backend)


def _check_handler_errors_counted(backend: str) -> None:
    receiver, sender = _pair(backend)
    seen: list[int] = []

    def handler(frame: Frame) -> None:
        seen.append(frame.sequence)
        if frame.sequence == 0:
            raise ValueError("bad frame")
        if frame.sequence == 1:
            threading.Thread(target=receiver.close, args=(1.0,)).start()

    with sender:
        assert sender.send(b"a").sent
        assert sender.send(b"b").sent
        receiver.run(handler)
    assert seen == [0, 1]
    assert receiver.metrics.snapshot()["handler_errors"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_handler_errors_are_counted(backend: str) -> None:
    run_isolated(_check_handler_errors_counted, backend)


def _check_submitted_frames(backend: str) -> None:
    receiver, sender = _pair(backend, credits=4)
    rng = np.random.default_rng(3)
    # Mixed sizes cross the read-ahead boundary of the control stream in both directions.
    payloads = [rng.integers(0, 256, size, dtype=np.uint8) for size in [70_000, 3, 65_535] * 8]
    with receiver, sender:
        outcomes = [
            sender.submit(payload, metadata={"index": index})
            for index, payload in enumerate(payloads)
        ]
        indexes: list[int] = []
        for _ in payloads:
            frame = receiver.receive(timeout=10)
            assert frame is not None, f"only {len(indexes)} of {len(payloads)} frames arrived"
            with frame:
                index = frame.metadata["index"]
                indexes.append(index)
                assert np.array_equal(frame.data, payloads[index]), f"frame {index} differs"
        results = [outcome.result(timeout=10) for outcome in outcomes]

    assert all(result.sent for result in results), results
    assert [result.sequence for result in results] == list(range(len(payloads)))
    assert indexes == list(range(len(payloads)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_submitted_frames_arrive_in_order(backend: str) -> None:
    run_isolated(_check_submitted_frames, backend)


def _check_closed_receiver_ends_waiting_receive(backend: str) -> None:
    receiver, sender = _pair(backend)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            receiver.receive(timeout=30)
        except TransportClosedError as error:
            outcome.append(error)

    with sender:
        waiter = threading.Thread(target=wait)
        waiter.start()
        receiver.close(timeout=2)
        waiter.join(timeout=10)

    assert not waiter.is_alive(), "receive() still blocks after close()"
    assert len(outcome) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_ends_waiting_receive(backend: str) -> None:
    run_isolated(_check_closed_receiver_ends_waiting_receive, backend)


def _check_oversized_metadata(backend: str) -> None:
    receiver, sender = _pair(backend)
    with receiver, sender:
        with pytest.raises(PayloadError) as raised:
            sender.send(b"x", metadata={"notes": "a" * 70_000}, timeout=5)
        result = sender.send(b"after", metadata={"index": 1}, timeout=5)
        frame = receiver.receive(timeout=5)

        assert "max_header_size" in str(raised.value)
        assert result.sent, result
        assert frame is not None
        assert bytes(frame.data) == b"after"
        assert sender.peers() == {f"127.0.0.1:{receiver.port}": "ready"}
        assert receiver.connection_count == 1
        frame.release()


@pytest.mark.parametrize("backend", BACKENDS)
def test_oversized_metadata_keeps_connection(backend: str) -> None:
    run_isolated(_check_oversized_metadata, backend)


@pytest.mark.parametrize("port", [-1, 65536, 99999, "7470"])
def test_invalid_receiver_port_is_rejected(port: object) -> None:
    with pytest.raises(TransportConfigError) as raised:
        AsyncReceiver("127.0.0.1", port, namespace="ns", pipeline="video")  # type: ignore[arg-type]

    assert f"invalid receiver port {port!r}" in str(raised.value)


def test_invalid_receiver_host_is_rejected() -> None:
    with pytest.raises(TransportConfigError) as raised:
        AsyncReceiver("rdma-pod", 0, namespace="ns", pipeline="video")

    assert "invalid receiver host 'rdma-pod'" in str(raised.value)
