"""The handshake that opens every connection, before any frame is accepted.

Four messages, whatever the backend::

    sender                                  receiver
    HELLO     protocol, namespace, pipeline,
              sender name, nonce, address dialed  ->
                                            <-  CHALLENGE  nonce, receiver name, proof
    AUTH      proof                         ->
                                            <-  WELCOME    credits, max frame size, ...
                                                or REJECT  reason

The protocol version is in every preamble. The receiver rejects a sender of
another pipeline (namespace and pipeline name must match), a sender that
dialed an address other than the receiver's RDMA address, and, when it has a
shared secret, a sender whose proof is missing or wrong. A proof is
HMAC-SHA256 over the protocol, the role, both nonces, namespace and
pipeline, so it cannot be replayed on another connection or reflected back.
The sender checks the receiver's proof the same way when it has a secret, so
a secret on one side only fails on both.

A backend may add fields to HELLO and WELCOME (``Channel.handshake_offer``
and the methods after it): the ucx backend offers and grants its UCX payload
path there, and the sender checks that path before the handshake ends.

A handshake that does not finish within its timeout fails; the most common
cause is a peer that does not speak this protocol, such as an older release.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from numaflow_rdma.transport.backends.base import Channel
from numaflow_rdma.transport.errors import (
    ConnectionLostError,
    HandshakeError,
    HandshakeRejectedError,
    ProtocolError,
)
from numaflow_rdma.transport.protocol import (
    MAX_CONTROL_HEADER_SIZE,
    PROTOCOL_VERSION,
    Kind,
    decode_json,
    encode_json,
    require_field,
)

T = TypeVar("T")

DEFAULT_HANDSHAKE_TIMEOUT = 5.0


class RejectReason:
    """The reason codes of a rejected connection, as counted in metrics."""

    MALFORMED = "malformed"
    PROTOCOL = "protocol"
    IDENTITY = "identity"
    ADDRESS = "address"
    SECRET = "secret"
    TIMEOUT = "timeout"
    FRAME_TOO_LARGE = "frame_too_large"


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity of a sender or receiver: its pipeline, and a name for logs."""

    namespace: str
    pipeline: str
    name: str

    @property
    def pipeline_path(self) -> str:
        """Return ``namespace/pipeline``."""
        return f"{self.namespace}/{self.pipeline}"


@dataclass(frozen=True, slots=True)
class Terms:
    """The terms a receiver grants a sender in WELCOME."""

    credits: int
    max_frame_size: int
    max_header_size: int
    heartbeat_interval: float
    receiver: str


@dataclass(frozen=True, slots=True)
class SenderHello:
    """The details of a sender that passed the handshake."""

    name: str
    dialed: str


def compute_proof(
    secret: bytes, role: str, sender_nonce: str, receiver_nonce: str, identity: Identity
) -> str:
    """Return the hex HMAC-SHA256 proof of ``role`` (sender or receiver) for one connection."""
    message = "\n".join(
        [
            f"numaflow-rdma/{PROTOCOL_VERSION}",
            role,
            sender_nonce,
            receiver_nonce,
            identity.namespace,
            identity.pipeline,
        ]
    ).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


async def _receive_control(channel: Channel, expected: Kind) -> dict[str, Any]:
    preamble = await channel.receive_preamble()
    if preamble.payload_length:
        raise ProtocolError(
            f"{preamble.kind.name} message from {channel.peer} carries a payload of "
            f"{preamble.payload_length} bytes during the handshake"
        )
    header = await channel.receive_header(preamble, MAX_CONTROL_HEADER_SIZE)
    document = decode_json(header, preamble.kind.name)
    if preamble.kind is Kind.REJECT:
        reason = str(document.get("reason", "no reason given"))
        raise HandshakeRejectedError(
            f"{channel.peer} rejected the handshake: {reason}",
            channel.peer,
            str(document.get("code", "")),
        )
    if preamble.kind is not expected:
        raise ProtocolError(
            f"expected {expected.name} from {channel.peer} during the handshake, "
            f"got {preamble.kind.name}"
        )
    return document


async def _within(
    coroutine: Coroutine[Any, Any, T], timeout: float, channel: Channel, role: str
) -> T:
    try:
        return await asyncio.wait_for(coroutine, timeout)
    except asyncio.TimeoutError:
        channel.abort()
        if role == "receiver":
            hint = (
                "check that a numaflow-rdma receiver listens there and not another service, "
                "and that its host is not overloaded"
            )
        else:
            hint = "the peer may be a program other than a numaflow-rdma sender, or overloaded"
        raise HandshakeRejectedError(
            f"the handshake with {channel.peer} did not finish within {timeout:g} s; {hint}",
            channel.peer,
            RejectReason.TIMEOUT,
        ) from None


async def connect_handshake(
    channel: Channel,
    identity: Identity,
    secret: bytes | None,
    dialed: str,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> Terms:
    """Run the sender's side; return the receiver's terms or raise HandshakeError."""
    try:
        return await _within(
            _connect(channel, identity, secret, dialed), timeout, channel, "receiver"
        )
    except HandshakeError:
        raise
    except (ProtocolError, ConnectionLostError) as error:
        channel.abort()
        raise HandshakeError(
            f"handshake with {channel.peer} failed: {error}", channel.peer
        ) from error


async def _connect(
    channel: Channel, identity: Identity, secret: bytes | None, dialed: str
) -> Terms:
    # First, introduce ourselves with a fresh nonce.
    sender_nonce = secrets.token_hex(16)
    hello = {
        "protocol": PROTOCOL_VERSION,
        "namespace": identity.namespace,
        "pipeline": identity.pipeline,
        "sender": identity.name,
        "nonce": sender_nonce,
        "address": dialed,
        **channel.handshake_offer(),
    }
    await channel.send(Kind.HELLO, encode_json(hello))

    # Then check the receiver's proof before proving anything ourselves.
    challenge = await _receive_control(channel, Kind.CHALLENGE)
    receiver_nonce = require_field(challenge, "nonce", str, "CHALLENGE")
    receiver_proof = challenge.get("proof")
    proof = None
    if secret is not None:
        expected = compute_proof(secret, "receiver", sender_nonce, receiver_nonce, identity)
        if not isinstance(receiver_proof, str) or not hmac.compare_digest(receiver_proof, expected):
            await _reject(
                channel, "the receiver did not prove the shared secret", RejectReason.SECRET
            )
            raise HandshakeError(
                f"{channel.peer} did not prove the shared secret: it has none or another one; "
                "give both vertices the same secret",
                channel.peer,
            )
        proof = compute_proof(secret, "sender", sender_nonce, receiver_nonce, identity)
    await channel.send(Kind.AUTH, encode_json({"proof": proof}))

    # Finally, the receiver's terms.
    welcome = await _receive_control(channel, Kind.WELCOME)
    credits = require_field(welcome, "credits", int, "WELCOME")
    max_frame_size = require_field(welcome, "max_frame_size", int, "WELCOME")
    max_header_size = require_field(welcome, "max_header_size", int, "WELCOME")
    interval = welcome.get("heartbeat_interval")
    if credits < 1 or max_frame_size < 0 or max_header_size < 1:
        raise ProtocolError(f"invalid WELCOME from {channel.peer}: {welcome}")
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
        raise ProtocolError(
            f"invalid heartbeat_interval {interval!r} in WELCOME from {channel.peer}"
        )
    await channel.handshake_complete(welcome)
    return Terms(
        credits=credits,
        max_frame_size=max_frame_size,
        max_header_size=max_header_size,
        heartbeat_interval=float(interval),
        receiver=str(challenge.get("receiver", "")),
    )


async def accept_handshake(
    channel: Channel,
    identity: Identity,
    secret: bytes | None,
    own_host: str | None,
    terms: Terms,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> SenderHello:
    """Run the receiver's side; return the sender's hello or raise HandshakeRejectedError.

    ``own_host`` is the receiver's RDMA address; a sender that dialed
    another address is rejected. None skips the check (a receiver listening
    on every address).
    """
    try:
        return await _within(
            _accept(channel, identity, secret, own_host, terms), timeout, channel, "sender"
        )
    except HandshakeError:
        raise
    except ProtocolError as error:
        code = RejectReason.PROTOCOL if "version" in str(error) else RejectReason.MALFORMED
        await _reject(channel, str(error), code)
        raise HandshakeRejectedError(
            f"malformed handshake from {channel.peer}: {error}", channel.peer, code
        ) from error
    except ConnectionLostError as error:
        raise HandshakeRejectedError(
            f"the handshake with {channel.peer} broke off: {error}",
            channel.peer,
            RejectReason.MALFORMED,
        ) from error


async def _accept(
    channel: Channel, identity: Identity, secret: bytes | None, own_host: str | None, terms: Terms
) -> SenderHello:
    # First, the sender's hello: same pipeline, and dialed our RDMA address.
    hello = await _receive_control(channel, Kind.HELLO)
    namespace = require_field(hello, "namespace", str, "HELLO")
    pipeline = require_field(hello, "pipeline", str, "HELLO")
    sender_nonce = require_field(hello, "nonce", str, "HELLO")
    name = str(hello.get("sender", ""))
    dialed = str(hello.get("address", ""))
    channel.peer = f"{name or 'unnamed sender'} via {channel.peer}"
    if (namespace, pipeline) != (identity.namespace, identity.pipeline):
        await _refuse(
            channel,
            f"sender belongs to pipeline {namespace}/{pipeline}, this receiver to "
            f"{identity.pipeline_path}",
            RejectReason.IDENTITY,
        )
    if own_host is not None and not _same_host(dialed, own_host):
        await _refuse(
            channel,
            f"sender dialed {dialed or 'an unstated address'}, but this receiver takes frames "
            f"only on its RDMA address {own_host}",
            RejectReason.ADDRESS,
        )

    # Then prove our secret, if any, and ask for the sender's proof.
    receiver_nonce = secrets.token_hex(16)
    proof = None
    if secret is not None:
        proof = compute_proof(secret, "receiver", sender_nonce, receiver_nonce, identity)
    await channel.send(
        Kind.CHALLENGE,
        encode_json({"nonce": receiver_nonce, "receiver": identity.name, "proof": proof}),
    )
    auth = await _receive_control(channel, Kind.AUTH)
    if secret is not None:
        expected = compute_proof(secret, "sender", sender_nonce, receiver_nonce, identity)
        offered = auth.get("proof")
        if not isinstance(offered, str) or not hmac.compare_digest(offered, expected):
            await _refuse(
                channel,
                "authentication failed: the shared secret is missing or wrong",
                RejectReason.SECRET,
            )

    # Finally, the terms that bound what the sender may send.
    welcome = {
        "credits": terms.credits,
        "max_frame_size": terms.max_frame_size,
        "max_header_size": terms.max_header_size,
        "heartbeat_interval": terms.heartbeat_interval,
        **channel.handshake_grant(hello),
    }
    await channel.send(Kind.WELCOME, encode_json(welcome))
    return SenderHello(name=name, dialed=dialed)


def _same_host(dialed: str, own_host: str) -> bool:
    host = dialed.rsplit(":", 1)[0].strip("[]") if dialed else ""
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(own_host)
    except ValueError:
        return False


async def _reject(channel: Channel, reason: str, code: str) -> None:
    """Tell the peer why, as far as the connection still allows."""
    with contextlib.suppress(ConnectionLostError, asyncio.TimeoutError):
        await asyncio.wait_for(
            channel.send(Kind.REJECT, encode_json({"reason": reason, "code": code})), 1.0
        )


async def _refuse(channel: Channel, reason: str, code: str) -> None:
    await _reject(channel, reason, code)
    raise HandshakeRejectedError(f"rejected {channel.peer}: {reason}", channel.peer, code)
