"""Send CuPy frames between two processes on one GPU over UCX, check them, time them.

Needs only ``ucxx-cu12`` and ``cupy-cuda12x``; it does not import
numaflow_rdma, so it runs on a bare GPU machine:

    python bench/gpu_frames.py --sizes 6220800,24883200 --count 50

A server process receives each frame into one preallocated device buffer,
checks it on the GPU against the pattern the client wrote, and replies with
an 8-byte acknowledgement. The client times ``send`` plus acknowledgement
per frame (the same ping-pong the CPU benchmarks use) and, as the baseline,
a device-to-device copy of the same size inside one process, timed with CUDA
events. It prints one JSON document on standard output; UCX's own log lines
also go to standard output, so ``UCX_WARN_UNUSED_ENV_VARS=n`` is set.

The ucxx listener binds every address of the machine, so ``UCX_NET_DEVICES``
defaults to ``lo`` here (CUDA transports are not network devices and stay
available); for full isolation run the script inside ``unshare --net``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from typing import Any

# UCX reads these when its context is created; set them before ucxx is imported.
os.environ.setdefault("UCXPY_PROGRESS_MODE", "blocking")
os.environ.setdefault("UCX_WARN_UNUSED_ENV_VARS", "n")
os.environ.setdefault("UCX_NET_DEVICES", "lo")

ACK_OK = 1
ACK_CORRUPT = 2


def _pattern(cupy: Any, nbytes: int, seed: int) -> Any:
    """Return the bytes frame ``seed`` must hold, computed on the GPU."""
    return ((cupy.arange(nbytes, dtype=cupy.uint32) * 31 + seed) % 251).astype(cupy.uint8)


async def _serve(port_pipe: Any, sizes: list[int], count: int, warmup: int) -> None:
    import cupy
    import numpy
    import ucxx

    done = asyncio.Event()

    async def handle(endpoint: Any) -> None:
        ack = numpy.zeros(1, dtype=numpy.uint64)
        for nbytes in sizes:
            frame = cupy.empty(nbytes, dtype=cupy.uint8)
            for seed in range(warmup + count):
                await endpoint.recv(frame)
                ok = bool((frame == _pattern(cupy, nbytes, seed)).all())
                ack[0] = ACK_OK if ok else ACK_CORRUPT
                await endpoint.send(ack)
        done.set()

    listener = ucxx.create_listener(handle, port=0)
    port_pipe.send(listener.port)
    await done.wait()
    listener.close()


def _server(port_pipe: Any, sizes: list[int], count: int, warmup: int) -> None:
    asyncio.run(_serve(port_pipe, sizes, count, warmup))


def _device_copy(cupy: Any, nbytes: int, count: int) -> dict[str, float]:
    source = _pattern(cupy, nbytes, 0)
    target = cupy.empty_like(source)
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    target[...] = source
    times = []
    for _ in range(count):
        start.record()
        target[...] = source
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1000.0)
    assert bool((target == source).all())
    median = statistics.median(times)
    return {"d2d_copy_ms_p50": median * 1000, "d2d_copy_gbytes_per_s": nbytes / median / 1e9}


async def _client(port: int, sizes: list[int], count: int, warmup: int) -> list[dict[str, Any]]:
    import cupy
    import numpy
    import ucxx

    endpoint = await ucxx.create_endpoint("127.0.0.1", port)
    ack = numpy.zeros(1, dtype=numpy.uint64)
    results = []
    for nbytes in sizes:
        frames = [_pattern(cupy, nbytes, seed) for seed in range(warmup + count)]
        cupy.cuda.runtime.deviceSynchronize()
        times = []
        corrupt = 0
        for seed, frame in enumerate(frames):
            began = time.perf_counter()
            await endpoint.send(frame)
            await endpoint.recv(ack)
            elapsed = time.perf_counter() - began
            if seed >= warmup:
                times.append(elapsed)
                corrupt += int(ack[0]) != ACK_OK
        median = statistics.median(times)
        result: dict[str, Any] = {
            "bytes": nbytes,
            "frames": count,
            "corrupt_frames": corrupt,
            "ucx_round_trip_ms_p50": median * 1000,
            "ucx_round_trip_ms_max": max(times) * 1000,
            "ucx_gbytes_per_s": nbytes / median / 1e9,
        }
        result.update(_device_copy(cupy, nbytes, count))
        result["ucx_vs_d2d_copy"] = result["ucx_round_trip_ms_p50"] / result["d2d_copy_ms_p50"]
        results.append(result)
        del frames
    await endpoint.close()
    return results


def main() -> int:
    """Run the server in a child process and the client here; print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="6220800,24883200", help="comma-separated frame sizes in bytes"
    )
    parser.add_argument("--count", type=int, default=50, help="timed frames per size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames per size first")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",") if size]

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    server = context.Process(
        target=_server, args=(child_end, sizes, arguments.count, arguments.warmup), daemon=True
    )
    server.start()
    try:
        if not parent_end.poll(60):
            raise SystemExit("the server process did not start listening within 60 s")
        port = parent_end.recv()
        results = asyncio.run(_client(port, sizes, arguments.count, arguments.warmup))
    finally:
        server.join(timeout=30)
        if server.is_alive():
            server.kill()

    import cupy
    import ucxx

    report = {
        "gpu": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
        "ucxx": ucxx.__version__,
        "ucx": ucxx.__ucx_version__,
        "ucx_transports": sorted(ucxx.get_active_transports()),
        "environment": {
            key: value for key, value in os.environ.items() if key.startswith(("UCX_", "UCXPY_"))
        },
        "results": results,
        "verified": all(result["corrupt_frames"] == 0 for result in results),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
