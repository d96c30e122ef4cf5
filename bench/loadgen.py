"""An open-loop HTTPS load generator: a fixed request rate for a bounded time.

Request ``i`` is due at ``start + i / rate`` and is sent then, whether or not
earlier requests have completed, as the API server calls a webhook for each
pod created whatever the webhook is doing. Latency is measured from the
time a request was due, not from when it was sent, so a server that falls
behind is charged for the queue it builds (no coordinated omission).
Connections are reused, as the API server reuses its connections to
webhooks; at most ``connections`` are open at once.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import CpuClock, summarize

# The API server's default webhook timeout (timeoutSeconds), in seconds.
REQUEST_TIMEOUT = 10.0


@dataclass
class LoadResult:
    """The figures of one fixed-rate run."""

    rate: float
    duration: float
    scheduled: int = 0
    succeeded: int = 0
    rejected: int = 0
    patched: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    last_completion: float = 0.0
    started: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)

    def add_error(self, kind: str) -> None:
        """Count one failed request of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values."""
        span = self.last_completion - self.started if self.last_completion else 0.0
        return {
            "rate": self.rate,
            "duration_s": self.duration,
            "scheduled": self.scheduled,
            "succeeded": self.succeeded,
            "rejected": self.rejected,
            "patched": self.patched,
            "errors": dict(self.errors),
            "error_count": sum(self.errors.values()),
            "throughput_per_s": self.succeeded / span if span > 0 else 0.0,
            "latency_ms": summarize(self.latencies_ms),
            "send_lag_ms": summarize(self.send_lag_ms),
            "generator_cpu_s": self.cpu_s,
        }


def check_admission_response(body: dict[str, Any], uid: str) -> str | None:
    """Return what is wrong with an AdmissionReview response, or None when it is well formed."""
    response = body.get("response")
    if not isinstance(response, dict):
        return "no response field"
    if response.get("uid") != uid:
        return "wrong uid"
    if not isinstance(response.get("allowed"), bool):
        return "no allowed field"
    return None


async def _send_one(
    session: Any,
    url: str,
    body: bytes,
    uid: str,
    due: float,
    result: LoadResult | None,
) -> None:
    import aiohttp

    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            payload = await response.read()
            finished = time.monotonic()
            if result is None:
                return
            if response.status != 200:
                result.add_error(f"HTTP {response.status}")
                return
            decoded = json.loads(payload)
            problem = check_admission_response(decoded, uid)
            if problem:
                result.add_error(problem)
                return
    except (aiohttp.ClientError, OSError, ValueError) as error:
        if result is not None:
            result.add_error(type(error).__name__)
        return
    except asyncio.TimeoutError:
        if result is not None:
            result.add_error("timeout")
        return
    answer = decoded["response"]
    result.succeeded += 1
    if not answer["allowed"]:
        result.rejected += 1
    if answer.get("patch"):
        result.patched += 1
    result.latencies_ms.append((finished - due) * 1000)
    result.last_completion = max(result.last_completion, finished)


async def run_rate(
    url: str,
    bodies: Sequence[tuple[str, bytes]],
    rate: float,
    duration: float,
    ssl_context: ssl.SSLContext,
    warmup: float = 1.0,
    connections: int = 100,
) -> LoadResult:
    """Send ``bodies`` round-robin to ``url`` at ``rate`` per second for ``duration`` seconds.

    ``bodies`` are (uid, JSON bytes) pairs. A warm-up of ``warmup`` seconds at
    the same rate opens the connections first and is not measured.
    """
    import aiohttp

    if rate <= 0 or duration <= 0:
        raise ValueError(f"invalid rate {rate} or duration {duration}: both must be positive")
    if not bodies:
        raise ValueError("the request corpus is empty")
    connector = aiohttp.TCPConnector(ssl=ssl_context, limit=connections, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _fixed_rate(session, url, bodies, rate, warmup, None)
        result = LoadResult(rate=rate, duration=duration)
        await _fixed_rate(session, url, bodies, rate, duration, result)
    return result


async def _fixed_rate(
    session: Any,
    url: str,
    bodies: Sequence[tuple[str, bytes]],
    rate: float,
    duration: float,
    result: LoadResult | None,
) -> None:
    count = round(rate * duration)
    tasks: set[asyncio.Task[None]] = set()
    cpu = CpuClock()
    started = time.monotonic()
    if result is not None:
        result.started = started
        result.scheduled = count
    for index in range(count):
        due = started + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if result is not None:
            result.send_lag_ms.append((time.monotonic() - due) * 1000)
        uid, body = bodies[index % len(bodies)]
        task = asyncio.create_task(_send_one(session, url, body, uid, due, result))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
    if result is not None:
        result.cpu_s = cpu.elapsed()
