"""Frames on the UDF side: the result of ``send`` and the frames a receiver delivers."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from numaflow_rdma.transport.protocol import Memory


class DropReason(str, enum.Enum):
    """The reason a frame was not delivered, also the ``reason`` label of the drop counter."""

    NO_PEER = "no_peer"
    """No receiver was connected (DNS lists none, or none could be reached)."""
    TIMEOUT = "timeout"
    """The frame waited ``send_timeout`` seconds for a credit without getting one."""
    QUEUE_FULL = "queue_full"
    """``drop_newest``: the receiver had no credit and ``max_queued`` frames already waited."""
    SUPERSEDED = "superseded"
    """``drop_oldest``: a newer frame took this waiting frame's place."""
    PEER_LOST = "peer_lost"
    """The receiver was lost while the frame was being sent."""
    TOO_LARGE = "too_large"
    """The frame is larger than the receiver's maximum frame size."""
    CLOSED = "closed"
    """The sender was closed before the frame could be sent."""


class OverflowPolicy(str, enum.Enum):
    """The action of ``send`` when the chosen receiver has no free credit."""

    BLOCK = "block"
    """Wait up to ``send_timeout`` for a credit, then drop the frame (``timeout``)."""
    DROP_NEWEST = "drop_newest"
    """Drop the new frame at once if ``max_queued`` frames already wait (``queue_full``)."""
    DROP_OLDEST = "drop_oldest"
    """Drop the oldest waiting frame if ``max_queued`` frames already wait (``superseded``)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one ``send``: sent to a peer, or dropped with a reason.

    ``sent`` means the frame left this process completely. Delivery is at
    most once, so the receiver may still lose it if it dies before handing it
    to its UDF (counted as ``frames_unconfirmed``).
    """

    frame_id: str
    sequence: int
    sent: bool
    peer: str | None = None
    reason: DropReason | None = None

    @property
    def dropped(self) -> bool:
        """Return True when the frame was not sent."""
        return not self.sent


class Frame:
    """A received frame and the buffer it lives in.

    ``data`` is a ``memoryview`` (bytes payloads), a NumPy array, or a device
    array (CuPy when installed), in a receive buffer that the receiver reuses.
    Lifetime rule: ``data`` is valid until the frame is released. Iterators
    release a frame when the next one is requested, and handlers when they
    return. Call ``keep()`` to hold a frame longer and ``release()`` when
    done. While a frame is held, its buffer is one of the sender's credits,
    so holding many frames slows the sender down. Copy what must outlive the
    frame (``numpy.array(frame.data)``, ``bytes(frame.data)``).
    """

    __slots__ = (
        "_kept",
        "_lock",
        "_on_release",
        "data",
        "frame_id",
        "key",
        "memory",
        "metadata",
        "nbytes",
        "received_at_ns",
        "sender",
        "sent_at_ns",
        "sequence",
    )

    def __init__(
        self,
        data: Any,
        *,
        frame_id: str,
        sequence: int,
        sent_at_ns: int,
        received_at_ns: int,
        metadata: dict[str, Any],
        key: str | None,
        sender: str,
        nbytes: int,
        memory: Memory,
        on_release: Callable[[], None] | None,
    ) -> None:
        self.data = data
        self.frame_id = frame_id
        self.sequence = sequence
        self.sent_at_ns = sent_at_ns
        """The sender's wall clock (ns since the epoch) when the frame started to go out."""
        self.received_at_ns = received_at_ns
        """This receiver's wall clock (ns since the epoch) when the frame had fully arrived."""
        self.metadata = metadata
        self.key = key
        self.sender = sender
        self.nbytes = nbytes
        self.memory = memory
        self._on_release = on_release
        self._kept = False
        self._lock = threading.Lock()

    @property
    def latency(self) -> float:
        """Return seconds from the sender's timestamp to arrival; meaningful with synced clocks."""
        return (self.received_at_ns - self.sent_at_ns) / 1e9

    @property
    def released(self) -> bool:
        """Return True once the buffer went back to the receiver."""
        return self._on_release is None

    @property
    def kept(self) -> bool:
        """Return True when ``keep()`` exempted the frame from automatic release."""
        return self._kept

    def keep(self) -> Frame:
        """Exempt the frame from automatic release; the UDF must call ``release()``."""
        self._kept = True
        return self

    def release(self) -> None:
        """Return the buffer to the receiver; ``data`` must not be used afterwards. Idempotent."""
        with self._lock:
            callback, self._on_release = self._on_release, None
        if callback is not None:
            callback()

    def __enter__(self) -> Frame:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"Frame(sequence={self.sequence}, nbytes={self.nbytes}, memory={self.memory.value}, "
            f"key={self.key!r}, sender={self.sender!r}, released={self.released})"
        )
