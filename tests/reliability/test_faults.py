"""Every fault FakeAnthropic can inject, through the real anthropic SDK: what is retried,
what fails at once and says what to fix, and that no text is lost or shown twice."""

from __future__ import annotations

import email.utils
import io
import socket
import time

import pytest

import pipeline_nb
from pipeline_nb import PipelineRun, StepError
from pipeline_nb._engine import RunOptions, execute
from pipeline_nb._loader import load_spec
from pipeline_nb.streaming._events import DELTA, RETRY
from pipeline_nb.streaming._handlers import BufferHandler, ConsoleHandler, StreamHandler

from _support import REPLY, pipeline

STEP = {"id": "a", "prompt": "Explain tides.", "stream": True}

# kind, fault options, the reason the retry event gives, deltas the failed attempt streamed
RETRIED = [
    ("rate_limit", {"retry_after": 0.02}, "rate_limit_error", 0),
    ("overloaded_http", {"retry_after": 0.02}, "overloaded_error", 0),
    ("server_error", {"retry_after": 0.02}, "api_error", 0),
    ("overloaded", {"after": 4}, "overloaded_error", 4),
    ("cut", {"after": 4}, "connection_lost", 4),
    ("close", {"after": 4}, "incomplete_stream", 4),
    ("stall", {"after": 4, "stall_seconds": 5}, "read_timeout", 4),
    ("malformed", {"after": 4}, "malformed_stream", 4),
]


@pytest.fixture
def without_rate_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry path itself: with the rate limiter on, a 429 waits for the limiter instead of
    costing an attempt (tests/scale/test_rate_limits.py)."""
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")

@pytest.mark.parametrize(("kind", "options", "reason", "partial"), RETRIED, ids=[r[0] for r in RETRIED])
def test_a_fault_is_retried_and_only_the_final_attempt_text_is_kept(fake_anthropic, kind, options, reason, partial,
                                                                    without_rate_limiter):
    fake_anthropic.reply(REPLY)
    fake_anthropic.fault(kind, times=2, **options)
    buf = BufferHandler()

    run = pipeline_nb.run(pipeline(STEP, read_timeout=0.3), on_event=buf)

    step = run.steps["a"]
    assert (step.status, step.attempts, step.error) == ("ok", 3, None)
    assert step.text == buf.texts["a"] == buf.responses["a"].text == REPLY
    assert len(fake_anthropic.requests) == 3
    retries = [e.data for e in buf.events if e.kind == RETRY]
    assert [(r.step_id, r.attempt, r.retries, r.reason) for r in retries] == [("a", 1, 2, reason), ("a", 2, 2, reason)]
    expected = [0.02, 0.02] if "retry_after" in options else [0.01, 0.02]  # retry-after, else backoff
    assert [r.delay for r in retries] == pytest.approx(expected)
    streamed = [e.data.attempt for e in buf.events if e.kind == DELTA]
    assert streamed.count(1) == streamed.count(2) == partial  # the failed attempts did stream text


@pytest.mark.parametrize("kind", ["rate_limit", "overloaded_http", "server_error"])
def test_http_faults_are_retried_without_streaming_too(fake_anthropic, kind, without_rate_limiter):
    fake_anthropic.reply(REPLY)
    fake_anthropic.fault(kind, retry_after=0)
    run = pipeline_nb.run(pipeline({**STEP, "stream": False}))
    assert (run.steps["a"].text, run.steps["a"].attempts) == (REPLY, 2)
    assert [r.stream for r in fake_anthropic.requests] == [False, False]


def test_an_unreachable_api_is_retried_then_fails(fake_anthropic, monkeypatch):
    with socket.socket() as unused:  # a port with nothing listening
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{unused.getsockname()[1]}")
    buf = BufferHandler()
    run = pipeline_nb.run(pipeline(STEP), on_event=buf, raise_on_error=False)
    a = run.steps["a"]
    assert (a.status, a.attempts, a.error.type) == ("error", 3, "connection_error")
    assert [e.data.reason for e in buf.events if e.kind == RETRY] == ["connection_error"] * 2


def test_retry_after_is_honoured_up_to_the_cap(fake_anthropic, without_rate_limiter):
    fake_anthropic.reply(REPLY)
    fake_anthropic.fault("rate_limit", retry_after=30)
    in_an_hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
    fake_anthropic.fault("overloaded_http", retry_after=in_an_hour)
    buf = BufferHandler()
    started = time.monotonic()

    run = pipeline_nb.run(pipeline(STEP, retry_after_cap=0.05), on_event=buf)

    assert run.steps["a"].text == REPLY
    assert [e.data.delay for e in buf.events if e.kind == RETRY] == [0.05, 0.05]  # not 30 s, not an hour
    assert time.monotonic() - started < 2


# status, what the message tells the user to fix
NOT_RETRIED = [
    (400, "check the step's model, max_tokens and prompt"),
    (401, "check ANTHROPIC_API_KEY"),
    (403, "check ANTHROPIC_API_KEY and the model name"),
    (404, "check the model name and base_url"),
    (413, "shorten the prompt"),
]


@pytest.mark.parametrize(("status", "fix"), NOT_RETRIED, ids=[str(s) for s, _ in NOT_RETRIED])
def test_a_client_error_is_not_retried_and_says_what_to_fix(fake_anthropic, monkeypatch, status, fix):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-do-not-echo-me")
    fake_anthropic.fault("http", status=status, times=None)
    buf = BufferHandler()

    with pytest.raises(StepError) as raised:
        pipeline_nb.run(pipeline(STEP, retries=3), on_event=buf)

    step = raised.value.run.steps["a"]
    assert (step.status, step.attempts) == ("error", 1)
    assert len(fake_anthropic.requests) == 1
    assert not [e for e in buf.events if e.kind == RETRY]
    assert fix in step.error.message and f"HTTP {status}" in step.error.message
    assert step.error.request_id == "req_fake_1"
    assert step.error.type.endswith(("_error", "too_large"))
    for text in (str(raised.value), repr(step), str(step.error)):
        assert "do-not-echo-me" not in text


def test_a_request_the_sdk_refuses_is_not_retried_and_says_what_to_fix(fake_anthropic):
    run = pipeline_nb.run(pipeline({**STEP, "stream": False, "max_tokens": 64000}), raise_on_error=False)
    a = run.steps["a"]
    assert (a.status, a.attempts, a.error.type) == ("error", 1, "streaming_required")
    assert "set stream: true on the step" in a.error.message
    assert fake_anthropic.requests == []


def test_exhausted_retries_fail_with_the_api_error_type_message_and_request_id(fake_anthropic):
    fake_anthropic.reply(REPLY)
    fake_anthropic.fault("overloaded", times=None, after=3, message="Overloaded, try later")

    with pytest.raises(StepError) as raised:
        pipeline_nb.run(pipeline(STEP, {"id": "b", "prompt": "Shorten: {{ steps.a.text }}"}))

    run = raised.value.run
    a = run.steps["a"]
    assert (a.status, a.attempts, len(fake_anthropic.requests)) == ("error", 3, 3)
    assert a.error.type == "overloaded_error"
    assert a.error.message == "Overloaded, try later; gave up after 3 attempts"
    assert a.error.request_id == "req_fake_3"
    assert a.text == " ".join(REPLY.split()[:3]) + " "  # the final attempt's partial text, once
    assert run.steps["b"].status == "skipped" and run.status == "error"
    assert "step 'a' failed: overloaded_error" in str(raised.value)


def test_a_stream_that_breaks_keeps_its_request_id(fake_anthropic):
    fake_anthropic.fault("cut", times=None)
    run = pipeline_nb.run(pipeline(STEP, retries=0), raise_on_error=False)
    assert run.steps["a"].error.type == "connection_lost"
    assert run.steps["a"].error.request_id == "req_fake_1"


def test_later_steps_are_skipped_but_continue_on_error_runs_when_its_inputs_succeeded(fake_anthropic):
    fake_anthropic.fault("http", status=400, when="first", times=None)
    fake_anthropic.reply("independent", when="second")
    spec = pipeline(
        {"id": "a", "prompt": "first"},
        {"id": "b", "prompt": "uses {{ steps.a.text }}"},
        {"id": "c", "prompt": "second", "continue_on_error": True},
        {"id": "d", "prompt": "uses {{ steps.a.text }}", "continue_on_error": True},
        {"id": "e", "prompt": "uses {{ steps.c.text }}"},
    )

    with pytest.raises(StepError) as raised:
        pipeline_nb.run(spec)

    run = raised.value.run
    assert {s.id: s.status for s in run.steps.values()} == {
        "a": "error", "b": "skipped", "c": "ok", "d": "skipped", "e": "skipped"}
    assert run.steps["c"].text == "independent"
    assert run.steps["b"].note == "skipped: step 'a' failed"
    assert [r.prompt for r in fake_anthropic.requests] == ["first", "second"]
    assert "1 of 5 steps succeeded; results are kept on .run" in str(raised.value)


def test_the_step_timeout_bounds_retries(fake_anthropic):
    fake_anthropic.fault("server_error", times=None)
    started = time.monotonic()
    run = pipeline_nb.run(pipeline(STEP, retries=20, retry_backoff=[0.15, 0.15], timeout=0.4),
                          raise_on_error=False)
    a = run.steps["a"]
    assert time.monotonic() - started < 0.4
    assert (a.status, a.attempts, a.error.type) == ("error", 3, "api_error")  # at 0, 0.15, 0.3 s; not 0.45
    assert a.error.message.endswith("not retried: the step's timeout of 0.4 s would pass first")


def test_the_step_timeout_stops_a_stalled_stream_at_once(fake_anthropic):
    fake_anthropic.reply(REPLY)
    fake_anthropic.fault("stall", after=3, stall_seconds=10)
    started = time.monotonic()
    run = pipeline_nb.run(pipeline(STEP, timeout=0.4), raise_on_error=False)  # read_timeout stays 600 s
    assert time.monotonic() - started < 0.4 + 0.5
    a = run.steps["a"]
    assert (a.status, a.error.type, a.attempts) == ("error", "timeout", 1)
    assert a.text == " ".join(REPLY.split()[:3]) + " "


def test_a_raising_handler_loses_no_result_and_is_named(fake_anthropic):
    fake_anthropic.reply(REPLY)
    seen = []

    def fragile_view(event):
        seen.append(event.kind)
        if event.kind == DELTA and len(seen) > 4:
            raise RuntimeError("widget gone")

    class BrokenOnDone(StreamHandler):
        def on_done(self, response):
            raise ValueError("cannot store")

    buf = BufferHandler()
    run = run_with(pipeline(STEP, {"id": "b", "prompt": "again", "stream": True}), fragile_view, BrokenOnDone(), buf)

    assert [s.status for s in run.steps.values()] == ["ok", "ok"]
    assert run.steps["a"].text == buf.texts["a"] == REPLY
    assert len(seen) == 5  # dropped once it raised; the other handlers went on
    with pytest.raises(StepError) as raised:
        pipeline_nb.raise_for_status(run)
    assert "fragile_view raised RuntimeError: widget gone" in str(raised.value)
    assert "BrokenOnDone raised ValueError: cannot store" in str(raised.value)
    assert raised.value.run is run


def test_events_delivered_twice_change_nothing(fake_anthropic):
    fake_anthropic.reply(REPLY)
    fake_anthropic.fault("overloaded", after=5)
    fake_anthropic.fault("cut", after=2)
    once, twice = BufferHandler(), BufferHandler()
    out_once, out_twice = io.StringIO(), io.StringIO()
    console_once = ConsoleHandler(out_once, io.StringIO(), headers=False)
    console_twice = ConsoleHandler(out_twice, io.StringIO(), headers=False)

    run = run_with(pipeline(STEP), once, console_once, _Twice(twice), _Twice(console_twice))

    assert run.steps["a"].attempts == 3
    assert twice.texts == once.texts == {"a": REPLY}
    assert twice.responses == once.responses
    assert [e for e in twice.events if e.kind in (DELTA, RETRY)] == [e for e in once.events if e.kind in (DELTA, RETRY)]
    assert out_twice.getvalue() == out_once.getvalue()


def run_with(text: str, *handlers) -> PipelineRun:
    """Run ``text`` with several handlers, as the magic and the CLI do."""
    return execute(load_spec(text), RunOptions(handlers=handlers))


class _Twice:
    """Delivers every event to ``inner`` twice."""

    def __init__(self, inner):
        self.inner = inner

    def init(self, run):
        self.inner.init(run)

    def handle_event(self, event):
        self.inner.handle_event(event)
        self.inner.handle_event(event)

    def close(self):
        self.inner.close()
