"""One side of a frame benchmark: ``python -m bench.frame_worker send|receive --path PATH``.

Every frame carries a stamp: its sequence number in the first and last 8
bytes and the sender's ``CLOCK_MONOTONIC`` time, in nanoseconds, in bytes 8 to
16, written just before the send call. The receiver reads the clock again
when the whole frame has arrived. Both processes run on one host, where that
clock is shared, so the difference is the one-way latency from send to
receipt. The first ``--warmup`` frames are sent but left out of every figure.

Paths:

- ``socket``: plain TCP, an 8-byte length and then the frame with
  ``sendall``, received with ``recv_into`` into one preallocated buffer;
- ``socket-pingpong``: the same, but the receiver replies to each frame with
  8 bytes and the sender measures the round trip (the latency reference);
- ``jetstream``: NATS JetStream as Numaflow's inter-step buffer, see
  ``bench.jetstream``;
- ``transport-ucx`` and ``transport-tcp``: numaflow-rdma's transport with
  each backend, see ``bench.transport_paths``.

The receiver writes ``--ready-file`` once it listens and ``--result-file`` at
the end; the sender writes its own ``--result-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import CpuClock, summarize, write_json

END_OF_STREAM = 2**64 - 1
_HEADER = struct.Struct("<QQ")
_SEQUENCE = struct.Struct("<Q")
_LENGTH = struct.Struct("<Q")
# A receiver that got frames stops after this many seconds without one; a socket
# receiver gives up on a read that waits longer than this plus the run's duration.
IDLE_TIMEOUT = 10.0
# A transport receiver stops this many seconds after the run's planned duration.
START_ALLOWANCE = 120.0
# A socket receiver waits this long for the sender to connect.
OVERRUN_LIMIT = 60.0


class FrameSource:
    """A preallocated frame that is stamped again before every send."""

    def __init__(self, size: int) -> None:
        if size < 24:
            raise ValueError(f"invalid frame size {size}: frames need at least 24 bytes")
        self.size = size
        rng = np.random.default_rng(7)
        self.frame = rng.integers(0, 256, size=size, dtype=np.uint8)
        self.view = memoryview(self.frame.data).cast("B")

    def stamp(self, sequence: int) -> memoryview:
        """Write the sequence number and the current time into the frame and return it."""
        _HEADER.pack_into(self.view, 0, sequence, time.monotonic_ns())
        _SEQUENCE.pack_into(self.view, self.size - 8, sequence)
        return self.view

    def end_marker(self) -> memoryview:
        """Return the frame stamped as the end of the stream."""
        return self.stamp(END_OF_STREAM)


def byte_view(frame: bytes | bytearray | memoryview | np.ndarray) -> memoryview:
    """Return a flat byte view of a contiguous frame, without copying it."""
    view = frame.data if isinstance(frame, np.ndarray) else memoryview(frame)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class FrameRecorder:
    """Check each received frame's stamp and collect its latency."""

    def __init__(self, size: int, warmup: int, max_frames: int, ends_expected: int = 1) -> None:
        self.size = size
        self.ends_expected = ends_expected
        self.ends = 0
        self.warmup = warmup
        self.latencies_ns = np.zeros(max_frames + warmup + 16, dtype=np.int64)
        self.measured = 0
        self.received = 0
        self.bad_frames = 0
        self.out_of_order = 0
        self.last_sequence = -1
        self.first_measured_send_ns: int | None = None
        self.last_receive_ns: int | None = None
        self.ended = False
        self.cpu = CpuClock()

    def record(
        self, frame: bytes | bytearray | memoryview | np.ndarray, receive_ns: int | None = None
    ) -> bool:
        """Record one frame; return False once the end-of-stream frame arrived."""
        now = receive_ns if receive_ns is not None else time.monotonic_ns()
        view = byte_view(frame)
        if len(view) != self.size:
            self.bad_frames += 1
            return True
        sequence, sent_ns = _HEADER.unpack_from(view, 0)
        if sequence == END_OF_STREAM:
            self.ends += 1
            self.ended = self.ends >= self.ends_expected
            return not self.ended
        (trailer,) = _SEQUENCE.unpack_from(view, self.size - 8)
        if trailer != sequence:
            self.bad_frames += 1
            return True
        self.received += 1
        if sequence < self.last_sequence:
            self.out_of_order += 1
        self.last_sequence = max(self.last_sequence, sequence)
        if sequence < self.warmup:
            return True
        if self.first_measured_send_ns is None:
            self.first_measured_send_ns = sent_ns
        self.last_receive_ns = now
        if self.measured < len(self.latencies_ns):
            self.latencies_ns[self.measured] = now - sent_ns
        self.measured += 1
        return True

    def result(self) -> dict[str, Any]:
        """Return the receiver's figures: frames, frames per second, GB/s and latency in ms."""
        elapsed = 0.0
        if self.first_measured_send_ns is not None and self.last_receive_ns is not None:
            elapsed = (self.last_receive_ns - self.first_measured_send_ns) / 1e9
        fps = self.measured / elapsed if elapsed > 0 else 0.0
        kept = self.latencies_ns[: min(self.measured, len(self.latencies_ns))]
        return {
            "received": self.received,
            "measured": self.measured,
            "bad_frames": self.bad_frames,
            "out_of_order": self.out_of_order,
            "ended": self.ended,
            "elapsed_s": elapsed,
            "first_send_ns": self.first_measured_send_ns,
            "last_receive_ns": self.last_receive_ns,
            "fps": fps,
            "gbps": fps * self.size / 1e9,
            "latency_ms": summarize(kept / 1e6),
            "cpu_s": self.cpu.elapsed(),
        }


class Pacer:
    """The send schedule: back to back, or ``rate`` frames per second from the first."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.started = time.monotonic()

    def delay(self, index: int) -> float:
        """Return how long to wait before frame ``index`` (0 when sending back to back)."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, self.started + index / self.rate - time.monotonic())


class SendBudget:
    """The frames to send: the warm-up, then frames until the duration or the cap runs out."""

    def __init__(self, warmup: int, duration: float, max_frames: int) -> None:
        self.warmup = warmup
        self.duration = duration
        self.max_frames = max_frames
        self.measured_since: float | None = None

    def allows(self, index: int) -> bool:
        """Tell whether frame ``index`` should be sent; the duration starts after the warm-up."""
        if index < self.warmup:
            return True
        if index - self.warmup >= self.max_frames:
            return False
        if self.measured_since is None:
            self.measured_since = time.monotonic()
        return time.monotonic() - self.measured_since < self.duration

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> SendBudget:
        """Build the budget from the worker's options."""
        return cls(args.warmup, args.duration, args.max_frames)


def sender_result(
    sent: int, started: float, cpu: CpuClock, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return the sender's figures: frames sent, wall time and CPU time since ``started``."""
    return {
        "sent": sent,
        "wall_s": time.monotonic() - started,
        "cpu_s": cpu.elapsed(),
        **(extra or {}),
    }


# Plain TCP sockets.


def _recv_exact(connection: socket.socket, view: memoryview) -> bool:
    received = 0
    while received < len(view):
        count = connection.recv_into(view[received:])
        if count == 0:
            return False
        received += count
    return True


def _tune(connection: socket.socket) -> None:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def receive_socket(args: argparse.Namespace, pingpong: bool) -> dict[str, Any]:
    """Receive length-prefixed frames over one TCP connection."""
    recorder = FrameRecorder(args.size, args.warmup, args.max_frames)
    buffer = bytearray(args.size)
    view = memoryview(buffer)
    length = bytearray(_LENGTH.size)
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(OVERRUN_LIMIT)
        Path(args.ready_file).write_text(f"127.0.0.1:{server.getsockname()[1]}")
        connection, _ = server.accept()
    with connection:
        _tune(connection)
        connection.settimeout(IDLE_TIMEOUT + args.duration)
        while _recv_exact(connection, memoryview(length)):
            (size,) = _LENGTH.unpack(length)
            if size != args.size:
                raise ValueError(f"invalid frame length {size}, expected {args.size}")
            if not _recv_exact(connection, view):
                break
            received_ns = time.monotonic_ns()
            if pingpong:
                connection.sendall(length)
            if not recorder.record(view, received_ns):
                break
    return recorder.result()


def send_socket(args: argparse.Namespace, pingpong: bool) -> dict[str, Any]:
    """Send length-prefixed frames over one TCP connection; measure round trips in ping-pong."""
    source = FrameSource(args.size)
    host, port = args.address.rsplit(":", 1)
    prefix = _LENGTH.pack(args.size)
    acknowledgement = bytearray(_LENGTH.size)
    round_trips: list[int] = []
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        _tune(connection)
        pacer = Pacer(args.rate)
        budget = SendBudget.from_arguments(args)
        started = time.monotonic()
        cpu = CpuClock()
        while budget.allows(sent):
            time.sleep(pacer.delay(sent))
            frame = source.stamp(sent)
            begin = time.monotonic_ns()
            connection.sendall(prefix)
            connection.sendall(frame)
            if pingpong:
                if not _recv_exact(connection, memoryview(acknowledgement)):
                    break
                if sent >= args.warmup:
                    round_trips.append(time.monotonic_ns() - begin)
            sent += 1
        connection.sendall(prefix)
        connection.sendall(source.end_marker())
    extra = {"round_trip_ms": summarize(np.asarray(round_trips) / 1e6)} if pingpong else {}
    return sender_result(sent, started, cpu, extra)


# Dispatch.

Runner = Callable[[argparse.Namespace], dict[str, Any]]


def _run_async(
    function: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
) -> Runner:
    def run(args: argparse.Namespace) -> dict[str, Any]:
        return asyncio.run(function(args))

    return run


def _runners(path: str, role: str) -> Runner:
    if path in ("socket", "socket-pingpong"):
        pingpong = path == "socket-pingpong"
        if role == "receive":
            return lambda args: receive_socket(args, pingpong)
        return lambda args: send_socket(args, pingpong)
    if path == "jetstream":
        from bench import jetstream

        return _run_async(jetstream.receive if role == "receive" else jetstream.send)
    if path.startswith("transport-"):
        from bench import transport_paths

        backend = path.removeprefix("transport-")
        if role == "receive":
            return lambda args: transport_paths.receive(args, backend)
        return lambda args: transport_paths.send(args, backend)
    raise ValueError(f"unknown path {path!r}")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the worker's command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.frame_worker")
    parser.add_argument("role", choices=["send", "receive"])
    parser.add_argument(
        "--path",
        required=True,
        help="socket, socket-pingpong, jetstream, transport-ucx or transport-tcp",
    )
    parser.add_argument("--size", type=int, required=True, help="frame size in bytes")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of measured sending")
    parser.add_argument("--warmup", type=int, default=5, help="frames sent first and not measured")
    parser.add_argument("--max-frames", type=int, default=100_000, help="cap on measured frames")
    parser.add_argument("--rate", type=float, default=0.0, help="frames per second; 0 for no pause")
    parser.add_argument("--address", default="", help="receiver address, host:port (senders)")
    parser.add_argument("--addresses", default="", help="receiver addresses, comma-separated")
    parser.add_argument("--ready-file", default="", help="file the receiver writes once it listens")
    parser.add_argument("--result-file", required=True, help="JSON file for the figures")
    parser.add_argument("--nats-url", default="", help="NATS server URL (jetstream)")
    parser.add_argument("--stream", default="", help="JetStream stream name (jetstream)")
    parser.add_argument("--batch", type=int, default=10, help="frames per JetStream fetch")
    parser.add_argument("--senders", type=int, default=1, help="senders that will send (receivers)")
    parser.add_argument(
        "--window",
        type=int,
        default=1,
        help="frames a transport sender keeps on their way at once (transport paths)",
    )
    parser.add_argument(
        "--stop-file",
        default="",
        help="file whose appearance, once no frame is waiting, ends a transport receiver",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one side of a frame benchmark and write its figures."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    result = _runners(args.path, args.role)(args)
    write_json(Path(args.result_file), {"path": args.path, "role": args.role, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
