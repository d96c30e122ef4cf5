"""The seam between the frame benchmarks and numaflow-rdma's transport.

``bench.frame_worker`` calls ``send`` and ``receive`` here for the paths
``transport-ucx`` and ``transport-tcp``; ``bench.frames`` and
``bench.scaling`` ask ``unavailable_reason`` first, so a checkout whose
transport is missing or incomplete still runs every other benchmark and the
page states why these rows are empty.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import os
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from bench.common import CpuClock
from bench.frame_worker import (
    IDLE_TIMEOUT,
    START_ALLOWANCE,
    FrameRecorder,
    FrameSource,
    Pacer,
    SendBudget,
    sender_result,
)

BACKENDS = ("ucx", "tcp")


def _backend(path: str) -> str | None:
    if not path.startswith("transport-"):
        return None
    return path.removeprefix("transport-")


def unavailable_reason(path: str) -> str | None:
    """Return why a transport path cannot run here, or None (also for non-transport paths)."""
    backend = _backend(path)
    if backend is None:
        return None
    if backend not in BACKENDS:
        return f"unknown transport backend {backend!r}"
    try:
        transport = importlib.import_module("numaflow_rdma.transport")
    except ImportError as error:
        return f"numaflow_rdma.transport cannot be imported: {error}"
    missing = [name for name in ("Sender", "Receiver") if not hasattr(transport, name)]
    if missing:
        return f"numaflow_rdma.transport does not export {' and '.join(missing)}"
    if backend == "ucx" and importlib.util.find_spec("ucxx") is None:
        return "the ucxx package is not installed (install numaflow-rdma[ucx])"
    return None


def environment(path: str) -> dict[str, str]:
    """Return the UCX variables the ucx backend sets for itself, for ucx_perftest to match.

    The transport's workers set them on their own; ucx_perftest gets the same
    ones so that both run the same UCX protocols. Empty for other paths or
    when the backend cannot be imported.
    """
    if path != "transport-ucx":
        return {}
    try:
        ucx = importlib.import_module("numaflow_rdma.transport.backends.ucx")
    except ImportError:
        return {}
    applied: dict[str, str] = ucx.apply_defaults({})
    return applied


def describe() -> dict[str, Any]:
    """Return the transport settings the page reports, and the matching ucx_perftest row."""
    from bench.perftest import MATCHING_SELECTION

    return {
        "ucx_environment": environment("transport-ucx"),
        "ucx_perftest_selection": MATCHING_SELECTION,
    }


def _identity(role: str) -> dict[str, Any]:
    # Senders and receivers must name the same namespace and pipeline in the handshake.
    return {"namespace": "bench", "pipeline": "bench", "name": f"bench-{role}-{os.getpid()}"}


def receive(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """Receive frames with the transport's Receiver on 127.0.0.1 and record each stamp.

    The receipt time is taken when ``receive`` returns the frame to this
    thread, as a UDF would get it. The run ends after one end-of-stream frame
    per sender, when ``--stop-file`` exists and no frame is waiting, or after
    IDLE_TIMEOUT seconds without a frame once frames came.
    """
    from numaflow_rdma.transport import Receiver

    receiver = Receiver("127.0.0.1", 0, backend=backend, **_identity("receiver"))
    recorder = FrameRecorder(args.size, args.warmup, args.max_frames, ends_expected=args.senders)
    Path(args.ready_file).write_text(f"127.0.0.1:{receiver.port}")
    deadline = time.monotonic() + args.duration + START_ALLOWANCE
    last_frame = time.monotonic()
    stop_file = Path(args.stop_file) if args.stop_file else None
    try:
        while time.monotonic() < deadline:
            frame = receiver.receive(timeout=0.5)
            now = time.monotonic_ns()
            if frame is None:
                if stop_file is not None and stop_file.exists():
                    break
                if recorder.received and time.monotonic() - last_frame > IDLE_TIMEOUT:
                    break
                continue
            last_frame = time.monotonic()
            try:
                running = recorder.record(frame.data, now)
            finally:
                frame.release()
            if not running:
                break
        metrics = _metrics(receiver)
    finally:
        receiver.close(timeout=2.0)
    return {**recorder.result(), "transport_metrics": metrics}


def send(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """Send stamped NumPy frames with the transport's Sender, spread over every address given.

    Up to ``--window`` frames are on their way at once through
    ``Sender.submit``, each in its own buffer, because a frame's buffer must
    stay unchanged until its send is done.
    """
    from numaflow_rdma.transport import Sender

    addresses = [item for item in (args.addresses or args.address).split(",") if item]
    window = max(1, args.window)
    sources = [FrameSource(args.size) for _ in range(window)]
    sender = Sender(addresses, backend=backend, **_identity("sender"))
    outcomes: collections.deque[Future[Any]] = collections.deque()
    dropped = 0
    sent = 0
    try:
        connected = sender.wait_for_peers(len(addresses), timeout=30.0)
        if connected < len(addresses):
            raise RuntimeError(
                f"only {connected} of {len(addresses)} receivers connected within 30 s: "
                f"{sender.peers()}"
            )
        pacer = Pacer(args.rate)
        budget = SendBudget.from_arguments(args)
        started = time.monotonic()
        cpu = CpuClock()
        while budget.allows(sent):
            if len(outcomes) == window:
                dropped += outcomes.popleft().result().dropped
            time.sleep(pacer.delay(sent))
            source = sources[sent % window]
            source.stamp(sent)
            outcomes.append(sender.submit(source.frame))
            sent += 1
        while outcomes:
            dropped += outcomes.popleft().result().dropped

        # One end-of-stream frame per receiver; round-robin spreading gives each one.
        for _ in addresses:
            sources[0].end_marker()
            sender.send(sources[0].frame)
        result = sender_result(sent - dropped, started, cpu, {"dropped": dropped, "window": window})
        result["transport_metrics"] = _metrics(sender)
    finally:
        sender.close(timeout=5.0)
    return result


def _metrics(endpoint: Any) -> dict[str, Any]:
    """Return the transport's own counters, when it exposes them as a snapshot."""
    snapshot = getattr(endpoint.metrics, "snapshot", None)
    if callable(snapshot):
        value = snapshot()
        return dict(value) if isinstance(value, dict) else {"snapshot": str(value)}
    return {}
