"""The streaming hot path stays correct when optimised: the received text is kept in
blocks (not one object per delta), and the live view batches small deltas into messages
that carry at least ``min_chars`` unless ``max_wait`` has passed. No timings asserted."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb._llm_call import Received
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb.streaming._events import DELTA, RETRY, Chunk, Event, RetryInfo

pytest.importorskip("anywidget")

from pipeline_nb.display import _live as live  # noqa: E402


def test_received_joins_deltas_into_blocks() -> None:
    parts = [f"w{i} " for i in range(1000)]
    received = Received()
    for part in parts:
        received.append(part)
    assert received.count == 1000
    assert str(received) == "".join(received) == "".join(parts)
    assert len(received._blocks) == 1000 // Received.BLOCK and len(received._tail) < Received.BLOCK


def test_received_reads_a_consistent_prefix_while_the_worker_appends() -> None:
    parts = [f"{i:06d}" for i in range(60_000)]
    received = Received()

    def worker() -> None:
        for part in parts:
            received.append(part)

    thread = threading.Thread(target=worker)
    thread.start()
    final = "".join(parts)
    seen = 0
    while thread.is_alive() or seen < len(final):
        text = str(received)
        assert final.startswith(text) and len(text) >= seen and len(text) % 6 == 0
        seen = len(text)
    thread.join()


class Recorder(live.LiveView):
    made: list[Recorder] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[tuple[float, dict[str, Any]]] = []
        Recorder.made.append(self)

    def send(self, content: Any, buffers: Any = None) -> None:
        self.messages.append((live.time.monotonic(), content))


class RecordingHandler(live.WidgetHandler):
    view_class = Recorder



def started(handler: RecordingHandler) -> Recorder:
    run = PipelineRun(name="t", steps={"a": StepResult("a", type="llm")})
    handler.init(run)
    assert isinstance(handler.view, Recorder)
    return handler.view


def delta(seq: int, text: str, attempt: int = 1) -> Event:
    return Event(DELTA, Chunk("a", attempt, seq, text))


def texts(view: Recorder) -> list[str]:
    return [text for _, m in view.messages for _, text, _ in m.get("text", ())]


def last_count(view: Recorder) -> int:
    """The deltas-so-far count of the last text sent."""
    return [n for _, m in view.messages for _, _, n in m.get("text", ())][-1]


def test_first_text_goes_at_once_then_small_deltas_wait(clock: list[float], capsys: Any) -> None:
    handler = RecordingHandler(interval=0.05, min_chars=100, max_wait=0.2)
    view = started(handler)
    handler.handle_event(delta(1, "Hello"))
    assert texts(view) == ["Hello"]  # time to first token: no waiting
    for seq in range(2, 12):  # 10 small deltas, 0.06 s apart: past interval, short of min_chars
        clock[0] += 0.06
        handler.handle_event(delta(seq, " w"))
        handler.flush()  # the engine's quiet flush respects max_wait too
        if seq < 5:
            assert texts(view) == ["Hello"]
    # sent once max_wait had passed: every 0.24 s here, never one message per delta
    assert texts(view)[0] == "Hello" and 2 <= len(texts(view)) <= 4
    handler.handle_event(Event("step_end", StepResult("a", type="llm", status="ok")))
    assert "".join(texts(view)) == "Hello" + " w" * 10
    assert last_count(view) == 11


def test_a_fast_stream_sends_messages_of_at_least_min_chars(clock: list[float], capsys: Any) -> None:
    handler = RecordingHandler(interval=0.05, min_chars=100, max_wait=0.2)
    view = started(handler)
    for seq in range(1, 401):
        clock[0] += 0.01  # 100 deltas a second of 5 characters: 500 characters a second
        handler.handle_event(delta(seq, "word "))
    handler.handle_event(Event("step_end", StepResult("a", type="llm", status="ok")))
    sent = texts(view)
    assert "".join(sent) == "word " * 400
    assert all(len(t) >= 100 for t in sent[1:-1])
    assert last_count(view) == 400


def test_a_retry_drops_the_pending_text_and_its_count(clock: list[float], capsys: Any) -> None:
    handler = RecordingHandler(interval=0.05, min_chars=100, max_wait=0.2)
    view = started(handler)
    handler.handle_event(delta(1, "x" * 10))
    handler.handle_event(delta(2, "y" * 60))
    handler.handle_event(Event(RETRY, RetryInfo("a", 1, 2, "overloaded_error", 0.0)))
    assert handler._pending_chars == 0
    handler.handle_event(delta(1, "fresh", attempt=2))
    clock[0] += 0.1  # past the interval: the budget allows the next message
    handler.handle_event(Event("step_end", StepResult("a", type="llm", status="ok")))
    reset_at = [i for i, (_, m) in enumerate(view.messages) if m.get("reset") == ["a"]][-1]
    after_reset = [text for _, m in view.messages[reset_at:] for _, text, _ in m.get("text", ())]
    assert after_reset == ["fresh"]


def test_a_burst_through_the_engine_arrives_whole_and_in_order(capsys: Any) -> None:
    words = [f"w{i} " for i in range(3000)]
    Recorder.made.clear()
    run = pipeline_nb.run({"steps": [{"id": "a", "prompt": "x", "stream": True, "mock_response": "".join(words),
                                      "mock_delay": 0, "max_tokens": 5000}]}, on_event=RecordingHandler())
    assert run.steps["a"].text == "".join(words)
    (view,) = Recorder.made
    sent = texts(view)
    assert "".join(sent) == run.steps["a"].text and sent[0].startswith("w0 ")
    assert last_count(view) == 3000
    assert len(sent) < 3000 / 10  # batched, whatever the machine's pace
