"""Sender, receiver and attacker processes for the transport fault suite, one per pod namespace.

    python tests/reliability/transportpeer.py receive --host 198.18.0.2 --work DIR --name r1
    python tests/reliability/transportpeer.py send --dns-name NAME --nameserver IP:PORT ...
    python tests/reliability/transportpeer.py attack --targets 198.18.0.2:7470 ...

Every process writes JSON lines to ``<work>/<name>.jsonl``, flushed line by
line so a process killed with SIGKILL loses nothing it recorded, and a
summary to ``<work>/<name>.json`` when it ends. A receiver stops taking
frames from its transport while ``<work>/<name>.stall`` exists, as a UDF
that stops reading does. A sender writes its progress to
``<work>/<name>.progress`` every 100 frames.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any, TextIO

import psutil

from numaflow_rdma import logs

NAMESPACE = "reliability"
PIPELINE = "video"


class Records:
    """A JSON-lines file written and flushed line by line."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a", buffering=1)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


def rss() -> int:
    """Return this process's resident memory in bytes."""
    return int(psutil.Process().memory_info().rss)


def payload(index: int, size: int) -> bytes:
    """Return the payload of frame ``index``: its number, then bytes that depend on it."""
    body = random.Random(index).randbytes(max(0, size - 8))
    return index.to_bytes(8, "little") + body


def run_receiver(arguments: argparse.Namespace) -> int:
    from numaflow_rdma.transport import Receiver

    work: Path = arguments.work
    name: str = arguments.name
    stall = work / f"{name}.stall"
    records = Records(work / f"{name}.jsonl")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver = Receiver(
        arguments.host,
        arguments.port,
        namespace=NAMESPACE,
        pipeline=PIPELINE,
        name=name,
        backend=arguments.backend,
        credits=arguments.credits,
    )
    (work / f"{name}.ready").write_text(str(os.getpid()))
    received = corrupt = 0
    memory: list[int] = []

    def handle(frame: Any) -> None:
        nonlocal received, corrupt
        data = bytes(frame.data)
        ok = zlib.crc32(data) == frame.metadata.get("crc32")
        index = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
        corrupt += not ok
        received += 1
        records.write({"index": index, "sender": frame.sender, "ok": ok, "wall": time.time()})
        if received % 1000 == 0:
            memory.append(rss())

    while not stop.is_set():
        if stall.exists():
            stop.wait(0.05)
            continue
        frame = receiver.receive(timeout=0.1)
        if frame is not None:
            with frame:
                handle(frame)

    # Stop taking connections, then record the frames that had already arrived.
    receiver.close(timeout=2.0)
    for frame in receiver:
        with frame:
            handle(frame)
    records.close()
    summary = {
        "received": received,
        "corrupt": corrupt,
        "rss_samples": memory,
        "metrics": receiver.metrics.snapshot(),
    }
    (work / f"{name}.json").write_text(json.dumps(summary, default=str))
    return 0


def run_sender(arguments: argparse.Namespace) -> int:
    from numaflow_rdma.transport import Sender

    work: Path = arguments.work
    name: str = arguments.name
    records = Records(work / f"{name}.jsonl")
    progress = work / f"{name}.progress"
    sender = Sender(
        arguments.dns_name,
        port=arguments.port,
        nameserver=arguments.nameserver,
        namespace=NAMESPACE,
        pipeline=PIPELINE,
        name=name,
        backend=arguments.backend,
        policy=arguments.policy,
        send_timeout=arguments.send_timeout,
    )
    memory: list[int] = []
    durations_over = 0
    longest = 0.0
    with sender:
        ready = sender.wait_for_peers(arguments.wait_peers, 30.0)
        (work / f"{name}.ready").write_text(str(ready))
        interval = 1.0 / arguments.rate
        started = time.monotonic()
        for index in range(arguments.count):
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            data = payload(index, arguments.size)
            began = time.monotonic()
            result = sender.send(data, metadata={"crc32": zlib.crc32(data)})
            duration = time.monotonic() - began
            longest = max(longest, duration)
            durations_over += duration > arguments.send_timeout
            records.write(
                {
                    "index": index,
                    "sent": result.sent,
                    "peer": result.peer,
                    "reason": result.reason.value if result.reason else None,
                    "duration": round(duration, 4),
                    "wall": time.time(),
                }
            )
            if index % 100 == 0:
                progress.write_text(str(index))
            if index % 1000 == 0:
                memory.append(rss())
        elapsed = time.monotonic() - started
        metrics = sender.metrics.snapshot()
    progress.write_text(str(arguments.count))
    records.close()
    summary = {
        "elapsed_s": elapsed,
        "longest_send_s": longest,
        "sends_over_timeout": durations_over,
        "rss_samples": memory,
        "metrics": metrics,
    }
    (work / f"{name}.json").write_text(json.dumps(summary, default=str))
    return 0


# The attacker: malformed handshakes and frames, and connections that send nothing.


def _preamble(kind: int, header_length: int, payload_length: int = 0) -> bytes:
    """Build a preamble through the transport's own encoder, so only the content is wrong."""
    from numaflow_rdma.transport.protocol import Kind, encode_preamble

    return bytes(encode_preamble(Kind(kind), header_length, payload_length))


def _malformed_handshakes() -> list[tuple[str, bytes]]:
    """Return first messages a broken or hostile client might send, by name."""
    from numaflow_rdma.transport.protocol import MAGIC, PREAMBLE, PROTOCOL_VERSION, Kind

    def hello(header: bytes, declared: int | None = None) -> bytes:
        length = len(header) if declared is None else declared
        return _preamble(Kind.HELLO, length) + header

    deep = b"[" * 2000 + b"]" * 2000
    return [
        ("garbage", bytes(random.Random(1).randbytes(64))),
        ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad-version", PREAMBLE.pack(MAGIC, PROTOCOL_VERSION + 1, int(Kind.HELLO), 2, 0) + b"{}"),
        ("bad-kind", PREAMBLE.pack(MAGIC, PROTOCOL_VERSION, 250, 2, 0) + b"{}"),
        ("not-json", hello(b"{not json")),
        ("json-list", hello(b"[1, 2]")),
        ("wrong-types", hello(b'{"protocol": "x", "namespace": 7, "nonce": []}')),
        ("deep-json", hello(deep)),
        ("huge-header", hello(b"{}", declared=1 << 30)),
        ("short-header", hello(b'{"protocol"', declared=400)),
        ("frame-first", _preamble(Kind.FRAME, 2, 10) + b"{}" + b"0123456789"),
        ("payload-in-hello", _preamble(Kind.HELLO, 2, 1 << 40) + b"{}"),
    ]


def _malformed_frames() -> list[tuple[str, bytes, int, bytes]]:
    """Return bad frames for after a good handshake: name, header, declared and sent payload."""
    good = {"id": "attack", "seq": 0, "ts": 0, "kind": "bytes", "mem": "host"}
    return [
        ("frame-not-json", b"{not json", 0, b""),
        ("frame-wrong-types", json.dumps({**good, "seq": "x", "id": 5}).encode(), 0, b""),
        ("frame-unknown-kind", json.dumps({**good, "kind": "nonsense"}).encode(), 4, b"abcd"),
        ("frame-deep-json", b'{"id": ' + b"[" * 2000 + b"]" * 2000 + b"}", 0, b""),
        # A payload that stops arriving: the sender of it goes silent mid-frame.
        ("frame-short-payload", json.dumps(good).encode(), 1000, b"0123456789"),
        ("frame-too-large", json.dumps(good).encode(), 1 << 40, b""),
    ]


async def _attack_after_handshake(
    host: str, port: int, header: bytes, declared: int, payload: bytes, limit: float
) -> tuple[bool, float]:
    """Handshake properly, send one bad frame; return whether the receiver closed, and when."""
    from numaflow_rdma.transport.backends import open_backend
    from numaflow_rdma.transport.errors import TransportError
    from numaflow_rdma.transport.handshake import Identity, connect_handshake
    from numaflow_rdma.transport.protocol import Kind

    backend = await open_backend("tcp")
    channel = await backend.connect(host, port, 5.0)
    try:
        await connect_handshake(
            channel, Identity(NAMESPACE, PIPELINE, "attacker"), None, f"{host}:{port}"
        )
        began = time.monotonic()
        try:
            await channel._send_parts(_preamble(Kind.FRAME, len(header), declared), header, payload)
        except (TransportError, OSError):
            # The receiver closed first, for example after no heartbeat came in time.
            return True, time.monotonic() - began

        async def drain() -> None:
            # Heartbeats keep arriving until the receiver closes the connection.
            while True:
                preamble = await channel.receive_preamble()
                if preamble.header_length:
                    await channel.receive_header(preamble, 1 << 16)
                if preamble.payload_length:
                    await channel.discard_payload(preamble.payload_length)

        try:
            await asyncio.wait_for(drain(), limit)
        except asyncio.TimeoutError:
            return False, limit
        except (TransportError, OSError):
            pass
        return True, time.monotonic() - began
    finally:
        await channel.close(linger=0.1)


def run_attacker(arguments: argparse.Namespace) -> int:
    """Send every malformed handshake to each target, then hold idle connections open."""
    work: Path = arguments.work
    name: str = arguments.name
    records = Records(work / f"{name}.jsonl")
    targets = [target.rsplit(":", 1) for target in arguments.targets.split(",")]
    limit = arguments.close_limit
    counts: dict[str, Any] = {"connections": 0, "closed_by_receiver": 0}
    counts["handshakes_per_target"] = arguments.rounds * len(_malformed_handshakes())

    def note(kind: str, target: str, closed: bool, seconds: float) -> None:
        counts["connections"] += 1
        counts["closed_by_receiver"] += closed
        records.write({"kind": kind, "target": target, "closed": closed, "seconds": seconds})

    def wait_all(opened: list[tuple[str, str, socket.socket]]) -> None:
        """Wait up to ``limit`` s for the receivers to close ``opened``, noting when each closed."""
        began = time.monotonic()
        waiting = {sock.fileno(): (kind, target, sock) for kind, target, sock in opened}
        with selectors.DefaultSelector() as selector:
            for sock in (entry[2] for entry in opened):
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while waiting and time.monotonic() - began < limit:
                for key, _ in selector.select(timeout=0.05):
                    kind, target, sock = waiting[key.fd]
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        note(kind, target, True, time.monotonic() - began)
                        selector.unregister(sock)
                        del waiting[key.fd]
        for kind, target, _ in waiting.values():
            note(kind, target, False, limit)
        for _, _, sock in opened:
            sock.close()

    # Every bad first message to every target, all connections open at once.
    for round_number in range(arguments.rounds):
        opened: list[tuple[str, str, socket.socket]] = []
        for host, port in targets:
            for kind, data in _malformed_handshakes():
                sock = socket.create_connection((host, int(port)), timeout=5)
                with contextlib.suppress(OSError):
                    sock.sendall(data)
                opened.append((kind, f"{host}:{port}", sock))
        wait_all(opened)
        (work / f"{name}.progress").write_text(str(round_number + 1))

    # Bad frames after a good handshake, one connection each, side by side.
    async def frames() -> None:
        cases = [
            (kind, host, int(port), header, declared, payload)
            for host, port in targets
            for kind, header, declared, payload in _malformed_frames()
        ]
        outcomes = await asyncio.gather(
            *(_attack_after_handshake(*case[1:], limit) for case in cases)
        )
        for case, (closed, seconds) in zip(cases, outcomes, strict=True):
            note(case[0], f"{case[1]}:{case[2]}", closed, seconds)

    asyncio.run(frames())
    counts["frames_per_target"] = len(_malformed_frames())

    # Then connections that open and send nothing.
    idle: list[tuple[str, str, socket.socket]] = []
    for index in range(arguments.idle):
        host, port = targets[index % len(targets)]
        sock = socket.create_connection((host, int(port)), timeout=5)
        idle.append(("idle", f"{host}:{port}", sock))
    counts["idle_per_target"] = dict(collections.Counter(target for _, target, _ in idle))
    wait_all(idle)
    records.close()
    (work / f"{name}.json").write_text(json.dumps(counts))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transportpeer.py")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("receive", "send", "attack"):
        sub = commands.add_parser(command)
        sub.add_argument("--work", type=Path, required=True, help="folder for records")
        sub.add_argument("--name", required=True, help="name of this process in records")
        sub.add_argument("--backend", default="tcp", help="auto, ucx or tcp")
    receive = commands.choices["receive"]
    receive.add_argument("--host", required=True, help="address to listen on")
    receive.add_argument("--port", type=int, default=7470)
    receive.add_argument("--credits", type=int, default=4)
    send = commands.choices["send"]
    send.add_argument("--dns-name", required=True, help="DNS name of the destination vertex")
    send.add_argument("--nameserver", required=True, help="ip:port of the DNS server")
    send.add_argument("--port", type=int, default=7470)
    send.add_argument("--count", type=int, required=True, help="frames to send")
    send.add_argument("--size", type=int, default=1024, help="bytes per frame")
    send.add_argument("--rate", type=float, required=True, help="frames per second")
    send.add_argument("--policy", default="block")
    send.add_argument("--send-timeout", type=float, default=0.5, help="seconds")
    send.add_argument("--wait-peers", type=int, default=1)
    attack = commands.choices["attack"]
    attack.add_argument("--targets", required=True, help="comma-separated ip:port receivers")
    attack.add_argument("--rounds", type=int, default=1, help="times to send each bad handshake")
    attack.add_argument("--idle", type=int, default=32, help="connections that send nothing")
    attack.add_argument(
        "--close-limit", type=float, default=8.0, help="seconds a receiver has to close"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logs.configure("text", "warning", sys.stderr)
    runners = {"receive": run_receiver, "send": run_sender, "attack": run_attacker}
    return runners[arguments.command](arguments)


if __name__ == "__main__":
    sys.exit(main())
