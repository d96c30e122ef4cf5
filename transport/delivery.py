"""The queue between the transport thread and the code that takes received frames.

The transport thread puts each received frame here. A synchronous caller
takes it on its own thread and an asynchronous caller on its own event loop.
Neither goes through the transport loop: a waiting thread gets a
``threading.Condition`` notification, and a waiting loop a
``call_soon_threadsafe`` wake-up. This hand-off sits on the path of every
frame, so it does no more work than that.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosedError(Exception):
    """The queue was closed and every item put before the close was taken."""


class DeliveryQueue(Generic[T]):
    """A FIFO queue filled by one thread and emptied by threads and event loops alike."""

    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        self._condition = threading.Condition(threading.Lock())
        self._async_waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = (
            collections.deque()
        )

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """Return True once ``close`` was called."""
        return self._closed

    def put(self, item: T) -> None:
        """Append ``item`` and wake one waiter; raise QueueClosedError after ``close``."""
        with self._condition:
            if self._closed:
                raise QueueClosedError("the queue is closed")
            self._items.append(item)
            self._condition.notify()
            self._wake_async(everyone=False)

    def close(self) -> None:
        """Stop taking items and wake every waiter; items already queued can still be taken."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            self._wake_async(everyone=True)

    def get(self, timeout: float | None = None) -> T | None:
        """Block for the next item up to ``timeout`` seconds; return None when none came.

        Raises QueueClosedError once the queue is closed and empty.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._items:
                if self._closed:
                    raise QueueClosedError("the queue is closed")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(remaining)
            return self._items.popleft()

    async def get_async(self, timeout: float | None = None) -> T | None:
        """Await the next item up to ``timeout`` seconds on the running loop; None when none came.

        Raises QueueClosedError once the queue is closed and empty.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._condition:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise QueueClosedError("the queue is closed")
                waiter: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, waiter))
            remaining = None if deadline is None else deadline - loop.time()
            try:
                if remaining is None:
                    await waiter
                elif remaining <= 0:
                    return None
                else:
                    await asyncio.wait_for(asyncio.shield(waiter), remaining)
            except asyncio.TimeoutError:
                return None
            finally:
                self._forget(loop, waiter)

    def _wake_async(self, everyone: bool) -> None:
        # Called with the condition held. A waiter whose loop is gone is skipped.
        while self._async_waiters:
            loop, waiter = self._async_waiters.popleft()
            if loop.is_closed():
                continue
            loop.call_soon_threadsafe(_set_done, waiter)
            if not everyone:
                return

    def _forget(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
        with self._condition:
            try:
                self._async_waiters.remove((loop, waiter))
            except ValueError:
                # Already woken; an item meant for it may be waiting for another taker.
                if self._items and not waiter.cancelled():
                    self._condition.notify()
                    self._wake_async(everyone=False)


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
