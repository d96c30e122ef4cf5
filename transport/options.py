"""Tuning knobs of senders and receivers, with their defaults and units."""

from __future__ import annotations

import math
from dataclasses import dataclass

from numaflow_rdma.transport.balancing import POLICY_NAMES
from numaflow_rdma.transport.errors import TransportConfigError
from numaflow_rdma.transport.frames import OverflowPolicy
from numaflow_rdma.transport.handshake import DEFAULT_HANDSHAKE_TIMEOUT
from numaflow_rdma.transport.protocol import DEFAULT_MAX_HEADER_SIZE

# 4K RGB float32 in CHW layout is 99.5 MB; this leaves room for that and more.
DEFAULT_MAX_FRAME_SIZE = 256 * 1024 * 1024
DEFAULT_CREDITS = 4
# A peer that sends nothing for PEER_TIMEOUT seconds is declared lost, so a
# dead receiver is noticed within one second, where UCX's own keepalive takes
# about 20 s. Peers send a heartbeat every HEARTBEAT_INTERVAL seconds.
DEFAULT_HEARTBEAT_INTERVAL = 0.2
DEFAULT_PEER_TIMEOUT = 0.8


def _positive(name: str, value: float) -> None:
    if not 0 < value < math.inf:
        raise TransportConfigError(f"invalid {name} {value!r}: expected a positive finite number")


@dataclass(frozen=True, slots=True)
class ReceiverOptions:
    """The settings of a receiver: limits, credits, timeouts."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest payload accepted, in bytes; a larger frame closes its connection."""
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    """Largest frame header (metadata included) accepted, in bytes."""
    credits: int = DEFAULT_CREDITS
    """Frames each sender may have in flight to this receiver; also its receive buffers."""
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    """Seconds between heartbeats to each sender."""
    peer_timeout: float = DEFAULT_PEER_TIMEOUT
    """Seconds of silence after which a sender's connection is dropped."""
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    """Seconds a new connection has to finish the handshake."""
    device_frames: bool = True
    """Deliver CUDA frames in device memory when CuPy or RMM can allocate it."""
    close_timeout: float = 5.0
    """Default seconds ``close()`` waits for senders to finish the frames they are sending."""

    def __post_init__(self) -> None:
        if self.max_frame_size < 0:
            raise TransportConfigError(
                f"invalid max_frame_size {self.max_frame_size}: expected >= 0"
            )
        if self.credits < 1:
            raise TransportConfigError(f"invalid credits {self.credits}: expected at least 1")
        if self.max_header_size < 256:
            raise TransportConfigError(
                f"invalid max_header_size {self.max_header_size}: expected at least 256 bytes"
            )
        for name in ("heartbeat_interval", "peer_timeout", "handshake_timeout", "close_timeout"):
            _positive(name, getattr(self, name))
        if self.peer_timeout <= self.heartbeat_interval:
            raise TransportConfigError(
                f"peer_timeout {self.peer_timeout} must be longer than heartbeat_interval "
                f"{self.heartbeat_interval}"
            )


@dataclass(frozen=True, slots=True)
class SenderOptions:
    """The settings of a sender: peer choice, overflow policy, timeouts."""

    peer_choice: str = "round_robin"
    """``round_robin``, ``least_outstanding`` or ``key_affinity``."""
    policy: OverflowPolicy = OverflowPolicy.BLOCK
    """The action taken when the chosen receiver has no credit."""
    send_timeout: float = 1.0
    """Seconds a frame may wait for a credit (or, with ``block``, for any receiver)."""
    max_queued: int = 1
    """Frames that may wait for a credit per receiver under the drop policies."""
    max_in_flight: int | None = None
    """Frames in flight per receiver; None uses the receiver's credits, a number caps them."""
    connect_timeout: float = 2.0
    """Seconds to open a connection, before the handshake."""
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    """Seconds the handshake may take."""
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    """Seconds between heartbeats to each receiver."""
    peer_timeout: float = DEFAULT_PEER_TIMEOUT
    """Seconds of silence after which a receiver is declared lost."""
    reconnect_initial: float = 0.1
    """Seconds before the first reconnection attempt; doubled after each failure."""
    reconnect_max: float = 5.0
    """Upper bound of the reconnection backoff, in seconds."""
    resolve_retry: float = 1.0
    """Seconds between DNS lookups while lookups fail."""
    close_timeout: float = 5.0
    """Default seconds ``close()`` waits for waiting and outgoing frames."""

    def __post_init__(self) -> None:
        if self.peer_choice not in POLICY_NAMES:
            raise TransportConfigError(
                f"invalid peer_choice {self.peer_choice!r}: expected one of {', '.join(POLICY_NAMES)}"
            )
        try:
            OverflowPolicy(self.policy)
        except ValueError:
            raise TransportConfigError(
                f"invalid policy {self.policy!r}: expected one of "
                f"{', '.join(policy.value for policy in OverflowPolicy)}"
            ) from None
        object.__setattr__(self, "policy", OverflowPolicy(self.policy))
        if self.max_queued < 0:
            raise TransportConfigError(f"invalid max_queued {self.max_queued}: expected >= 0")
        if self.policy is OverflowPolicy.DROP_OLDEST and self.max_queued < 1:
            raise TransportConfigError(
                "policy drop_oldest needs max_queued >= 1: with no frame waiting there is no "
                "older frame to drop"
            )
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise TransportConfigError(f"invalid max_in_flight {self.max_in_flight}: expected >= 1")
        for name in (
            "send_timeout",
            "connect_timeout",
            "handshake_timeout",
            "heartbeat_interval",
            "peer_timeout",
            "reconnect_initial",
            "reconnect_max",
            "resolve_retry",
            "close_timeout",
        ):
            _positive(name, getattr(self, name))
        if self.peer_timeout <= self.heartbeat_interval:
            raise TransportConfigError(
                f"peer_timeout {self.peer_timeout} must be longer than heartbeat_interval "
                f"{self.heartbeat_interval}"
            )
