"""Frames between two processes: the direct paths against Numaflow's inter-step buffer.

Each run starts one receiver and one sender (``bench.frame_worker``) inside
one network namespace with only loopback, and for JetStream a nats-server
there too. Two kinds of run per path and frame size:

- saturated: the sender sends back to back for the configured duration;
  frames per second and GB/s come from the receiver, from the send time of
  the first measured frame to the receipt of the last. A transport sender
  keeps ``SATURATED_WINDOW`` frames on their way with ``Sender.submit``, as a
  UDF that pipelines its sends would (``ucx_perftest`` keeps 32);
- paced: the sender sends at a fixed video rate, so the latency is the
  transfer itself rather than the queue in front of it.

Plain TCP ping-pong at the paced rate is the latency reference: the round
trip of one frame out and an 8-byte answer back.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import transport_paths
from bench.common import (
    FRAME_SIZES,
    PYTHON,
    UCX_ENVIRONMENT,
    BenchmarkSkipped,
    LoopbackNamespace,
    Worker,
    WorkerError,
    cpu_times,
    logger,
    ratio,
    read_json,
    stopping,
    wait_for_file,
)
from bench.settings import Settings

JETSTREAM = "jetstream"
SOCKET = "socket"
PINGPONG = "socket-pingpong"
TRANSPORT_UCX = "transport-ucx"
TRANSPORT_TCP = "transport-tcp"
TRANSPORT_PATHS = (TRANSPORT_UCX, TRANSPORT_TCP)
SATURATED_WINDOW = 2
"""Frames a transport sender keeps on their way in saturated runs.

On a two-vCPU VM, 6,220,800-byte frames over the ucx backend reached about
1.25 times the frames per second of one frame at a time with 2 or 4 on their
way (three runs each). Of the two, 2 keeps fewer buffers out of the CPU caches.
"""
PATH_LABELS = {
    TRANSPORT_UCX: "transport, ucx backend",
    TRANSPORT_TCP: "transport, tcp backend",
    JETSTREAM: "NATS JetStream (Numaflow ISB)",
    SOCKET: "plain TCP socket",
    PINGPONG: "plain TCP socket, ping-pong",
}


@dataclass(frozen=True)
class PairRun:
    """One sender-receiver run: the path, the frame size and how to send."""

    path: str
    size: int
    duration: float
    rate: float = 0.0
    warmup: int = 5
    max_frames: int = 100_000
    batch: int = 10
    window: int = 1


def run_pair(run: PairRun, namespace: LoopbackNamespace, work_dir: Path) -> dict[str, Any]:
    """Run one sender and one receiver and return both sides' figures and the server's CPU time."""
    tag = f"{run.path}-{run.size}-{'paced' if run.rate else 'saturated'}-{time.monotonic_ns()}"
    folder = work_dir / tag
    folder.mkdir(parents=True)
    ready = folder / "ready"
    common = [
        "--path",
        run.path,
        "--size",
        str(run.size),
        "--duration",
        str(run.duration),
        "--warmup",
        str(run.warmup),
        "--max-frames",
        str(run.max_frames),
        "--batch",
        str(run.batch),
    ]
    server = None
    if run.path == JETSTREAM:
        from bench.jetstream import NatsServer
        from numaflow_rdma.controlplane import binaries

        server = NatsServer(binaries.ensure("nats-server"), folder, namespace, run.size).start()
        common += ["--nats-url", server.url, "--stream", "isb-frames"]

    environment = dict(UCX_ENVIRONMENT)
    receiver = Worker(
        "receiver",
        namespace.wrap(
            [
                PYTHON,
                "-m",
                "bench.frame_worker",
                "receive",
                *common,
                "--ready-file",
                str(ready),
                "--stop-file",
                str(folder / "sender-done"),
                "--result-file",
                str(folder / "receiver.json"),
            ]
        ),
        folder / "receiver.log",
        environment,
    )
    sender = Worker(
        "sender",
        namespace.wrap(
            [
                PYTHON,
                "-m",
                "bench.frame_worker",
                "send",
                *common,
                "--rate",
                str(run.rate),
                "--window",
                str(run.window),
                "--result-file",
                str(folder / "sender.json"),
            ]
        ),
        folder / "sender.log",
        environment,
    )
    server_workers = [server.worker] if server else []
    with stopping(sender, receiver, *server_workers):
        receiver.start()
        address = wait_for_file(ready, receiver, timeout=60)
        server_cpu_before = cpu_times(server.worker.pid).total if server else 0.0
        sender.command += ["--address", address]
        sender.start()
        limit = run.duration + 120
        sender_status = sender.wait(limit)
        (folder / "sender-done").touch()
        receiver_status = receiver.wait(60)
        server_cpu = (cpu_times(server.worker.pid).total - server_cpu_before) if server else 0.0
    if sender_status or receiver_status:
        raise WorkerError(
            f"{run.path} with {run.size}-byte frames failed: sender exit {sender_status}, "
            f"receiver exit {receiver_status}\nsender:\n{sender.log_tail()}\n"
            f"receiver:\n{receiver.log_tail()}"
        )
    receiver_result = read_json(folder / "receiver.json")
    sender_result = read_json(folder / "sender.json")
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "path": run.path,
        "size": run.size,
        "rate": run.rate,
        "receiver": receiver_result,
        "sender": sender_result,
        "server_cpu_s": server_cpu,
        "lost": max(0, sender_result["sent"] - receiver_result["received"]),
    }


def _cpu_per_gb(result: dict[str, Any]) -> float:
    """Return the CPU seconds of sender, receiver and server per GB delivered."""
    cpu = sum(
        result[side]["cpu_s"]["user"] + result[side]["cpu_s"]["system"]
        for side in ("sender", "receiver")
    )
    cpu += result.get("server_cpu_s", 0.0)
    delivered_gb = result["receiver"]["received"] * result["size"] / 1e9
    return ratio(cpu, delivered_gb)


def _safe_run(run: PairRun, namespace: LoopbackNamespace, work_dir: Path) -> dict[str, Any]:
    try:
        result = run_pair(run, namespace, work_dir)
    except (WorkerError, OSError, ValueError) as error:
        logger.error("Frame run %s with %d bytes failed: %s", run.path, run.size, error)
        return {"path": run.path, "size": run.size, "rate": run.rate, "error": str(error)}
    result["cpu_s_per_gb"] = _cpu_per_gb(result)
    receiver = result["receiver"]
    logger.info(
        "%s, %d B, %s: %.1f frames/s, %.2f GB/s, p50 %.2f ms, p99 %.2f ms, lost %d",
        run.path,
        run.size,
        f"{run.rate:g}/s" if run.rate else "saturated",
        receiver["fps"],
        receiver["gbps"],
        receiver["latency_ms"]["p50"],
        receiver["latency_ms"]["p99"],
        result["lost"],
    )
    return result


def available_paths(paths: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``paths`` into those that can run here and the reasons the others cannot."""
    runnable: list[str] = []
    missing: dict[str, str] = {}
    for path in paths:
        reason = transport_paths.unavailable_reason(path)
        if path == JETSTREAM:
            reason = _nats_server_reason()
        if reason:
            missing[path] = reason
        else:
            runnable.append(path)
    return runnable, missing


def _nats_server_reason() -> str | None:
    from numaflow_rdma.controlplane import binaries

    try:
        binaries.ensure("nats-server")
    except binaries.BuildError as error:
        return f"nats-server could not be built: {error}"
    return None


def run(settings: Settings) -> dict[str, Any]:
    """Run every path at every frame size, saturated and paced; return all results."""
    wanted = [TRANSPORT_UCX, TRANSPORT_TCP, JETSTREAM, SOCKET]
    paths, missing = available_paths(wanted)
    if not paths:
        raise BenchmarkSkipped("no frame path can run here: " + "; ".join(missing.values()))
    work_dir = Path(tempfile.mkdtemp(prefix="numaflow-rdma-bench-frames-"))
    saturated: list[dict[str, Any]] = []
    paced: list[dict[str, Any]] = []
    try:
        with LoopbackNamespace() as namespace:
            for size in FRAME_SIZES.values():
                for path in paths:
                    saturated.append(
                        _safe_run(
                            PairRun(
                                path,
                                size,
                                settings.frame_duration,
                                warmup=settings.frame_warmup,
                                window=SATURATED_WINDOW if path in TRANSPORT_PATHS else 1,
                            ),
                            namespace,
                            work_dir,
                        )
                    )
            for size in FRAME_SIZES.values():
                rate = settings.paced_rate(size)
                for path in [*paths, PINGPONG]:
                    if path == SOCKET:
                        continue
                    paced.append(
                        _safe_run(
                            PairRun(
                                path,
                                size,
                                settings.paced_duration,
                                rate=rate,
                                warmup=settings.frame_warmup,
                            ),
                            namespace,
                            work_dir,
                        )
                    )
            isolation = namespace.name is not None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "saturated": saturated,
        "paced": paced,
        "unavailable": missing,
        "network_namespace": isolation,
        "duration_s": settings.frame_duration,
        "saturated_window": SATURATED_WINDOW,
        "paced_duration_s": settings.paced_duration,
        "transport": transport_paths.describe(),
    }
