"""The rate-limited mode of :class:`~pipeline_nb.testing._fake_anthropic.FakeAnthropic`.

Private. A token bucket per limit, as the real API meters them: ``requests`` holds
``requests_per_second`` requests and refills at that rate; ``input-tokens`` (only with
``tokens_per_minute``) holds a minute's tokens and refills per second. Every ``/v1/messages``
reply carries the real ``anthropic-ratelimit-<bucket>-{limit,remaining,reset}`` headers (reset:
RFC 3339, when the bucket is full again); a request over a limit gets a 429 ``rate_limit_error``
with ``retry-after`` (whole seconds, as the API sends it). ``log`` keeps ``(time.monotonic(),
status)`` for each metered request, the fake's own clock for tests.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone
from typing import Optional


class _Bucket:
    def __init__(self, name: str, capacity: float, per_second: float) -> None:
        self.name, self.capacity, self.per_second = name, capacity, per_second
        self.level, self.at = capacity, time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_second)
        self.at = now

    def seconds_until(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.per_second)

    def headers(self, now: float) -> dict[str, str]:
        full = time.time() + self.seconds_until(self.capacity)
        reset = datetime.fromtimestamp(full, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        prefix = f"anthropic-ratelimit-{self.name}"
        return {f"{prefix}-limit": str(int(self.capacity)), f"{prefix}-remaining": str(max(0, int(self.level))),
                f"{prefix}-reset": reset}


class RateGate:
    """Admits or refuses metered requests; thread-safe."""

    def __init__(self, requests_per_second: float, tokens_per_minute: Optional[float]) -> None:
        if requests_per_second <= 0 or (tokens_per_minute is not None and tokens_per_minute <= 0):
            raise ValueError("rate_limit: requests_per_second and tokens_per_minute must be positive")
        self._lock = threading.Lock()
        self._requests = _Bucket("requests", requests_per_second, requests_per_second)
        self._tokens = (_Bucket("input-tokens", tokens_per_minute, tokens_per_minute / 60)
                        if tokens_per_minute else None)
        self.log: list[tuple[float, int]] = []

    def admit(self, tokens: int) -> tuple[int, dict[str, str]]:
        """``(200, headers)`` for an admitted request of ``tokens`` input tokens (its share taken),
        or ``(429, headers)`` with ``retry-after``."""
        with self._lock:
            now = time.monotonic()
            buckets = [(self._requests, 1.0)] + ([(self._tokens, float(min(tokens, self._tokens.capacity)))]
                                                 if self._tokens else [])
            for bucket, _ in buckets:
                bucket.refill(now)
            wait = max(bucket.seconds_until(amount) for bucket, amount in buckets)
            status = 429 if wait > 0 else 200
            if status == 200:
                for bucket, amount in buckets:
                    bucket.level -= amount
            headers: dict[str, str] = {}
            for bucket, _ in buckets:
                headers.update(bucket.headers(now))
            if status == 429:
                headers["retry-after"] = str(max(1, math.ceil(wait)))
            self.log.append((now, status))
            return status, headers
