"""The handshake over an in-memory channel pair: every acceptance and rejection rule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from numaflow_rdma.transport.backends.base import Channel
from numaflow_rdma.transport.errors import HandshakeError, HandshakeRejectedError
from numaflow_rdma.transport.handshake import (
    Identity,
    SenderHello,
    Terms,
    accept_handshake,
    compute_proof,
    connect_handshake,
)

TERMS = Terms(
    credits=4, max_frame_size=1 << 20, max_header_size=4096, heartbeat_interval=0.2, receiver="r"
)
RECEIVER = Identity("ns", "video", "receiver-0")
SENDER = Identity("ns", "video", "sender-0")


class MemoryChannel(Channel):
    """One end of an in-memory byte stream; a fake for the handshake logic only."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.peer_end: MemoryChannel | None = None
        self._incoming = bytearray()
        self._arrived = asyncio.Event()

    async def _send_parts(self, preamble: bytes, header: bytes, payload: Any) -> None:
        assert self.peer_end is not None
        self.peer_end._incoming += (
            preamble + header + (bytes(payload) if payload is not None else b"")
        )
        self.peer_end._arrived.set()

    async def _receive_into(self, buffer: Any) -> None:
        view = memoryview(buffer).cast("B")
        while len(self._incoming) < len(view):
            if self._closed:
                raise self._lost(None, "receiving")
            self._arrived.clear()
            await self._arrived.wait()
        view[:] = self._incoming[: len(view)]
        del self._incoming[: len(view)]

    def abort(self) -> None:
        self._closed = True
        self._arrived.set()
        if self.peer_end is not None and not self.peer_end._closed:
            self.peer_end.abort()


def _pair() -> tuple[MemoryChannel, MemoryChannel]:
    sender, receiver = MemoryChannel("receiver"), MemoryChannel("sender")
    sender.peer_end, receiver.peer_end = receiver, sender
    return sender, receiver


async def _handshake(
    sender_secret: bytes | None,
    receiver_secret: bytes | None,
    sender: Identity = SENDER,
    dialed: str = "198.18.0.2:7470",
    own_host: str | None = "198.18.0.2",
) -> tuple[Any, Any]:
    sender_end, receiver_end = _pair()
    results = await asyncio.gather(
        connect_handshake(sender_end, sender, sender_secret, dialed, timeout=2),
        accept_handshake(receiver_end, RECEIVER, receiver_secret, own_host, TERMS, timeout=2),
        return_exceptions=True,
    )
    return results[0], results[1]


def test_handshake_without_secret() -> None:
    terms, hello = asyncio.run(_handshake(None, None))
    assert terms == Terms(4, 1 << 20, 4096, 0.2, "receiver-0")
    assert hello == SenderHello(name="sender-0", dialed="198.18.0.2:7470")


def test_handshake_with_matching_secret() -> None:
    terms, hello = asyncio.run(_handshake(b"k", b"k"))
    assert isinstance(terms, Terms)
    assert isinstance(hello, SenderHello)


@pytest.mark.parametrize(
    ("sender_secret", "receiver_secret"),
    [(b"wrong", b"right"), (None, b"right"), (b"right", None)],
)
def test_secret_mismatch_fails_both_sides(
    sender_secret: bytes | None, receiver_secret: bytes | None
) -> None:
    sender_result, receiver_result = asyncio.run(_handshake(sender_secret, receiver_secret))
    assert isinstance(sender_result, HandshakeError)
    assert isinstance(receiver_result, HandshakeRejectedError)
    assert receiver_result.reason == "secret"


def test_other_pipeline_is_rejected() -> None:
    stranger = Identity("ns", "other", "s")
    sender_result, receiver_result = asyncio.run(_handshake(None, None, sender=stranger))
    assert isinstance(receiver_result, HandshakeRejectedError)
    assert receiver_result.reason == "identity"
    assert isinstance(sender_result, HandshakeRejectedError)
    assert "pipeline ns/other" in str(sender_result)


def test_other_address_is_rejected() -> None:
    sender_result, receiver_result = asyncio.run(_handshake(None, None, dialed="10.0.0.5:7470"))
    assert isinstance(receiver_result, HandshakeRejectedError)
    assert receiver_result.reason == "address"
    assert isinstance(sender_result, HandshakeRejectedError)


def test_address_check_can_be_skipped() -> None:
    _, hello = asyncio.run(_handshake(None, None, dialed="10.0.0.5:7470", own_host=None))
    assert isinstance(hello, SenderHello)


def test_silent_peer_times_out() -> None:
    async def silent() -> BaseException:
        _, receiver_end = _pair()
        try:
            await accept_handshake(receiver_end, RECEIVER, None, None, TERMS, timeout=0.2)
        except HandshakeRejectedError as error:
            return error
        raise AssertionError("a silent peer passed the handshake")

    error = asyncio.run(silent())
    assert isinstance(error, HandshakeRejectedError)
    assert error.reason == "timeout"
    assert "other than a numaflow-rdma sender" in str(error)


def test_proofs_are_bound_to_role_and_nonces() -> None:
    proof = compute_proof(b"k", "sender", "n1", "n2", SENDER)
    assert proof != compute_proof(b"k", "receiver", "n1", "n2", SENDER)
    assert proof != compute_proof(b"k", "sender", "n1", "n3", SENDER)
    assert proof != compute_proof(b"k", "sender", "n1", "n2", Identity("ns", "other", "x"))
    assert proof == compute_proof(b"k", "sender", "n1", "n2", Identity("ns", "video", "any name"))
