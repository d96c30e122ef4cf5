"""The ucx backend's payload path: UCX worker endpoints beside a TCP control connection.

These tests cover what the tcp backend does not have. A peer dies while a
payload is on its UCX endpoint, or sends a UCX message whose length differs
from its frame header. UCX cannot deliver, so payloads fall back to TCP.
Sender and receiver use different backends. An idle connection costs no CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from netnamespaces import PYTHON, REPO, Topology, requires_root, run_isolated, wait_for_file

from numaflow_rdma.transport import DropReason, Receiver, Sender, SendResult
from numaflow_rdma.transport.backends import Channel, open_backend
from numaflow_rdma.transport.backends.tcp import TcpChannel
from numaflow_rdma.transport.handshake import Identity, connect_handshake
from numaflow_rdma.transport.protocol import Kind, encode_preamble
from numaflow_rdma.transport.runtime import get_runtime

pytestmark = [pytest.mark.ucx, pytest.mark.netns, requires_root]

IDENTITY = {"namespace": "ns", "pipeline": "video"}
FRAME_HEADER = json.dumps({"id": "x", "seq": 0, "ts": 0, "kind": "bytes", "mem": "host"}).encode()


def _handshaken_channel(port: int) -> Channel:
    """Return a ucx channel that passed the handshake, so its payloads go to UCX."""

    async def connect() -> Channel:
        backend = await open_backend("ucx")
        channel = await backend.connect("127.0.0.1", port, 5.0)
        identity = Identity(IDENTITY["namespace"], IDENTITY["pipeline"], "raw")
        await connect_handshake(channel, identity, None, f"127.0.0.1:{port}")
        return channel

    return get_runtime().call(connect(), 15)


def _wait_until(condition: Any, timeout: float, what: str) -> float:
    """Wait until ``condition()`` is true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)
    return time.monotonic() - started


def _send_and_check(sender: Sender, receiver: Receiver, payload: bytes) -> None:
    assert sender.send(payload, timeout=10).sent
    frame = receiver.receive(timeout=10)
    assert frame is not None
    assert bytes(frame.data) == payload
    frame.release()


def _check_sender_dies_mid_frame() -> dict[str, Any]:
    # A peer timeout far above the test's limits: only the end of the TCP
    # connection can explain a quick disconnect.
    with Receiver("127.0.0.1", 0, backend="ucx", peer_timeout=30.0, **IDENTITY) as receiver:
        channel = _handshaken_channel(receiver.port)
        _wait_until(lambda: receiver.connection_count == 1, 5, "the connection")

        # The header announces a payload that never comes over UCX.
        preamble = encode_preamble(Kind.FRAME, len(FRAME_HEADER), 1 << 20)
        get_runtime().call(TcpChannel._send_parts(channel, preamble, FRAME_HEADER, None), 5)
        time.sleep(0.3)
        assert receiver.connection_count == 1
        get_runtime().call_soon(channel.abort)
        noticed = _wait_until(lambda: receiver.connection_count == 0, 10, "the disconnect")

        with Sender(f"127.0.0.1:{receiver.port}", backend="ucx", **IDENTITY) as sender:
            _send_and_check(sender, receiver, b"after the dead sender")
        return {"noticed_s": noticed, "received": receiver.metrics.snapshot()["frames_received"]}


def test_sender_dying_mid_frame_is_noticed_at_once() -> None:
    report = run_isolated(_check_sender_dies_mid_frame)
    assert report["noticed_s"] < 2.0
    assert report["received"] == 1


def _check_receiver_dies_mid_frame(work: str) -> dict[str, Any]:
    ready = Path(work) / "receiver.port"
    command = [
        PYTHON,
        "-m",
        "numaflow_rdma.transport.bench_peer",
        "receive",
        "--backend",
        "ucx",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--namespace",
        IDENTITY["namespace"],
        "--pipeline",
        IDENTITY["pipeline"],
        "--ready-file",
        str(ready),
        "--duration",
        "60",
    ]
    log = (Path(work) / "receiver.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = int(wait_for_file(ready, 30, process))
        options = {"peer_timeout": 30.0, "send_timeout": 20.0}
        with Sender(f"127.0.0.1:{port}", backend="ucx", **options, **IDENTITY) as sender:
            assert sender.wait_for_peers(1, 20) == 1
            assert sender.send(b"warm-up", timeout=10).sent

            # A stopped receiver cannot take the payload, so its send stays open.
            os.kill(process.pid, signal.SIGSTOP)
            results: list[SendResult] = []
            frame = np.ones(8 << 20, dtype=np.uint8)
            sending = threading.Thread(target=lambda: results.append(sender.send(frame)))
            sending.start()
            time.sleep(0.5)
            pending = sending.is_alive()

            os.kill(process.pid, signal.SIGKILL)
            started = time.monotonic()
            sending.join(10)
            took = time.monotonic() - started
            after = sender.send(b"no receiver now", timeout=0.5)
            snapshot = sender.metrics.snapshot()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        log.close()
    return {
        "pending": pending,
        "took_s": took,
        "reason": results[0].reason if results else None,
        "after": after.reason,
        "sent": snapshot["frames_sent"],
        "dropped": snapshot["frames_dropped"],
    }


def test_receiver_dying_mid_frame_drops_the_frame(tmp_path: Path) -> None:
    report = run_isolated(_check_receiver_dies_mid_frame, str(tmp_path), timeout=120)
    assert report["pending"], "the frame was not in flight when the receiver died"
    assert report["reason"] is DropReason.PEER_LOST
    assert report["took_s"] < 2.0
    assert report["after"] in (DropReason.NO_PEER, DropReason.TIMEOUT)
    # Every frame is counted once: the warm-up as sent, the other two as dropped.
    assert report["sent"] == 1
    assert sum(report["dropped"].values()) == 2


def _check_length_mismatch() -> dict[str, int]:
    with Receiver("127.0.0.1", 0, backend="ucx", **IDENTITY) as receiver:
        channel = _handshaken_channel(receiver.port)
        # The header announces 100 bytes; the UCX message carries 200.
        preamble = encode_preamble(Kind.FRAME, len(FRAME_HEADER), 100)
        payload = np.zeros(200, dtype=np.uint8)
        get_runtime().submit(channel._send_parts(preamble, FRAME_HEADER, payload))
        _wait_until(
            lambda: receiver.metrics.snapshot()["connections_rejected"].get("malformed", 0) == 1,
            10,
            "the rejection",
        )
        get_runtime().call_soon(channel.abort)
        with Sender(f"127.0.0.1:{receiver.port}", backend="ucx", **IDENTITY) as sender:
            _send_and_check(sender, receiver, b"after the liar")
        snapshot = receiver.metrics.snapshot()
        return {"received": snapshot["frames_received"]}


def test_payload_length_must_match_header() -> None:
    report = run_isolated(_check_length_mismatch)
    assert report["received"] == 1


def _check_mixed_backends() -> list[str]:
    problems = []
    rng = np.random.default_rng(3)
    for receiving, sending in (("ucx", "tcp"), ("tcp", "ucx")):
        with (
            Receiver("127.0.0.1", 0, backend=receiving, **IDENTITY) as receiver,
            Sender(f"127.0.0.1:{receiver.port}", backend=sending, **IDENTITY) as sender,
        ):
            for size in (0, 1000, 6_220_800):
                payload = rng.integers(0, 256, size, dtype=np.uint8)
                if not sender.send(payload, timeout=10).sent:
                    problems.append(f"{sending} to {receiving}: {size} bytes not sent")
                    continue
                frame = receiver.receive(timeout=10)
                if frame is None or not np.array_equal(frame.data, payload):
                    problems.append(f"{sending} to {receiving}: {size} bytes differ")
                if frame is not None:
                    frame.release()
    return problems


def test_tcp_and_ucx_backends_talk_over_tcp() -> None:
    assert run_isolated(_check_mixed_backends) == []


def _check_idle_cost() -> float:
    with (
        Receiver("127.0.0.1", 0, backend="ucx", **IDENTITY) as receiver,
        Sender(f"127.0.0.1:{receiver.port}", backend="ucx", **IDENTITY) as sender,
    ):
        _send_and_check(sender, receiver, b"x" * 100_000)
        before = os.times()
        time.sleep(2.0)
        after = os.times()
    return (after.user - before.user) + (after.system - before.system)


def test_idle_connection_costs_no_cpu() -> None:
    # Heartbeats every 0.2 s cost milliseconds; a busy-polled UCX worker costs a core.
    assert run_isolated(_check_idle_cost) < 0.3


def test_undeliverable_ucx_falls_back_to_tcp(tmp_path: Path) -> None:
    # Namespaces that share one IPC namespace make UCX pick shared memory, which
    # cannot deliver between network namespaces (UCX 1.21).
    with Topology() as net:
        address = net.add_pod("r1")
        net.add_pod("s1")
        receiver_arguments = [
            "-m",
            "numaflow_rdma.transport.bench_peer",
            "receive",
            "--backend",
            "ucx",
            "--host",
            address,
            "--port",
            "7470",
            "--records",
            str(tmp_path / "r1.jsonl"),
            "--ready-file",
            str(tmp_path / "r1.ready"),
        ]
        receiver = net.start("r1", receiver_arguments, tmp_path / "r1.log", shared_ipc=True)
        wait_for_file(tmp_path / "r1.ready", 30, receiver)
        sender_arguments = [
            "-m",
            "numaflow_rdma.transport.bench_peer",
            "send",
            "--backend",
            "ucx",
            "--peers",
            f"{address}:7470",
            "--count",
            "20",
            "--size",
            str(1 << 20),
            "--verify",
            "--wait-timeout",
            "30",
            "--summary",
            str(tmp_path / "s1.json"),
        ]
        sender = net.start("s1", sender_arguments, tmp_path / "s1.log", shared_ipc=True)
        assert sender.wait(120) == 0, (tmp_path / "s1.log").read_text()[-3000:]
        time.sleep(0.5)
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(30)
    summary = json.loads((tmp_path / "s1.json").read_text())
    assert summary["outcomes"] == {"sent": 20}
    records = [json.loads(line) for line in (tmp_path / "r1.jsonl").read_text().splitlines()]
    assert len(records) == 20
    assert all(record["ok"] for record in records)
    assert "UCX did not deliver a check message" in (tmp_path / "s1.log").read_text()
