"""Transport throughput as the number of senders and receivers grows.

For each layout of N senders and M receivers, M receiver processes and N
sender processes run in one loopback namespace; each sender is given every
receiver's address and spreads its frames over them, as a sender spreads
frames over the pods of the next vertex. The aggregate rate is the frames
measured by all receivers over the time from the first measured send to the
last receipt.
"""

from __future__ import annotations

import shutil
import tempfile
import time
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
    logger,
    read_json,
    stopping,
    wait_for_file,
)
from bench.settings import Settings

FRAME_LABEL = "1080p RGB"


def run_layout(
    backend: str,
    senders: int,
    receivers: int,
    size: int,
    duration: float,
    warmup: int,
    namespace: LoopbackNamespace,
    work_dir: Path,
) -> dict[str, Any]:
    """Run one layout and return its aggregate frames per second, GB/s and losses."""
    path = f"transport-{backend}"
    folder = work_dir / f"{backend}-{senders}x{receivers}-{time.monotonic_ns()}"
    folder.mkdir()
    environment = dict(UCX_ENVIRONMENT)
    common = [
        "--path",
        path,
        "--size",
        str(size),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
    ]
    receiver_workers = [
        Worker(
            f"receiver {index}",
            namespace.wrap(
                [
                    PYTHON,
                    "-m",
                    "bench.frame_worker",
                    "receive",
                    *common,
                    "--senders",
                    str(senders),
                    "--ready-file",
                    str(folder / f"ready-{index}"),
                    "--stop-file",
                    str(folder / "senders-done"),
                    "--result-file",
                    str(folder / f"receiver-{index}.json"),
                ]
            ),
            folder / f"receiver-{index}.log",
            environment,
        )
        for index in range(receivers)
    ]
    sender_workers: list[Worker] = []
    with stopping(*receiver_workers):
        for worker in receiver_workers:
            worker.start()
        addresses = [
            wait_for_file(folder / f"ready-{index}", worker, timeout=60)
            for index, worker in enumerate(receiver_workers)
        ]
        sender_workers = [
            Worker(
                f"sender {index}",
                namespace.wrap(
                    [
                        PYTHON,
                        "-m",
                        "bench.frame_worker",
                        "send",
                        *common,
                        "--addresses",
                        ",".join(addresses),
                        "--result-file",
                        str(folder / f"sender-{index}.json"),
                    ]
                ),
                folder / f"sender-{index}.log",
                environment,
            )
            for index in range(senders)
        ]
        with stopping(*sender_workers):
            for worker in sender_workers:
                worker.start()
            failed = [worker.name for worker in sender_workers if worker.wait(duration + 120)]
            # Frames still in flight arrive before the receivers see this file and no frame waiting.
            (folder / "senders-done").touch()
            failed += [worker.name for worker in receiver_workers if worker.wait(60)]
    if failed:
        logs = "\n".join(
            f"{worker.name}:\n{worker.log_tail()}"
            for worker in [*sender_workers, *receiver_workers]
        )
        raise WorkerError(f"{', '.join(failed)} failed:\n{logs}")

    received = [read_json(folder / f"receiver-{index}.json") for index in range(receivers)]
    sent = [read_json(folder / f"sender-{index}.json") for index in range(senders)]
    shutil.rmtree(folder, ignore_errors=True)
    firsts = [row["first_send_ns"] for row in received if row["first_send_ns"] is not None]
    lasts = [row["last_receive_ns"] for row in received if row["last_receive_ns"] is not None]
    measured = sum(row["measured"] for row in received)
    elapsed = (max(lasts) - min(firsts)) / 1e9 if firsts and lasts else 0.0
    fps = measured / elapsed if elapsed > 0 else 0.0
    return {
        "backend": backend,
        "senders": senders,
        "receivers": receivers,
        "fps": fps,
        "gbps": fps * size / 1e9,
        "lost": max(0, sum(row["sent"] for row in sent) - sum(row["received"] for row in received)),
        "per_receiver_frames": [row["received"] for row in received],
    }


def run(settings: Settings) -> dict[str, Any]:
    """Run every layout with each transport backend that can run here."""
    backends = [
        backend
        for backend in transport_paths.BACKENDS
        if transport_paths.unavailable_reason(f"transport-{backend}") is None
    ]
    if not backends:
        reason = transport_paths.unavailable_reason("transport-tcp")
        raise BenchmarkSkipped(f"the transport cannot run here: {reason}")
    size = FRAME_SIZES[FRAME_LABEL]
    work_dir = Path(tempfile.mkdtemp(prefix="numaflow-rdma-bench-scaling-"))
    rows: list[dict[str, Any]] = []
    try:
        with LoopbackNamespace() as namespace:
            for backend in backends:
                for senders, receivers in settings.scaling_layouts:
                    try:
                        row = run_layout(
                            backend,
                            senders,
                            receivers,
                            size,
                            settings.scaling_duration,
                            settings.frame_warmup,
                            namespace,
                            work_dir,
                        )
                    except (WorkerError, OSError, ValueError, KeyError) as error:
                        logger.error(
                            "Scaling %s %dx%d failed: %s", backend, senders, receivers, error
                        )
                        rows.append(
                            {
                                "backend": backend,
                                "senders": senders,
                                "receivers": receivers,
                                "error": str(error),
                            }
                        )
                        continue
                    logger.info(
                        "Scaling %s %dx%d: %.1f frames/s, %.2f GB/s",
                        backend,
                        senders,
                        receivers,
                        row["fps"],
                        row["gbps"],
                    )
                    rows.append(row)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {"rows": rows, "frame_label": FRAME_LABEL, "duration_s": settings.scaling_duration}
