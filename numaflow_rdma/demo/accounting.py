"""Follow every frame from the journals of the UDF processes to where it ended.

A frame is identified by its camera and index. The ``decode`` journals
record which frames were produced and, for each, whether it left the process
and to which receiver (``ip:port``) or why it was dropped. The ``infer``
journals record which frames arrived where and whether they passed their
checksum. Frames that left a sender and never arrived went down with a
deleted pod, so they are counted as dropped, next to the sender's own drops.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from numaflow_rdma.demo.result import (
    FrameAccounting,
    ReplicaReport,
    StreamPath,
)

FrameId = tuple[str, int]


@dataclass
class UdfRun:
    """One UDF process's journal and what the demo recorded about its pod."""

    pod: str
    vertex: str
    address: str | None
    events: list[dict[str, Any]]
    deleted_at: float | None = None
    """Wall-clock time the pod was deleted during the run, or None."""
    frames: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.frames = [event for event in self.events if event.get("event") == "frame"]

    def exit_event(self) -> dict[str, Any] | None:
        """Return the journalled exit, or None when the process was killed first."""
        return next((event for event in reversed(self.events) if event.get("event") == "exit"), None)


def _frame_id(event: dict[str, Any]) -> FrameId:
    return (str(event.get("camera")), int(event.get("index", -1)))


def _peer_host(peer: str | None) -> str | None:
    if not peer:
        return None
    return peer.rsplit(":", 1)[0].strip("[]")


def account_frames(senders: Iterable[UdfRun], receivers: Iterable[UdfRun]) -> FrameAccounting:
    """Return the fate of every produced frame, with the transport's own counters alongside."""
    senders = list(senders)
    receivers = list(receivers)
    pod_by_address = {run.address: run for run in receivers if run.address}
    accounting = FrameAccounting()

    # First, the senders' records: produced, left the process, or dropped and why.
    sent_to: dict[FrameId, str | None] = {}
    dropped_by_reason: Counter[str] = Counter()
    for run in senders:
        for event in run.frames:
            accounting.produced += 1
            if event.get("sent"):
                sent_to[_frame_id(event)] = _peer_host(event.get("peer"))
            else:
                dropped_by_reason[str(event.get("reason") or "unknown")] += 1
    accounting.transmitted = len(sent_to)
    accounting.dropped.by_reason = dict(dropped_by_reason)

    # Then the receivers' records: which frames arrived where, and whether they checked.
    arrivals: Counter[FrameId] = Counter()
    for run in receivers:
        for event in run.frames:
            frame = _frame_id(event)
            arrivals[frame] += 1
            accounting.bytes_received += int(event.get("nbytes") or 0)
            if not event.get("passed"):
                accounting.checksum_failures += 1
            if frame not in sent_to:
                accounting.unexpected += 1
            elif sent_to[frame] != run.address:
                accounting.misrouted += 1
    accounting.duplicates = sum(count - 1 for count in arrivals.values() if count > 1)
    accounting.received = sum(1 for frame in arrivals if frame in sent_to)

    # Frames that left a sender and never arrived: they may only be lost with a deleted pod.
    for frame, host in sent_to.items():
        if frame in arrivals:
            continue
        accounting.dropped.lost_in_flight += 1
        target = pod_by_address.get(host) if host else None
        if target is None or target.deleted_at is None:
            name = target.pod if target else host
            accounting.unexplained_losses.append(f"{frame[0]}#{frame[1]} -> {name}")

    accounting.transport_counters = sender_counters(senders)
    return accounting


def sender_counters(senders: Iterable[UdfRun]) -> dict[str, Any]:
    """Sum the senders' transport metrics: frames sent, dropped by reason, and unconfirmed."""
    totals: dict[str, Any] = {"frames_sent": 0, "frames_unconfirmed": 0, "frames_dropped": {}}
    dropped: Counter[str] = Counter()
    for run in senders:
        exit_event = run.exit_event()
        if exit_event is None:
            continue
        metrics = exit_event.get("metrics") or {}
        totals["frames_sent"] += int(metrics.get("frames_sent", 0))
        totals["frames_unconfirmed"] += int(metrics.get("frames_unconfirmed", 0))
        dropped.update({str(k): int(v) for k, v in (metrics.get("frames_dropped") or {}).items()})
    totals["frames_dropped"] = dict(dropped)
    return totals


def replica_reports(runs: Iterable[UdfRun]) -> list[ReplicaReport]:
    """Return per-process counts: frames sent and dropped, received, bytes, streams, results."""
    reports = []
    for run in runs:
        report = ReplicaReport(pod=run.pod, vertex=run.vertex, address=run.address)
        report.exited_cleanly = run.exit_event() is not None
        brightness = []
        streams = set()
        for event in run.frames:
            if run.vertex == "decode":
                if event.get("sent"):
                    report.frames_sent += 1
                else:
                    report.frames_dropped += 1
            else:
                report.frames_received += 1
                report.bytes_received += int(event.get("nbytes") or 0)
                if event.get("brightness") is not None:
                    brightness.append(float(event["brightness"]))
            if event.get("stream"):
                streams.add(str(event["stream"]))
        for event in run.events:
            if event.get("event") != "result":
                continue
            if run.vertex == "out":
                report.frames_received += 1
            elif event.get("sent"):
                report.results_sent += 1
            else:
                report.results_dropped += 1
        report.streams = sorted(streams)
        report.mean_brightness = sum(brightness) / len(brightness) if brightness else None
        reports.append(report)
    return reports


def stream_paths(receivers: Iterable[UdfRun]) -> list[StreamPath]:
    """Return where each stream's frames arrived, and whether that kept one receiver while it lived.

    A stream may leave a receiver only after that receiver was deleted, and
    may never come back to a receiver it left.
    """
    receivers = list(receivers)
    deleted_at = {run.pod: run.deleted_at for run in receivers}
    arrivals: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    for run in receivers:
        for event in run.frames:
            arrivals[str(event.get("stream"))].append(
                (int(event.get("index", -1)), run.pod, float(event.get("time", 0.0)))
            )

    paths = []
    for stream in sorted(arrivals):
        frames = sorted(arrivals[stream])
        runs: list[tuple[str, int, int, int]] = []
        problem = None
        for index, pod, arrived in frames:
            if runs and runs[-1][0] == pod:
                first, _, count = runs[-1][1], runs[-1][2], runs[-1][3]
                runs[-1] = (pod, first, index, count + 1)
                continue
            if runs and problem is None:
                left = runs[-1][0]
                left_deleted = deleted_at.get(left)
                if any(earlier[0] == pod for earlier in runs):
                    problem = f"came back to {pod} at frame {index} after leaving it"
                elif left_deleted is None:
                    problem = f"moved from {left} to {pod} at frame {index} while {left} was alive"
                elif arrived < left_deleted:
                    problem = f"reached {pod} at frame {index} before {left} was deleted"
            runs.append((pod, index, index, 1))
        paths.append(StreamPath(stream=stream, runs=runs, problem=problem))
    return paths
