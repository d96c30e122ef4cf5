"""Credits, overflow policies, drop reasons and peer choice against real receivers.

The logic is the same for both backends; these tests run over TCP in a
private network namespace, and the drop-policy case over UCX too.
"""

from __future__ import annotations

import asyncio
import collections

import numpy as np
import pytest
from netnamespaces import BACKENDS, requires_root, run_isolated

from numaflow_rdma.transport import (
    AsyncReceiver,
    AsyncSender,
    DropReason,
    FrameTooLargeError,
    Receiver,
    Sender,
    TransportClosedError,
)

IDENTITY = {"namespace": "ns", "pipeline": "video"}

pytestmark = [pytest.mark.netns, requires_root]


def _check_block_times_out() -> None:
    with (
        Receiver("127.0.0.1", 0, backend="tcp", credits=2, **IDENTITY) as receiver,
        Sender(f"127.0.0.1:{receiver.port}", backend="tcp", send_timeout=0.3, **IDENTITY) as sender,
    ):
        outcomes = [sender.send(b"x") for _ in range(3)]
        assert [result.sent for result in outcomes] == [True, True, False]
        assert outcomes[2].reason is DropReason.TIMEOUT
        assert sender.metrics.dropped("timeout") == 1
        assert sender.metrics.snapshot()["frames_in_flight"] == {f"127.0.0.1:{receiver.port}": 2}


def test_block_policy_drops_after_timeout() -> None:
    run_isolated(_check_block_times_out)


def _check_drop_newest() -> None:
    with Receiver("127.0.0.1", 0, backend="tcp", credits=1, **IDENTITY) as receiver:
        options = {"policy": "drop_newest", "max_queued": 0, "send_timeout": 5.0}
        with Sender(f"127.0.0.1:{receiver.port}", backend="tcp", **options, **IDENTITY) as sender:
            assert sender.send(b"first").sent
            second = sender.send(b"second")
            assert second.reason is DropReason.QUEUE_FULL
            assert second.peer == f"127.0.0.1:{receiver.port}"
            assert sender.metrics.dropped("queue_full") == 1


def test_drop_newest_drops_at_once() -> None:
    run_isolated(_check_drop_newest)


async def _drop_oldest(backend: str) -> list[tuple[int, str]]:
    async with AsyncReceiver("127.0.0.1", 0, backend=backend, credits=1, **IDENTITY) as receiver:
        options = {"policy": "drop_oldest", "max_queued": 1, "send_timeout": 10.0}
        async with AsyncSender(
            f"127.0.0.1:{receiver.port}", backend=backend, **options, **IDENTITY
        ) as sender:
            first = await sender.send(b"a")
            assert first.sent
            held = await receiver.receive(timeout=5)
            assert held is not None
            waiting = asyncio.create_task(sender.send(b"b"))
            await asyncio.sleep(0.2)
            newest = asyncio.create_task(sender.send(b"c"))
            superseded = await asyncio.wait_for(waiting, 5)
            assert superseded.reason is DropReason.SUPERSEDED
            held.release()
            assert (await asyncio.wait_for(newest, 5)).sent
            frame = await receiver.receive(timeout=5)
            assert frame is not None
            arrived = [(frame.sequence, bytes(frame.data).decode())]
            frame.release()
            assert sender.metrics.dropped("superseded") == 1
            return arrived


def _check_drop_oldest(backend: str) -> None:
    assert asyncio.run(_drop_oldest(backend)) == [(2, "c")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_oldest_keeps_newest_frame(backend: str) -> None:
    run_isolated(_check_drop_oldest, backend)


def _check_no_peer() -> None:
    # Nothing listens on port 9 inside the fresh namespace.
    options = {"policy": "drop_newest", "connect_timeout": 0.2}
    with Sender("127.0.0.1:9", backend="tcp", **options, **IDENTITY) as sender:
        result = sender.send(b"x")
        assert result.reason is DropReason.NO_PEER
    with Sender(
        "127.0.0.1:9", backend="tcp", send_timeout=0.2, connect_timeout=0.2, **IDENTITY
    ) as sender:
        result = sender.send(b"x")
        assert result.reason is DropReason.NO_PEER
        assert sender.metrics.dropped("no_peer", peer="none") == 1


def test_no_receiver_drops_with_no_peer() -> None:
    run_isolated(_check_no_peer)


def _check_too_large() -> None:
    with (
        Receiver("127.0.0.1", 0, backend="tcp", max_frame_size=1000, **IDENTITY) as receiver,
        Sender(f"127.0.0.1:{receiver.port}", backend="tcp", **IDENTITY) as sender,
    ):
        with pytest.raises(FrameTooLargeError, match="larger than the maximum of 1000 bytes"):
            sender.send(np.zeros(2000, dtype=np.uint8))
        assert sender.metrics.dropped("too_large") == 1
        assert sender.send(np.zeros(1000, dtype=np.uint8)).sent


def test_frame_too_large_raises_and_counts() -> None:
    run_isolated(_check_too_large)


def _check_close() -> None:
    with Receiver("127.0.0.1", 0, backend="tcp", credits=1, **IDENTITY) as receiver:
        sender = Sender(f"127.0.0.1:{receiver.port}", backend="tcp", send_timeout=30, **IDENTITY)
        assert sender.send(b"a").sent
        pending = sender._runtime.submit(
            sender._core.send(sender._async._prepare(b"b", None, None), None)
        )
        sender.close(timeout=0.3)
        result = pending.result(timeout=5)
        assert result.reason is DropReason.CLOSED
        with pytest.raises(TransportClosedError):
            sender.send(b"c")


def test_close_drops_waiting_frames() -> None:
    run_isolated(_check_close)


def _check_least_outstanding() -> None:
    slow = Receiver("127.0.0.1", 0, backend="tcp", credits=4, name="slow", **IDENTITY)
    fast = Receiver("127.0.0.1", 0, backend="tcp", credits=4, name="fast", **IDENTITY)
    peers = [f"127.0.0.1:{slow.port}", f"127.0.0.1:{fast.port}"]
    with (
        slow,
        fast,
        Sender(peers, backend="tcp", peer_choice="least_outstanding", **IDENTITY) as sender,
    ):
        assert sender.wait_for_peers(2, timeout=5) == 2
        counts: collections.Counter[str] = collections.Counter()
        for _ in range(12):
            result = sender.send(b"x")
            assert result.sent
            counts[result.peer or ""] += 1
            # The fast receiver releases at once; the slow one holds every frame.
            frame = fast.receive(timeout=0.05)
            if frame is not None:
                frame.release()
        assert counts[peers[0]] <= 2, counts
        assert counts[peers[1]] >= 10, counts


def test_least_outstanding_avoids_slow_receiver() -> None:
    run_isolated(_check_least_outstanding)


def _check_key_affinity() -> None:
    receivers = [
        Receiver("127.0.0.1", 0, backend="tcp", name=f"r{index}", **IDENTITY) for index in range(3)
    ]
    by_peer = {f"127.0.0.1:{receiver.port}": receiver for receiver in receivers}
    placements: dict[str, set[str]] = collections.defaultdict(set)
    with Sender(list(by_peer), backend="tcp", peer_choice="key_affinity", **IDENTITY) as sender:
        assert sender.wait_for_peers(3, timeout=5) == 3
        for index in range(60):
            key = f"camera-{index % 6}"
            result = sender.send(b"x", key=key)
            assert result.sent, result
            placements[key].add(result.peer or "")
            frame = by_peer[result.peer or ""].receive(timeout=5)
            assert frame is not None
            assert frame.key == key
            frame.release()
    for receiver in receivers:
        receiver.close(timeout=1)
    assert all(len(peers_used) == 1 for peers_used in placements.values()), placements
    assert len({next(iter(peers_used)) for peers_used in placements.values()}) >= 2


def test_key_affinity_keeps_key_on_one_receiver() -> None:
    run_isolated(_check_key_affinity)
