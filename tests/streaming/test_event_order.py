"""Events reach handlers in order: kinds, seq numbers and text add up, on the mock and
through the real anthropic SDK against FakeAnthropic."""

from __future__ import annotations

import threading
from typing import Any

import pipeline_nb
from pipeline_nb.streaming import Chunk, Event, Response
from pipeline_nb.testing import FakeAnthropic

SPEC = """
name: order
defaults: {mock_delay: 0, stream: true}
steps:
  - id: first
    prompt: "Tell me about {{ topic }}"
  - id: second
    prompt: "Critique: {{ steps.first.text }}"
"""

CLAUDE = """
name: order
defaults: {provider: claude, stream: true, retry_backoff: [0, 0]}
steps:
  - id: first
    prompt: "first question"
  - id: second
    prompt: "second question"
"""


def owner(event: Event) -> str | None:
    if event.kind in ("run_start", "run_end"):
        return None
    return getattr(event.data, "step_id", None) or event.data.id


def shape(events: list[Event]) -> list[tuple[str, str | None]]:
    """Kinds with their step, each run of deltas collapsed into one ``delta+``."""
    out: list[tuple[str, str | None]] = []
    for event in events:
        item = ("delta+" if event.kind == "delta" else event.kind, owner(event))
        if not (item[0] == "delta+" and out and out[-1] == item):
            out.append(item)
    return out


def per_step(step: str, *, retry: bool = False) -> list[tuple[str, str | None]]:
    middle = [("delta+", step), ("retry", step), ("delta+", step)] if retry else [("delta+", step)]
    return [("step_start", step), *middle, ("done", step), ("step_end", step)]


def check_seqs(events: list[Event]) -> dict[tuple[str, int], list[int]]:
    """Seq numbers per (step, attempt): 1, 2, 3, ... with no gap or repeat."""
    seqs: dict[tuple[str, int], list[int]] = {}
    for event in events:
        if event.kind == "delta":
            seqs.setdefault((event.data.step_id, event.data.attempt), []).append(event.data.seq)
    for key, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), key
    return seqs


def streamed_text(events: list[Event], step: str, attempt: int | None = None) -> str:
    return "".join(e.data.content for e in events
                   if e.kind == "delta" and e.data.step_id == step and attempt in (None, e.data.attempt))


def test_two_streamed_steps_arrive_in_order_with_seqs_and_text() -> None:
    events: list[Event] = []
    run = pipeline_nb.run(SPEC, vars={"topic": "tides"}, on_event=events.append)
    assert shape(events) == [("run_start", None), *per_step("first"), *per_step("second"), ("run_end", None)]
    seqs = check_seqs(events)
    assert set(seqs) == {("first", 1), ("second", 1)}
    assert all(len(s) > 5 for s in seqs.values())
    for step in ("first", "second"):
        assert streamed_text(events, step) == run.steps[step].text != ""
        done = [e.data for e in events if e.kind == "done" and e.data.step_id == step]
        assert len(done) == 1 and done[0].text == run.steps[step].text
    assert "Tell me about tides" in run.steps["first"].text
    assert events[-1].data is run and run.status == "ok"


def test_unstreamed_steps_send_no_deltas_but_done_has_the_text() -> None:
    events: list[Event] = []
    run = pipeline_nb.run(SPEC, vars={"topic": "tides"}, on_event=events.append, stream=False)
    assert shape(events) == [
        ("run_start", None),
        ("step_start", "first"), ("done", "first"), ("step_end", "first"),
        ("step_start", "second"), ("done", "second"), ("step_end", "second"),
        ("run_end", None),
    ]
    assert [e.data.text for e in events if e.kind == "done"] == [run.steps["first"].text, run.steps["second"].text]


def test_handlers_are_called_on_the_calling_thread() -> None:
    threads: set[str] = set()
    pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=lambda e: threads.add(threading.current_thread().name))
    assert threads == {threading.current_thread().name}


def test_claude_stream_through_fake_anthropic(fake_anthropic: FakeAnthropic) -> None:
    chunks = {"first": ["Hel", "lo, ", "stream", "ing ", "world!"], "second": ["Second ", "answer", "."]}
    fake_anthropic.reply("".join(chunks["first"]), when="first question", chunks=chunks["first"], usage=(7, 5))
    fake_anthropic.reply("".join(chunks["second"]), when="second question", chunks=chunks["second"])
    events: list[Event] = []
    run = pipeline_nb.run(CLAUDE, on_event=events.append)
    assert shape(events) == [("run_start", None), *per_step("first"), *per_step("second"), ("run_end", None)]
    check_seqs(events)
    for step in ("first", "second"):
        # the SDK's text deltas reach the handler one for one, in order
        assert [e.data.content for e in events if e.kind == "delta" and e.data.step_id == step] == chunks[step]
        assert streamed_text(events, step) == run.steps[step].text == "".join(chunks[step])
    done = next(e.data for e in events if e.kind == "done")
    assert done.request_id == "req_fake_1" and done.usage.input_tokens == 7 and done.stop_reason == "end_turn"
    assert [r.prompt for r in fake_anthropic.requests] == ["first question", "second question"]
    assert all(r.stream for r in fake_anthropic.requests)


def test_retry_restarts_seqs_and_only_the_last_attempt_is_the_text(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("one two three four five", when="first")
    fake_anthropic.reply("fine", when="second")
    fake_anthropic.fault("overloaded", when="first", after=2)
    events: list[Event] = []
    run = pipeline_nb.run(CLAUDE, on_event=events.append)
    assert shape(events)[1:7] == per_step("first", retry=True)
    seqs = check_seqs(events)
    assert seqs[("first", 1)] == [1, 2] and len(seqs[("first", 2)]) == 5
    retry = next(e.data for e in events if e.kind == "retry")
    assert (retry.step_id, retry.attempt, retry.reason) == ("first", 1, "overloaded_error")
    assert streamed_text(events, "first", attempt=2) == run.steps["first"].text == "one two three four five"
    assert run.steps["first"].attempts == 2


def describe(event: Event) -> Any:
    """What a guide-style handler does with ``match``."""
    match event:
        case ("delta", chunk):
            return f"+{chunk.content}"
        case ("done", response):
            return f"={response.text}"
        case Event(kind="step_start", data=step):
            return f"[{step.id}"
        case _:
            return None


def test_events_work_with_match_statements() -> None:
    assert describe(Event("delta", Chunk("a", 1, 1, "Hi"))) == "+Hi"
    kind, data = Event("done", Response("a", 1, "Hi", pipeline_nb.Usage(), "end_turn", "m"))
    assert kind == "done" and data.text == "Hi"
    seen: list[str] = []
    run = pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=lambda e: seen.append(describe(e)))
    seen = [s for s in seen if s]
    first_done = seen.index(f"={run.steps['first'].text}")
    assert seen[0] == "[first"
    assert "".join(s[1:] for s in seen[1:first_done]) == run.steps["first"].text
    assert seen[first_done + 1] == "[second" and seen[-1] == f"={run.steps['second'].text}"
    match Event("delta", Chunk("a", 2, 3, "x")):
        case Event(kind="delta", data=Chunk(step_id=step, attempt=2, seq=seq)):
            assert (step, seq) == ("a", 3)
        case _:
            raise AssertionError("class pattern did not match")
