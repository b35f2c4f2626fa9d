"""One rate limiter per API endpoint and key, shared by every call in the process.

The claude provider wraps each request in :meth:`RateLimiter.acquire` / :meth:`RateLimiter.release`
and hands every reply's headers (success and error) to :meth:`RateLimiter.observe`:

- ``anthropic-ratelimit-{requests,input-tokens,output-tokens}-{remaining,reset}``: a bucket at 0
  pauses the limiter until its reset, before any 429;
- a 429 pauses the whole limiter until its ``retry-after`` (else the exhausted bucket's reset):
  every caller waits in ``acquire``, so no herd of retries hits the API at the end of the pause;
- concurrency adapts (AIMD): halved on a 429 or 529 (once per congestion event: calls sent before
  the last decrease do not halve it again), +1 every ``GROW_EVERY`` successes, and unlimited again
  (the step's ``max_parallel`` bounds it) once it is back at the largest ``max_parallel`` seen.

What the engine tells the limiter about the calling step (its ``max_parallel``, and where a pause is
reported) travels in :data:`RATE_SCOPE`, so provider wrappers (budget, cassette) need not know.
The limiter is keyed by a fingerprint of the key, never the key. ``PIPELINE_NB_RATE_LIMITER=off``
turns it off (the behaviour before it: each 429 is a failed attempt the step's retries absorb).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ._llm import Cancelled, CancelToken

ENV = "PIPELINE_NB_RATE_LIMITER"
BUCKETS = ("requests", "input-tokens", "output-tokens")
GROW_EVERY = 5
"""Successes per +1 of concurrency after a decrease."""
DEFAULT_PAUSE = 1.0
"""Seconds paused after a 429 that names neither ``retry-after`` nor a reset."""
MAX_HEADER_PAUSE = 60.0
"""A reset read from a successful reply pauses at most this long (a 429's ``retry-after`` is obeyed)."""
OK, RATE_LIMITED, OVERLOADED, OTHER = "ok", "rate_limited", "overloaded", "other"


@dataclass(frozen=True)
class Pause:
    """A rate-limit pause as a caller sees it: the wall-clock time it ends (for a countdown), the
    limiter's concurrency, and the seconds waited (0 when the pause starts)."""

    paused_until: float
    concurrency: int
    waited: float


@dataclass(frozen=True)
class RateScope:
    """What the engine says about the calling step: its ``max_parallel`` and who hears of pauses."""

    ceiling: int
    on_pause: Callable[[Pause], None] | None = None


RATE_SCOPE: ContextVar[RateScope | None] = ContextVar("pipeline_nb_rate_scope", default=None)


@contextmanager
def rate_scope(ceiling: int, on_pause: Callable[[Pause], None] | None = None) -> Iterator[None]:
    """Calls made inside report to ``on_pause`` and grow concurrency to at most ``ceiling``."""
    token = RATE_SCOPE.set(RateScope(max(1, ceiling), on_pause))
    try:
        yield
    finally:
        RATE_SCOPE.reset(token)


@dataclass(frozen=True)
class Ticket:
    """One admitted call: the limiter's epoch when it was sent, and how long it waited to be."""

    epoch: int
    waited: float


class RateLimiter:
    """Admission, pauses and adaptive concurrency for one (endpoint, key). Thread-safe."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self._cond = threading.Condition()
        self._in_flight = 0
        self._window: int | None = None
        """The adapted concurrency; None until the first 429/529 (then only max_parallel bounds)."""
        self._ceiling = 1
        self._successes = 0
        self._epoch = 0
        self._paused_until = 0.0
        self._pause_id = 0
        self._announced = 0
        self.waited = 0.0
        """Seconds spent paused, summed over pauses (each counted once, not once per waiter)."""
        self.pauses = 0
        self.decreases = 0

    def __repr__(self) -> str:
        return f"RateLimiter({self.identity!r}, concurrency={self.concurrency}, paused={self.paused})"

    @property
    def concurrency(self) -> int:
        """Calls the limiter admits at once now (the largest ``max_parallel`` seen when not limited)."""
        return self._window if self._window is not None else self._ceiling

    @property
    def paused(self) -> bool:
        return self._paused_until > time.monotonic()

    def acquire(self, cancel: CancelToken, scope: RateScope | None = None) -> Ticket:
        """Wait for a pause to end and for a free slot, then count this call in flight. Raises
        Cancelled at once when ``cancel`` fires. The first waiter of each pause reports it to
        ``scope.on_pause`` as it starts (waited 0) and as it ends."""
        ceiling = scope.ceiling if scope else 1
        announce = scope.on_pause if scope else None
        unregister = cancel.on_cancel(self._wake)
        started: float | None = None
        announced = False
        try:
            with self._cond:
                self._ceiling = max(self._ceiling, ceiling)
                while True:
                    if cancel.cancelled:
                        raise Cancelled()
                    now = time.monotonic()
                    if self._paused_until > now:
                        started = now if started is None else started
                        if self._announced != self._pause_id:  # one report per pause, not one per waiter
                            self._announced, announced = self._pause_id, True
                            self.pauses += 1
                            if announce is not None:
                                announce(Pause(time.time() + self._paused_until - now, self.concurrency, 0.0))
                        self._cond.wait(self._paused_until - now)
                        continue
                    if self._window is not None and self._in_flight >= self._window:
                        self._cond.wait()  # a release or a cancel wakes it
                        continue
                    self._in_flight += 1
                    waited = now - started if started is not None else 0.0
                    if announced:
                        self.waited += waited
                    ticket = Ticket(self._epoch, waited)
                    break
        finally:
            unregister()
        if announced and announce is not None:
            announce(Pause(time.time(), self.concurrency, ticket.waited))
        return ticket

    def release(self, ticket: Ticket, outcome: str) -> None:
        """A call admitted by ``ticket`` ended with ``outcome`` (``ok``, ``rate_limited``,
        ``overloaded`` or ``other``): adapt concurrency and wake waiters."""
        with self._cond:
            sent_at = self._in_flight
            self._in_flight -= 1
            if outcome == OK and self._window is not None:
                self._successes += 1
                if self._successes >= GROW_EVERY:
                    self._successes = 0
                    self._window += 1
                    if self._window >= self._ceiling:
                        self._window = None
            elif outcome in (RATE_LIMITED, OVERLOADED) and ticket.epoch == self._epoch:
                current = self._window if self._window is not None else min(sent_at, self._ceiling)
                self._window = max(1, current // 2)
                self._epoch += 1
                self._successes = 0
                self.decreases += 1
            self._cond.notify_all()

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        """Read a reply's rate-limit headers (and a 429's ``retry-after``): pause when the API
        says a bucket is empty, until it refills."""
        now = time.monotonic()
        resets = [reset for bucket in BUCKETS
                  if _number(headers.get(f"anthropic-ratelimit-{bucket}-remaining")) == 0
                  and (reset := _reset(headers.get(f"anthropic-ratelimit-{bucket}-reset"), now)) is not None]
        if status == 429:
            after = retry_after(headers)
            until = now + after if after is not None else max(resets, default=now + DEFAULT_PAUSE)
        elif resets:
            until = min(max(resets), now + MAX_HEADER_PAUSE)
        else:
            return
        with self._cond:
            if until <= self._paused_until:
                return
            if self._paused_until <= now:  # a new pause (extending one in progress is not)
                self._pause_id += 1
            self._paused_until = until
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


_LIMITERS: dict[str, RateLimiter] = {}
_LOCK = threading.Lock()


T = TypeVar("T")


def enabled() -> bool:
    """False when ``PIPELINE_NB_RATE_LIMITER`` is ``off`` (or ``0``, ``false``, ``no``)."""
    return os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def fingerprint(key: str | None) -> str:
    """A short hash naming a key without revealing it."""
    return hashlib.sha256((key or "").encode()).hexdigest()[:12]


def limiter_for(base_url: str, key: str | None) -> RateLimiter:
    """The process's limiter for ``base_url`` and ``key`` (made on first use)."""
    identity = f"{base_url.rstrip('/')} key:{fingerprint(key)}"
    with _LOCK:
        limiter = _LIMITERS.get(identity)
        if limiter is None:
            limiter = _LIMITERS[identity] = RateLimiter(identity)
        return limiter


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _reset(value: str | None, now: float) -> float | None:
    """An RFC 3339 reset time as a ``time.monotonic()`` instant, or None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return now + max(0.0, when - time.time())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        seconds = _number(value)
        if seconds is not None:
            return max(0.0, seconds * scale)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


def send_limited(limiter: RateLimiter | None, cancel: Any, send: Callable[[RateLimiter | None], T],
                 outcome_of: Callable[[Any], str], most: int = 50) -> T:
    """``send(limiter)`` admitted by ``limiter`` (no limiter: sent as is). A send that failed with a
    429 the limiter handles (``outcome_of(error)`` is RATE_LIMITED; it paused every caller until the
    reset) is sent again after the pause, without reaching the step's retries, up to ``most`` sends."""
    from ._llm import ProviderError  # the provider interface: it imports this module

    if limiter is None:
        return send(None)
    scope = RATE_SCOPE.get()
    for number in range(1, most + 1):
        ticket = limiter.acquire(cancel, scope)
        outcome = OTHER
        try:
            reply = send(limiter)
            outcome = OK
            return reply
        except ProviderError as error:
            outcome = outcome_of(error)
            if outcome != RATE_LIMITED or number == most:
                raise
        finally:
            limiter.release(ticket, outcome)
    raise AssertionError("unreachable: the last send returns or raises")
