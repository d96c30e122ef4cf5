"""A sender or receiver process for tests and benchmarks.

    python -m numaflow_rdma.transport.bench_peer receive --host 198.18.0.2 --port 7470 \\
        --records recv.jsonl --summary recv.json
    python -m numaflow_rdma.transport.bench_peer send --peers 198.18.0.2:7470 \\
        --count 100 --size 6220800 --verify --records send.jsonl --summary send.json

The receiver writes one JSON line per frame to ``--records`` (flushed at
once, so a receiver killed with SIGKILL loses no line) and runs until
SIGTERM, SIGINT or ``--duration``. The sender writes one JSON line per frame
outcome and, at the end, a summary with throughput and the metrics
snapshot. Summaries go to ``--summary`` files rather than standard output,
because UCX prints its own log lines there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from numaflow_rdma import logs, names
from numaflow_rdma.transport.frames import Frame
from numaflow_rdma.transport.receiver import Receiver
from numaflow_rdma.transport.sender import AsyncSender

logger = logging.getLogger(__name__)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", help="auto, ucx or tcp")
    parser.add_argument("--namespace", default="bench", help="pipeline namespace for the handshake")
    parser.add_argument("--pipeline", default="bench", help="pipeline name for the handshake")
    parser.add_argument("--name", default=None, help="name of this peer in logs and records")
    parser.add_argument("--secret", default=None, help="shared secret for the handshake")
    parser.add_argument(
        "--records", type=Path, default=None, help="JSON lines file, one line per frame"
    )
    parser.add_argument("--summary", type=Path, default=None, help="JSON file written at the end")
    parser.add_argument("--log-level", default="info", choices=logs.LEVELS)
    parser.add_argument(
        "--peer-timeout", type=float, default=None, help="seconds of silence before a peer is lost"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of both subcommands."""
    parser = argparse.ArgumentParser(prog="python -m numaflow_rdma.transport.bench_peer")
    commands = parser.add_subparsers(dest="command", required=True)

    receive = commands.add_parser("receive", help="receive frames and record them")
    _common(receive)
    receive.add_argument("--host", required=True, help="address to listen on")
    receive.add_argument("--port", type=int, default=names.DEFAULT_TRANSPORT_PORT)
    receive.add_argument("--credits", type=int, default=4, help="frames in flight per sender")
    receive.add_argument("--max-frame-size", type=int, default=None, help="largest payload, bytes")
    receive.add_argument("--delay", type=float, default=0.0, help="seconds to hold each frame")
    receive.add_argument("--duration", type=float, default=None, help="seconds to run")
    receive.add_argument(
        "--ready-file", type=Path, default=None, help="file written when listening"
    )
    receive.add_argument(
        "--no-address-check", action="store_true", help="accept senders that dialed any address"
    )

    send = commands.add_parser("send", help="send frames and record the outcomes")
    _common(send)
    target = send.add_mutually_exclusive_group(required=True)
    target.add_argument("--peers", help="comma-separated ip:port receivers")
    target.add_argument("--dns-name", help="DNS name of the destination vertex")
    send.add_argument("--nameserver", default=None, help="ip:port of the DNS server to ask")
    send.add_argument("--port", type=int, default=names.DEFAULT_TRANSPORT_PORT)
    send.add_argument("--count", type=int, default=100, help="frames to send")
    send.add_argument("--size", type=int, default=1 << 20, help="payload bytes per frame")
    send.add_argument(
        "--rate", type=float, default=0.0, help="frames per second; 0 for as fast as possible"
    )
    send.add_argument("--concurrency", type=int, default=1, help="sends in progress at once")
    send.add_argument("--keys", default="", help="comma-separated keys, used in turn")
    send.add_argument("--peer-choice", default="round_robin")
    send.add_argument("--policy", default="block")
    send.add_argument("--send-timeout", type=float, default=1.0)
    send.add_argument("--wait-peers", type=int, default=1, help="receivers to wait for first")
    send.add_argument("--wait-timeout", type=float, default=20.0)
    send.add_argument(
        "--verify", action="store_true", help="put a CRC-32 of each payload in its metadata"
    )
    send.add_argument("--start-file", type=Path, default=None, help="wait until this file exists")
    return parser


class _Records:
    """A JSON-lines file written line by line, or nothing."""

    def __init__(self, path: Path | None) -> None:
        self._file: TextIO | None = path.open("a", buffering=1) if path else None
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            with self._lock:
                self._file.write(json.dumps(record) + "\n")
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _write_summary(path: Path | None, summary: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(summary, indent=2, default=str))


def run_receiver(arguments: argparse.Namespace) -> int:
    """Receive frames until stopped, recording each one."""
    overrides: dict[str, Any] = {"credits": arguments.credits}
    if arguments.peer_timeout is not None:
        overrides["peer_timeout"] = arguments.peer_timeout
    if arguments.max_frame_size is not None:
        overrides["max_frame_size"] = arguments.max_frame_size
    receiver = Receiver(
        arguments.host,
        arguments.port,
        namespace=arguments.namespace,
        pipeline=arguments.pipeline,
        name=arguments.name or arguments.host,
        secret=arguments.secret,
        backend=arguments.backend,
        check_address=not arguments.no_address_check,
        **overrides,
    )
    records = _Records(arguments.records)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if arguments.ready_file is not None:
        arguments.ready_file.write_text(str(receiver.port))
    started = time.monotonic()
    received = 0
    corrupt = 0

    def handle(frame: Frame) -> None:
        nonlocal received, corrupt
        ok = None
        expected = frame.metadata.get("crc32")
        if expected is not None:
            ok = (
                zlib.crc32(np.ascontiguousarray(frame.data).reshape(-1).view(np.uint8).data)
                == expected
            )
            corrupt += not ok
        received += 1
        records.write(
            {
                "seq": frame.sequence,
                "sender": frame.sender,
                "key": frame.key,
                "nbytes": frame.nbytes,
                "ok": ok,
                "latency": frame.latency,
                "t": time.monotonic() - started,
                "wall": time.time(),
            }
        )
        if arguments.delay:
            time.sleep(arguments.delay)

    while not stop.is_set():
        if arguments.duration is not None and time.monotonic() - started > arguments.duration:
            break
        frame = receiver.receive(timeout=0.1)
        if frame is None:
            continue
        with frame:
            handle(frame)

    # Stop taking connections, then record the frames that had already arrived.
    receiver.close(timeout=2.0)
    for frame in receiver:
        handle(frame)
    records.close()
    _write_summary(
        arguments.summary,
        {"received": received, "corrupt": corrupt, "metrics": receiver.metrics.snapshot()},
    )
    return 0


async def _send_all(arguments: argparse.Namespace) -> dict[str, Any]:
    destination = arguments.peers if arguments.peers else arguments.dns_name
    overrides: dict[str, Any] = {}
    if arguments.peer_timeout is not None:
        overrides["peer_timeout"] = arguments.peer_timeout
    sender = AsyncSender(
        destination,
        port=arguments.port,
        nameserver=arguments.nameserver,
        namespace=arguments.namespace,
        pipeline=arguments.pipeline,
        name=arguments.name or "bench-sender",
        secret=arguments.secret,
        backend=arguments.backend,
        peer_choice=arguments.peer_choice,
        policy=arguments.policy,
        send_timeout=arguments.send_timeout,
        **overrides,
    )
    records = _Records(arguments.records)
    keys = [key for key in arguments.keys.split(",") if key]
    async with sender:
        ready = await sender.wait_for_peers(arguments.wait_peers, arguments.wait_timeout)
        if arguments.start_file is not None:
            while not arguments.start_file.exists():
                await asyncio.sleep(0.05)
        rng = np.random.default_rng(7)
        buffers = [
            rng.integers(0, 256, arguments.size, dtype=np.uint8)
            for _ in range(arguments.concurrency)
        ]
        outcomes: dict[str, int] = {}
        started = time.monotonic()
        interval = 1.0 / arguments.rate if arguments.rate > 0 else 0.0
        counter = iter(range(arguments.count))
        sent_bytes = 0

        async def worker(buffer: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
            nonlocal sent_bytes
            for index in counter:
                if interval:
                    delay = started + index * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if buffer.size >= 8:
                    buffer[:8] = np.frombuffer(index.to_bytes(8, "little"), dtype=np.uint8)
                metadata: dict[str, Any] = {"index": index}
                if arguments.verify:
                    metadata["crc32"] = zlib.crc32(buffer.data)
                key = keys[index % len(keys)] if keys else None
                result = await sender.send(buffer, metadata=metadata, key=key)
                reason = result.reason.value if result.reason else None
                outcome = "sent" if result.sent else str(reason)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                sent_bytes += buffer.nbytes if result.sent else 0
                records.write(
                    {
                        "index": index,
                        "seq": result.sequence,
                        "sent": result.sent,
                        "peer": result.peer,
                        "reason": reason,
                        "key": key,
                        "t": time.monotonic() - started,
                        "wall": time.time(),
                    }
                )

        await asyncio.gather(*(worker(buffer) for buffer in buffers))
        elapsed = time.monotonic() - started
    records.close()
    return {
        "ready_peers": ready,
        "outcomes": outcomes,
        "elapsed_s": elapsed,
        "frames_per_s": arguments.count / elapsed if elapsed else None,
        "gbytes_per_s": sent_bytes / elapsed / 1e9 if elapsed else None,
        "metrics": sender.metrics.snapshot(),
    }


def run_sender(arguments: argparse.Namespace) -> int:
    """Send the frames and write the summary."""
    summary = asyncio.run(_send_all(arguments))
    _write_summary(arguments.summary, summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``receive`` or ``send`` subcommand."""
    arguments = build_parser().parse_args(argv)
    logs.configure("text", arguments.log_level, sys.stderr)
    if arguments.command == "receive":
        return run_receiver(arguments)
    return run_sender(arguments)


if __name__ == "__main__":
    sys.exit(main())
