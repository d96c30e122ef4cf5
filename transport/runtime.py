"""The transport thread: one asyncio loop per process that runs all network I/O.

Senders and receivers, synchronous and asynchronous alike, do their I/O on
this loop, for two reasons. UCX progress is bound to one event loop, and a
UCX worker must not be progressed from two threads. And heartbeats must keep
flowing while the UDF's own code keeps its thread or its event loop busy for a
long inference step, or peers would declare it dead.

The synchronous API blocks on this loop's futures; the asynchronous API
awaits them from the caller's loop. Handlers and iterators run in the
caller's thread or loop, never here.

After ``os.fork`` the child gets a fresh loop on first use. UCX state does
not survive a fork, so create senders and receivers after forking (for
example inside the pynumaflow handler of a ``MapMultiprocServer``).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long the exit hook gives open senders and receivers to close.
EXIT_CLOSE_TIMEOUT = 2.0


class Closable(Protocol):
    """A sender or receiver core that the exit hook closes."""

    async def close(self, timeout: float) -> None: ...


class TransportRuntime:
    """A daemon thread that runs an asyncio loop forever."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="numaflow-rdma-transport", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        self.open_cores: weakref.WeakSet[Any] = weakref.WeakSet()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def in_loop_thread(self) -> bool:
        """Tell whether the caller runs on the transport thread."""
        return threading.current_thread() is self._thread

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the transport loop and return its future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the transport loop and block until it returns.

        Raises RuntimeError when called from the transport thread itself,
        where blocking would deadlock.
        """
        if self.in_loop_thread():
            coroutine.close()
            raise RuntimeError(
                "a blocking transport call was made on the transport thread; "
                "use the async API (AsyncSender, AsyncReceiver) inside transport callbacks"
            )
        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def call_async(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` on the transport loop from any event loop."""
        if self.in_loop_thread():
            return await coroutine
        return await asyncio.wrap_future(self.submit(coroutine))

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the transport loop, from any thread."""
        if self.in_loop_thread():
            callback(*args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)

    def track(self, core: Closable) -> None:
        """Remember ``core`` so the exit hook closes it if the UDF did not."""
        self.open_cores.add(core)

    def close_all(self, timeout: float) -> None:
        """Close every tracked core within ``timeout`` seconds; used at interpreter exit."""
        cores = list(self.open_cores)
        if not cores or self.in_loop_thread():
            return

        async def close_cores() -> None:
            results: list[Awaitable[Any]] = [core.close(timeout) for core in cores]
            await asyncio.gather(*results, return_exceptions=True)

        try:
            self.call(close_cores(), timeout + 1.0)
        except (concurrent.futures.TimeoutError, RuntimeError) as error:
            logger.warning("Closing the transport at exit did not finish: %s", error)


_lock = threading.Lock()
_runtime: TransportRuntime | None = None
_pid = os.getpid()


def get_runtime() -> TransportRuntime:
    """Return the process's transport thread, started on first use."""
    global _runtime, _pid
    with _lock:
        if _runtime is None or _pid != os.getpid():
            _runtime = TransportRuntime()
            _pid = os.getpid()
        return _runtime


def _forget_after_fork() -> None:
    global _runtime, _lock
    _runtime = None
    _lock = threading.Lock()
    from numaflow_rdma.transport.backends import forget_backends

    forget_backends()


def _close_at_exit() -> None:
    runtime = _runtime
    if runtime is not None and _pid == os.getpid():
        runtime.close_all(EXIT_CLOSE_TIMEOUT)


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_close_at_exit)
