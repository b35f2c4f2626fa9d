"""The process-wide rate limiter against FakeAnthropic's rate-limited mode, through the real SDK:
a for_each far over the API's rate ends with no failed item and no retry used, a 429 pauses every
caller, concurrency halves on 429s and grows back, a cancel ends a pause at once, and the key never
appears in the limiter's name."""

from __future__ import annotations

import threading

import pytest

import pipeline_nb
from pipeline_nb import _rate_limit
from pipeline_nb._llm import Cancelled, CancelToken
from pipeline_nb._rate_limit import OK, RATE_LIMITED, RateScope, limiter_for
from pipeline_nb.streaming._events import RATE_LIMIT, RETRY

HANG_GUARD = 60.0


@pytest.fixture(autouse=True)
def fresh_limiters(monkeypatch):
    """Each test meets limiters of its own (they are process-wide)."""
    monkeypatch.setattr(_rate_limit, "_LIMITERS", {})


def fan_out(items: int, parallel: int, **step) -> dict:
    return {"name": "fan", "steps": [{"id": "fan", "for_each": f"{{{{ range({items}) | list }}}}",
                                      "max_parallel": parallel, "prompt": "item {{ item }}", **step}]}


def test_a_for_each_far_over_the_rate_ends_with_no_failed_item_and_no_retry(fake_anthropic):
    fake_anthropic.rate_limit(requests_per_second=10)
    events = []
    run = pipeline_nb.run(fan_out(60, 20, retries=0, stream=True), provider="claude", on_event=events.append,
                          raise_on_error=False)
    items = run.steps["fan"].items
    assert [i.status for i in items].count("ok") == 60, run.steps["fan"].note
    assert all(i.attempts == 1 for i in items)
    assert not [e for e in events if e.kind == RETRY]
    assert any(status == 429 for _, status in fake_anthropic.rate_log)  # the limit was really met
    pauses = [e.data for e in events if e.kind == RATE_LIMIT]
    assert pauses and run.rate_limit_wait > 0
    assert run.rate_limit_wait == pytest.approx(sum(p.waited for p in pauses))


def test_a_429_pauses_every_caller_until_the_reset(fake_anthropic):
    fake_anthropic.rate_limit(requests_per_second=5)
    run = pipeline_nb.run(fan_out(30, 10, retries=0), provider="claude", raise_on_error=False)
    assert run.ok
    log = fake_anthropic.rate_log
    refusals = [at for at, status in log if status == 429]
    assert refusals
    # after the first 429 of a pause has reached the client (it answers in well under 0.3 s), nothing
    # is sent until retry-after (1 s) has passed: the fake's own clock and records
    for refused in refusals:
        during = [at for at, _ in log if refused + 0.3 < at < refused + 0.95]
        assert during == [], f"{len(during)} requests sent during a pause"
    # no herd: each pause costs at most one 429 per call in flight when it began (10), not one per retry
    assert len(refusals) <= 10 * len({round(at) for at in refusals}) + 10


def test_concurrency_halves_on_429s_once_per_event_and_grows_back():
    limiter = _rate_limit.RateLimiter("test")
    scope, cancel = RateScope(16), CancelToken()
    tickets = [limiter.acquire(cancel, scope) for _ in range(16)]
    assert limiter.concurrency == 16
    limiter.release(tickets[0], RATE_LIMITED)
    assert limiter.concurrency == 8
    for ticket in tickets[1:6]:  # sent before the decrease: the same congestion event
        limiter.release(ticket, RATE_LIMITED)
    assert limiter.concurrency == 8
    for ticket in tickets[6:]:
        limiter.release(ticket, _rate_limit.OTHER)
    later = limiter.acquire(cancel, scope)  # sent after the decrease: a new congestion event
    limiter.release(later, RATE_LIMITED)
    assert limiter.concurrency == 4
    lowest = limiter.concurrency
    for _ in range(_rate_limit.GROW_EVERY * 20):
        limiter.release(limiter.acquire(cancel, scope), OK)
    assert lowest < limiter.concurrency == 16


def test_a_cancel_during_a_pause_returns_at_once():
    limiter = _rate_limit.RateLimiter("test")
    limiter.observe({"retry-after": "3600"}, 429)
    cancel, outcome = CancelToken(), []

    def wait() -> None:
        try:
            limiter.acquire(cancel, RateScope(4))
        except Cancelled:
            outcome.append("cancelled")

    waiter = threading.Thread(target=wait)
    waiter.start()
    cancel.cancel()
    waiter.join(HANG_GUARD)
    assert outcome == ["cancelled"]


def test_the_key_never_appears_in_the_limiters_identity_or_repr():
    key = "sk-ant-api03-secret-do-not-show"
    limiter = limiter_for("https://api.anthropic.com", key)
    assert key not in limiter.identity and key not in repr(limiter)
    assert "secret" not in repr(limiter)
    assert limiter is limiter_for("https://api.anthropic.com/", key)
    assert limiter is not limiter_for("https://api.anthropic.com", key + "2")
