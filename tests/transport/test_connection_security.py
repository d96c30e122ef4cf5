"""Bad peers are rejected while good senders carry on, over TCP and UCX.

A raw channel from the backend plays the misbehaving peer: it sends what a
broken or hostile client would, with nothing of the sender's checks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import time
from typing import Any

import numpy as np
import pytest
from netnamespaces import BACKENDS, ip, run_isolated

from numaflow_rdma.transport import DropReason, Receiver, Sender
from numaflow_rdma.transport.backends import Channel, open_backend
from numaflow_rdma.transport.handshake import Identity, connect_handshake
from numaflow_rdma.transport.protocol import MAGIC, PROTOCOL_VERSION, Kind, encode_preamble
from numaflow_rdma.transport.runtime import get_runtime

IDENTITY = {"namespace": "ns", "pipeline": "video"}


def _raw_channel(backend: str, port: int, host: str = "127.0.0.1") -> Channel:
    async def connect() -> Channel:
        opened = await open_backend(backend)
        return await opened.connect(host, port, 5.0)

    return get_runtime().call(connect())


def _send_raw(channel: Channel, preamble: bytes, header: bytes = b"", payload: Any = None) -> None:
    get_runtime().call(channel._send_parts(preamble, header, payload), 10)


def _wait_for_rejection(receiver: Receiver, reason: str, count: int = 1) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rejected: dict[str, int] = receiver.metrics.snapshot()["connections_rejected"]
        if rejected.get(reason, 0) >= count:
            return rejected
        time.sleep(0.05)
    raise AssertionError(
        f"no {reason!r} rejection within 10 s: {receiver.metrics.snapshot()['connections_rejected']}"
    )


def _send_and_receive(sender: Sender, receiver: Receiver, payload: bytes) -> None:
    result = sender.send(payload, timeout=5)
    assert result.sent, result
    frame = receiver.receive(timeout=10)
    assert frame is not None
    assert bytes(frame.data) == payload
    frame.release()


def _check_malformed(backend: str) -> None:
    with (
        Receiver("127.0.0.1", 0, backend=backend, **IDENTITY) as receiver,
        Sender(f"127.0.0.1:{receiver.port}", backend=backend, **IDENTITY) as sender,
    ):
        _send_and_receive(sender, receiver, b"before")

        # Bad magic, then a version from the future, then a header that is not JSON,
        # then a header length far above the handshake limit.
        _send_raw(_raw_channel(backend, receiver.port), b"GET / HTTP/1.1\r\n")
        _wait_for_rejection(receiver, "malformed", 1)
        future = struct.pack("!2sBBIQ", MAGIC, PROTOCOL_VERSION + 1, int(Kind.HELLO), 2, 0)
        _send_raw(_raw_channel(backend, receiver.port), future, b"{}")
        _wait_for_rejection(receiver, "protocol", 1)
        _send_raw(
            _raw_channel(backend, receiver.port), encode_preamble(Kind.HELLO, 9), b"not json!"
        )
        _wait_for_rejection(receiver, "malformed", 2)
        _send_raw(_raw_channel(backend, receiver.port), encode_preamble(Kind.HELLO, 1 << 30))
        _wait_for_rejection(receiver, "malformed", 3)

        _send_and_receive(sender, receiver, b"after")
        assert receiver.connection_count == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_malformed_handshake_is_rejected(backend: str) -> None:
    run_isolated(_check_malformed, backend)


def _check_plain_tcp_garbage() -> None:
    with Receiver("127.0.0.1", 0, backend="tcp", **IDENTITY) as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as client:
            client.sendall(b"\x16\x03\x01" + b"\x00" * 64)
            reply = client.recv(4096)
            # The receiver explains in a REJECT message, then closes.
            assert reply[:2] == MAGIC
            assert reply[3] == Kind.REJECT
            assert b"magic" in reply
            assert client.recv(4096) == b""
        _wait_for_rejection(receiver, "malformed")


def test_tcp_garbage_gets_reject_and_close() -> None:
    run_isolated(_check_plain_tcp_garbage)


def _check_secrets(backend: str) -> None:
    secured = {**IDENTITY, "backend": backend, "secret": "pipeline-secret"}
    quick = {"policy": "drop_newest", "connect_timeout": 1.0, "handshake_timeout": 2.0}
    with Receiver("127.0.0.1", 0, **secured) as receiver:
        peer = f"127.0.0.1:{receiver.port}"
        with Sender(peer, **secured) as good:
            _send_and_receive(good, receiver, b"good")
            with Sender(peer, backend=backend, secret="guess", **quick, **IDENTITY) as wrong:
                assert wrong.send(b"x").reason is DropReason.NO_PEER
            with Sender(peer, backend=backend, **quick, **IDENTITY) as missing:
                assert missing.send(b"x").reason is DropReason.NO_PEER
            rejected = _wait_for_rejection(receiver, "secret", 2)
            assert set(rejected) == {"secret"}
            _send_and_receive(good, receiver, b"still good")

    # A secret on the sender only fails too: the receiver cannot prove it.
    with Receiver("127.0.0.1", 0, backend=backend, **IDENTITY) as open_receiver:
        with Sender(
            f"127.0.0.1:{open_receiver.port}", backend=backend, secret="s", **quick, **IDENTITY
        ) as sender:
            assert sender.send(b"x").reason is DropReason.NO_PEER
        _wait_for_rejection(open_receiver, "secret")


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_or_missing_secret_is_rejected(backend: str) -> None:
    run_isolated(_check_secrets, backend)


def _check_identity(backend: str) -> None:
    quick = {"policy": "drop_newest", "connect_timeout": 1.0}
    with Receiver("127.0.0.1", 0, backend=backend, **IDENTITY) as receiver:
        peer = f"127.0.0.1:{receiver.port}"
        with Sender(peer, backend=backend, namespace="ns", pipeline="other", **quick) as stranger:
            assert stranger.send(b"x").reason is DropReason.NO_PEER
        _wait_for_rejection(receiver, "identity")


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_pipeline_is_rejected(backend: str) -> None:
    run_isolated(_check_identity, backend)


def _check_oversized(backend: str) -> None:
    limit = 1 << 20
    with (
        Receiver("127.0.0.1", 0, backend=backend, max_frame_size=limit, **IDENTITY) as receiver,
        Sender(f"127.0.0.1:{receiver.port}", backend=backend, **IDENTITY) as good,
    ):
        _send_and_receive(good, receiver, b"before")

        # A client that skips the sender's own size check.
        channel = _raw_channel(backend, receiver.port)
        identity = Identity("ns", "video", "oversized")
        get_runtime().call(
            connect_handshake(channel, identity, None, f"127.0.0.1:{receiver.port}"), 10
        )
        header = json.dumps({"id": "x", "seq": 0, "ts": 0, "kind": "bytes", "mem": "host"}).encode()
        payload = np.zeros(limit + 1, dtype=np.uint8)
        preamble = encode_preamble(Kind.FRAME, len(header), payload.nbytes)
        with contextlib.suppress(Exception):
            _send_raw(channel, preamble, header, payload)
        _wait_for_rejection(receiver, "frame_too_large")
        assert receiver.metrics.dropped("too_large") == 1

        _send_and_receive(good, receiver, b"after")


@pytest.mark.parametrize("backend", BACKENDS)
def test_oversized_frame_is_rejected(backend: str) -> None:
    run_isolated(_check_oversized, backend)


def _check_address(backend: str) -> None:
    # The receiver's RDMA address is on its own interface, as in a pod. A
    # sender that reaches the receiver through loopback is refused by the TCP
    # listener, which both backends bind to the RDMA address only.
    rdma_address = "198.18.1.1"
    ip("link", "add", "rdma0", "type", "veth", "peer", "name", "rdma0-peer")
    ip("addr", "add", f"{rdma_address}/24", "dev", "rdma0")
    ip("link", "set", "rdma0", "up")
    ip("link", "set", "rdma0-peer", "up")
    quick = {"policy": "drop_newest", "connect_timeout": 1.0}
    with Receiver(rdma_address, 0, backend=backend, **IDENTITY) as receiver:
        with Sender(f"127.0.0.1:{receiver.port}", backend=backend, **quick, **IDENTITY) as stray:
            assert stray.send(b"x").reason is DropReason.NO_PEER
        assert receiver.connection_count == 0
        with Sender(f"{rdma_address}:{receiver.port}", backend=backend, **IDENTITY) as direct:
            _send_and_receive(direct, receiver, b"direct")


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_interface_is_useless(backend: str) -> None:
    run_isolated(_check_address, backend)


def test_closing_sender_closes_its_unfinished_handshake() -> None:
    # A listener that accepts and never replies keeps the sender inside its handshake.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]
        sender = Sender(f"127.0.0.1:{port}", backend="tcp", handshake_timeout=60.0, **IDENTITY)
        try:
            accepted, _ = listener.accept()
        finally:
            sender.close(timeout=5.0)
        with accepted:
            accepted.settimeout(5)
            received = b""
            started = time.monotonic()
            for _ in range(1000):
                chunk = accepted.recv(65536)
                if not chunk:
                    break
                received += chunk
            waited = time.monotonic() - started

    # The HELLO arrived, then the connection ended when the sender closed.
    assert received.startswith(MAGIC)
    assert waited < 5


def test_sender_logs_when_no_receiver_was_ready(caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    # Nothing listens on the port now, so every connection is refused.
    caplog.set_level(logging.INFO, logger="numaflow_rdma.transport")

    with Sender(f"127.0.0.1:{port}", backend="tcp", connect_timeout=0.3, **IDENTITY) as sender:
        result = sender.send(b"x", timeout=0.2)

    assert result.reason is DropReason.NO_PEER
    assert f"No receiver of 127.0.0.1:{port} was ready within 0.3 s" in caplog.text
