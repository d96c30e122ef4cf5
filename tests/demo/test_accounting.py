"""Following frames through UDF journals: drops, losses with a deleted pod, and stream paths."""

from __future__ import annotations

from typing import Any

from numaflow_rdma.demo.accounting import UdfRun, account_frames, stream_paths

INFER_A = "198.18.0.3"
INFER_B = "198.18.0.4"


def sent(camera: str, index: int, peer: str | None, reason: str | None = None) -> dict[str, Any]:
    return {
        "event": "frame",
        "camera": camera,
        "stream": camera,
        "index": index,
        "sent": peer is not None,
        "peer": f"{peer}:7470" if peer else None,
        "reason": reason,
    }


def arrived(camera: str, index: int, time: float = 0.0, passed: bool = True) -> dict[str, Any]:
    return {
        "event": "frame",
        "camera": camera,
        "stream": camera,
        "index": index,
        "passed": passed,
        "nbytes": 100,
        "time": time,
    }


def decode(*events: dict[str, Any]) -> UdfRun:
    return UdfRun(pod="decode-0", vertex="decode", address="198.18.0.6", events=list(events))


def infer(
    pod: str, address: str, *events: dict[str, Any], deleted_at: float | None = None
) -> UdfRun:
    return UdfRun(pod=pod, vertex="infer", address=address, events=list(events), deleted_at=deleted_at)


def test_every_frame_accounted() -> None:
    senders = [decode(sent("c", 0, INFER_A), sent("c", 1, INFER_A), sent("c", 2, None, "no_peer"))]
    receivers = [infer("a", INFER_A, arrived("c", 0), arrived("c", 1))]

    accounting = account_frames(senders, receivers)

    assert accounting.produced == 3
    assert accounting.received == 2
    assert accounting.dropped.by_reason == {"no_peer": 1}
    assert accounting.dropped.lost_in_flight == 0
    assert accounting.balanced
    assert accounting.bytes_received == 200


def test_loss_with_deleted_pod_counted() -> None:
    senders = [decode(sent("c", 0, INFER_A), sent("c", 1, INFER_A))]
    receivers = [infer("a", INFER_A, arrived("c", 0), deleted_at=10.0)]

    accounting = account_frames(senders, receivers)

    assert accounting.dropped.lost_in_flight == 1
    assert accounting.unexplained_losses == []
    assert accounting.balanced


def test_loss_with_live_pod_unexplained() -> None:
    senders = [decode(sent("c", 0, INFER_A))]
    receivers = [infer("a", INFER_A)]

    accounting = account_frames(senders, receivers)

    assert accounting.unexplained_losses == ["c#0 -> a"]


def test_duplicates_and_misroutes_found() -> None:
    senders = [decode(sent("c", 0, INFER_A), sent("c", 1, INFER_A))]
    receivers = [
        infer("a", INFER_A, arrived("c", 0), arrived("c", 0)),
        infer("b", INFER_B, arrived("c", 1), arrived("x", 9, passed=False)),
    ]

    accounting = account_frames(senders, receivers)

    assert accounting.duplicates == 1
    assert accounting.misrouted == 1
    assert accounting.unexpected == 1
    assert accounting.checksum_failures == 1


def test_stream_moves_after_deletion() -> None:
    receivers = [
        infer("a", INFER_A, arrived("c", 0, 1.0), arrived("c", 1, 2.0), deleted_at=2.5),
        infer("b", INFER_B, arrived("c", 3, 3.0), arrived("c", 4, 4.0)),
    ]

    [path] = stream_paths(receivers)

    assert path.runs == [("a", 0, 1, 2), ("b", 3, 4, 2)]
    assert path.problem is None


def test_stream_moving_from_live_pod_flagged() -> None:
    receivers = [
        infer("a", INFER_A, arrived("c", 0, 1.0)),
        infer("b", INFER_B, arrived("c", 1, 2.0)),
    ]

    [path] = stream_paths(receivers)

    assert path.problem == "moved from a to b at frame 1 while a was alive"


def test_stream_moving_before_deletion_flagged() -> None:
    receivers = [
        infer("a", INFER_A, arrived("c", 0, 1.0), deleted_at=5.0),
        infer("b", INFER_B, arrived("c", 1, 2.0)),
    ]

    [path] = stream_paths(receivers)

    assert path.problem == "reached b at frame 1 before a was deleted"


def test_stream_returning_flagged() -> None:
    receivers = [
        infer("a", INFER_A, arrived("c", 0, 1.0), arrived("c", 2, 3.0), deleted_at=1.5),
        infer("b", INFER_B, arrived("c", 1, 2.0)),
    ]

    [path] = stream_paths(receivers)

    assert path.problem == "came back to a at frame 2 after leaving it"
