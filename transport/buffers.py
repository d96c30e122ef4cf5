"""Receive buffers that are reused from frame to frame.

Each connection owns one slot per credit it grants, so a sender that keeps
to its credits always finds a free slot. A slot keeps its host buffer, and
its device buffer if a CUDA frame arrived, and grows it when a larger frame
comes. It never shrinks. In steady state, with frames of one size, no
buffer is allocated at all. The memory a connection holds is therefore at
most ``credits`` times the largest frame it has received, on the host and,
for CUDA frames, on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from numaflow_rdma.transport import cuda
from numaflow_rdma.transport.errors import ProtocolError

# Buffers grow in steps of this many bytes, so frames whose size varies a
# little (compressed images) do not reallocate every time.
GROWTH_STEP = 64 * 1024


def _rounded(nbytes: int) -> int:
    return max(GROWTH_STEP, -(-nbytes // GROWTH_STEP) * GROWTH_STEP)


@dataclass(eq=False)
class Slot:
    """One frame's worth of receive memory."""

    index: int
    host: np.ndarray[Any, np.dtype[np.uint8]] = field(
        default_factory=lambda: np.empty(0, dtype=np.uint8)
    )
    device_owner: object | None = None
    device_pointer: int = 0
    device_capacity: int = 0
    busy: bool = False


class SlotPool:
    """The slots of one connection."""

    def __init__(self, count: int, on_allocate: Callable[[], None] | None = None) -> None:
        if count < 1:
            raise ValueError(f"a slot pool needs at least one slot, got {count}")
        self._slots = [Slot(index) for index in range(count)]
        self._on_allocate = on_allocate
        self.allocations = 0
        """How many host or device buffers were allocated."""

    def _allocated(self) -> None:
        self.allocations += 1
        if self._on_allocate is not None:
            self._on_allocate()

    @property
    def busy_count(self) -> int:
        """Return how many slots hold a frame that has not been released."""
        return sum(slot.busy for slot in self._slots)

    def acquire(self) -> Slot:
        """Return a free slot, marked busy; raise ProtocolError when all are busy.

        All slots busy means the sender sent more frames than it had credits.
        """
        for slot in self._slots:
            if not slot.busy:
                slot.busy = True
                return slot
        raise ProtocolError(
            f"the sender sent a frame while all {len(self._slots)} of its credits were in use"
        )

    def release(self, slot: Slot) -> None:
        """Mark ``slot`` free for the next frame."""
        slot.busy = False

    def host_buffer(self, slot: Slot, nbytes: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Return ``nbytes`` of the slot's host memory, growing it if needed."""
        if slot.host.nbytes < nbytes:
            slot.host = np.empty(_rounded(nbytes), dtype=np.uint8)
            self._allocated()
        return slot.host[:nbytes]

    def device_buffer(self, slot: Slot, nbytes: int) -> cuda.CudaArrayView:
        """Return ``nbytes`` of the slot's device memory, growing it if needed."""
        if slot.device_capacity < nbytes or slot.device_owner is None:
            capacity = _rounded(nbytes)
            # Drop the old buffer first so the allocator can reuse its memory.
            slot.device_owner = None
            slot.device_owner, slot.device_pointer = cuda.runtime().allocate(capacity)
            slot.device_capacity = capacity
            self._allocated()
        return cuda.CudaArrayView(slot.device_pointer, (nbytes,), "|u1", owner=slot.device_owner)
