"""The queue that hands received frames from the transport thread to threads and event loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from numaflow_rdma.transport.delivery import DeliveryQueue, QueueClosedError


def _put_later(queue: DeliveryQueue[int], item: int, delay: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), queue.put(item)))
    thread.start()
    return thread


def test_get_returns_items_in_order() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()
    for item in range(3):
        queue.put(item)

    assert [queue.get(timeout=0) for _ in range(3)] == [0, 1, 2]
    assert len(queue) == 0


def test_get_times_out_with_none() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()
    started = time.monotonic()

    assert queue.get(timeout=0.05) is None
    assert time.monotonic() - started >= 0.05


def test_get_wakes_for_item_from_other_thread() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()
    producer = _put_later(queue, 7, 0.05)

    assert queue.get(timeout=5) == 7
    producer.join()


def test_close_keeps_queued_items_then_raises() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()
    queue.put(1)
    queue.close()

    assert queue.get(timeout=0) == 1
    with pytest.raises(QueueClosedError):
        queue.get(timeout=0)
    with pytest.raises(QueueClosedError):
        queue.put(2)


def test_close_wakes_blocked_get() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            queue.get(timeout=10)
        except QueueClosedError as error:
            errors.append(error)

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.05)
    queue.close()
    consumer.join(timeout=5)

    assert not consumer.is_alive()
    assert len(errors) == 1


def test_get_async_wakes_for_item_from_other_thread() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()

    async def consume() -> int | None:
        producer = _put_later(queue, 9, 0.05)
        item = await queue.get_async(timeout=5)
        producer.join()
        return item

    assert asyncio.run(consume()) == 9


def test_get_async_timeout_returns_none() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()

    async def consume() -> tuple[int | None, int | None]:
        first = await queue.get_async(timeout=0.05)
        queue.put(3)
        return first, queue.get(timeout=0)

    assert asyncio.run(consume()) == (None, 3)


def test_close_wakes_waiting_get_async() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()

    async def consume() -> None:
        closer = threading.Timer(0.05, queue.close)
        closer.start()
        try:
            await queue.get_async(timeout=5)
        finally:
            closer.join()

    with pytest.raises(QueueClosedError):
        asyncio.run(consume())


def test_every_item_reaches_one_of_mixed_takers() -> None:
    queue: DeliveryQueue[int] = DeliveryQueue()
    items_taken: list[int] = []
    lock = threading.Lock()
    count = 400

    def take_in_thread() -> None:
        while True:
            try:
                item = queue.get(timeout=5)
            except QueueClosedError:
                return
            if item is not None:
                with lock:
                    items_taken.append(item)

    async def take_in_loop() -> None:
        while True:
            try:
                item = await queue.get_async(timeout=5)
            except QueueClosedError:
                return
            if item is not None:
                with lock:
                    items_taken.append(item)

    takers = [threading.Thread(target=take_in_thread) for _ in range(2)]
    takers.append(threading.Thread(target=lambda: asyncio.run(take_in_loop())))
    for taker in takers:
        taker.start()
    for item in range(count):
        queue.put(item)
    queue.close()
    for taker in takers:
        taker.join(timeout=10)

    assert not any(taker.is_alive() for taker in takers)
    assert sorted(items_taken) == list(range(count))
