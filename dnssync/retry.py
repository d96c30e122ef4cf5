"""Backoff delays and the one log line every retry in dnssync writes.

Every retried call, whether an etcd request, a Kubernetes watch or a Lease
update, logs the same shape, so one grep finds them all::

    attempt 2/5 failed; will retry in 0.4s: PUT /skydns/local/... -> etcd connection failed
    attempt 5/5 failed; escalating: PUT /skydns/local/... -> etcd connection failed
    attempt 3 failed; will retry in 0.8s: WATCH pods -> connection refused

The total is left out when the caller retries without a limit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential delays: ``initial`` seconds after the first failure, doubling up to ``maximum``."""

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Return the delay in seconds after failed attempt number ``attempt`` (counted from 1)."""
        exponent = min(max(attempt - 1, 0), 64)
        return float(min(self.maximum, self.initial * self.factor**exponent))


def retry_message(
    attempt: int, attempts: int | None, delay: float | None, operation: str, error: object
) -> str:
    """Format one failed attempt; ``delay`` None means this was the last one (escalating)."""
    counted = f"attempt {attempt}/{attempts}" if attempts else f"attempt {attempt}"
    if delay is None:
        return f"{counted} failed; escalating: {operation} -> {error}"
    return f"{counted} failed; will retry in {delay:.1f}s: {operation} -> {error}"
