"""Numaflow's default inter-step buffer: a NATS JetStream server set up as Numaflow sets it up.

The server and stream settings follow Numaflow's JetStream buffer service
(numaproj/numaflow ``pkg/isbsvc/jetstream_service.go`` and the controller's
default configuration): a stream with limits retention, discard old, 100,000
messages, 72 hours, a 60 s duplicate window and file storage; a durable pull
consumer that acknowledges each message explicitly, with a 60 s ack wait and
at most 25,000 unacknowledged messages. The writer publishes each frame with
a ``Nats-Msg-Id`` header and waits for the PubAck, one frame at a time; the
reader fetches up to ``--batch`` frames per pull and acknowledges each.

Differences from a Numaflow cluster, all in JetStream's favour: one replica
instead of three (no replication round trips), and ``max_bytes`` capped at
2 GiB instead of unlimited, so a run cannot fill the disk.

``max_payload`` is raised only as far as the frame needs, in whole MiB, up to
NATS' 64 MiB ceiling; Numaflow's default of 1 MB rejects even a 1 MiB frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import socket
import time
from pathlib import Path
from typing import Any

from bench.common import MIB, CpuClock, LoopbackNamespace, Worker, logger
from bench.frame_worker import FrameRecorder, FrameSource, Pacer, SendBudget, sender_result

SUBJECT = "frames"
CONSUMER = "frames-reader"
MAX_PAYLOAD_CEILING = 64 * MIB
# Room for the protocol line and headers that NATS counts against max_payload.
_HEADER_ROOM = 4096
STREAM_MAX_BYTES = 2 * 1024 * MIB
STREAM_MAX_MESSAGES = 100_000
STREAM_MAX_AGE_S = 72 * 3600
DUPLICATE_WINDOW_S = 60
ACK_WAIT_S = 60
MAX_ACK_PENDING = 25_000
CONNECT_TIMEOUT = 15.0


def max_payload_for(frame_size: int) -> int:
    """Return the smallest whole-MiB ``max_payload`` that fits the frame, at most 64 MiB."""
    needed = max(MIB, math.ceil((frame_size + _HEADER_ROOM) / MIB) * MIB)
    if needed > MAX_PAYLOAD_CEILING:
        raise ValueError(
            f"a frame of {frame_size} bytes does not fit NATS' {MAX_PAYLOAD_CEILING} byte ceiling"
        )
    return needed


def server_config(port: int, monitor_port: int, store_dir: Path, max_payload: int) -> str:
    """Return the nats-server configuration: loopback only, JetStream on with file storage."""
    return "\n".join(
        [
            "host: 127.0.0.1",
            f"port: {port}",
            f"http: 127.0.0.1:{monitor_port}",
            f"max_payload: {max_payload}",
            # Outbound buffer of one client: a fetch of a whole batch must fit.
            f"max_pending: {512 * MIB}",
            'write_deadline: "10s"',
            "jetstream {",
            f'    store_dir: "{store_dir}"',
            f"    max_memory_store: {1024 * MIB}",
            f"    max_file_store: {2 * STREAM_MAX_BYTES}",
            "}",
            "",
        ]
    )


class NatsServer:
    """One nats-server process with JetStream, inside the benchmark's namespace."""

    def __init__(self, binary: Path, work_dir: Path, namespace: LoopbackNamespace, frame_size: int):
        self.work_dir = work_dir
        self.port = _free_port()
        self.monitor_port = _free_port()
        self.max_payload = max_payload_for(frame_size)
        store = work_dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        self.config_path = work_dir / "nats-server.conf"
        self.config_path.write_text(
            server_config(self.port, self.monitor_port, store, self.max_payload)
        )
        self.worker = Worker(
            "nats-server",
            namespace.wrap([str(binary), "-c", str(self.config_path)]),
            work_dir / "nats-server.log",
        )

    @property
    def url(self) -> str:
        """Return the client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        """Start the server; clients retry their connection until it listens."""
        self.worker.start()
        return self

    def stop(self) -> None:
        """Stop the server by its PID."""
        self.worker.stop()


def _free_port() -> int:
    # Ports are free in every fresh namespace; the probe on the host only avoids clashes
    # when no namespace can be made.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _connect(url: str, pending_size: int) -> Any:
    import nats

    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            return await nats.connect(
                url,
                connect_timeout=2,
                allow_reconnect=False,
                pending_size=pending_size,
                max_outstanding_pings=10,
            )
        except (OSError, nats.errors.NoServersError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _create_stream(js: Any, stream: str, max_payload: int) -> None:
    from nats.js import api
    from nats.js.errors import NotFoundError

    with contextlib.suppress(NotFoundError):
        await js.delete_stream(stream)
    await js.add_stream(
        api.StreamConfig(
            name=stream,
            subjects=[SUBJECT],
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            max_msgs=STREAM_MAX_MESSAGES,
            max_bytes=STREAM_MAX_BYTES,
            max_age=STREAM_MAX_AGE_S,
            max_msg_size=max_payload,
            storage=api.StorageType.FILE,
            num_replicas=1,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
    )
    await js.add_consumer(
        stream,
        api.ConsumerConfig(
            durable_name=CONSUMER,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=MAX_ACK_PENDING,
            filter_subject=SUBJECT,
        ),
    )


async def receive(args: argparse.Namespace) -> dict[str, Any]:
    """Create the stream and consumer, then fetch, check and acknowledge frames."""
    client = await _connect(args.nats_url, pending_size=2 * args.size + MIB)
    js = client.jetstream(timeout=30)
    await _create_stream(js, args.stream, max_payload_for(args.size))
    subscription = await js.pull_subscribe_bind(
        CONSUMER,
        args.stream,
        pending_bytes_limit=max(256 * MIB, 4 * args.batch * args.size),
    )
    Path(args.ready_file).write_text(args.nats_url)

    recorder = FrameRecorder(args.size, args.warmup, args.max_frames)
    idle_since = time.monotonic()
    deadline = time.monotonic() + args.duration + 120
    running = True
    while running and time.monotonic() < deadline:
        try:
            messages = await subscription.fetch(args.batch, timeout=1.0)
        except TimeoutError:
            if recorder.received and time.monotonic() - idle_since > 10:
                break
            continue
        # Like the reference setup, the receipt time is when the fetch returns.
        received_ns = time.monotonic_ns()
        idle_since = time.monotonic()
        for message in messages:
            running = recorder.record(message.data, received_ns) and running
            await message.ack()
    await client.close()
    return recorder.result()


async def send(args: argparse.Namespace) -> dict[str, Any]:
    """Publish stamped frames, waiting for each PubAck as Numaflow's writer does."""
    client = await _connect(args.nats_url, pending_size=2 * args.size + MIB)
    js = client.jetstream(timeout=30)
    source = FrameSource(args.size)
    pacer = Pacer(args.rate)
    budget = SendBudget.from_arguments(args)
    started = time.monotonic()
    cpu = CpuClock()
    sent = 0
    failures = 0
    while budget.allows(sent):
        await asyncio.sleep(pacer.delay(sent))
        payload = bytes(source.stamp(sent))
        try:
            await js.publish(SUBJECT, payload, headers={"Nats-Msg-Id": f"frame-{sent}"})
        except Exception as error:  # counted and reported; the run goes on like Numaflow's retry
            failures += 1
            logger.warning("Publishing frame %d failed: %r", sent, error)
            if failures > 20:
                break
        sent += 1
    await js.publish(SUBJECT, bytes(source.end_marker()), headers={"Nats-Msg-Id": "end"})
    await client.close()
    return sender_result(sent, started, cpu, {"publish_failures": failures})
