"""WidgetHandler coalesces deltas: about one message per ``interval`` whatever the delta
rate, each byte of text sent once and in order. Runs outside a kernel (display prints)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pipeline_nb

pytest.importorskip("anywidget")

from pipeline_nb.display._live import LiveView, WidgetHandler  # noqa: E402
from pipeline_nb.testing import FakeAnthropic  # noqa: E402


class CountingView(LiveView):
    """A LiveView that keeps every custom message it sends, with the time it was sent."""

    made: list[CountingView] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.rows_synced = 0  # rows go as state: each change is one message of its own
        self.observe(self._count_rows, names="rows")
        CountingView.made.append(self)

    def _count_rows(self, change: Any) -> None:
        self.rows_synced += 1

    def send(self, content: Any, buffers: Any = None) -> None:
        self.messages.append((time.monotonic(), content))
        super().send(content, buffers)


class CountingHandler(WidgetHandler):
    view_class = CountingView


@pytest.fixture
def handler() -> CountingHandler:
    CountingView.made.clear()
    return CountingHandler(interval=0.05)


def words(n: int) -> list[str]:
    return [f"w{i} " for i in range(n)]


def appends(view: CountingView, step: str) -> list[tuple[float, str, int]]:
    """``(when, text, deltas so far)`` of each message's text for ``step``, after its last reset."""
    out: list[tuple[float, str, int]] = []
    for at, msg in view.messages:
        if step in msg.get("reset", ()):
            out = []
        out += [(at, text, n) for step_id, text, n in msg.get("text", ()) if step_id == step]
    return out


def check_text(view: CountingView, step: str, text: str, deltas: int) -> list[tuple[float, str, int]]:
    sent = appends(view, step)
    assert "".join(t for _, t, _ in sent) == text  # in order
    assert sum(len(t) for _, t, _ in sent) == len(text)  # each character once
    assert sent[-1][2] == deltas
    return sent


def test_a_burst_of_2000_deltas_is_a_handful_of_messages(handler: CountingHandler,
                                                         fake_anthropic: FakeAnthropic) -> None:
    chunks = words(2000)
    fake_anthropic.reply("".join(chunks), chunks=chunks)
    run = pipeline_nb.run("steps:\n  - id: a\n    provider: claude\n    prompt: go\n    stream: true\n",
                          on_event=handler)
    text = run.steps["a"].text
    assert text == "".join(chunks)
    (view,) = CountingView.made
    sent = check_text(view, "a", text, 2000)
    span = sent[-1][0] - sent[0][0]
    assert len(sent) <= span / handler.interval + 3 and len(sent) < 100
    assert handler.sends == len(view.messages) + view.rows_synced  # every message is counted
    assert handler.view is None and view.rows[0]["status"] == "ok"


def test_a_paced_stream_sends_about_once_per_interval(handler: CountingHandler) -> None:
    text = "".join(words(300))
    started = time.monotonic()
    run = pipeline_nb.run({"steps": [{"id": "a", "prompt": "x", "stream": True, "mock_response": text,
                                      "mock_delay": 0.002, "max_tokens": 1000}]}, on_event=handler)
    elapsed = time.monotonic() - started
    assert run.steps["a"].text == text
    (view,) = CountingView.made
    sent = check_text(view, "a", text, 300)
    # at most one message per interval (plus the flush at step end); several while streaming
    assert 3 <= len(sent) <= elapsed / handler.interval + 2
    gaps = [b[0] - a[0] for a, b in zip(sent, sent[1:])]
    assert sum(gap < handler.interval * 0.9 for gap in gaps) <= 1


def test_two_steps_and_a_retry_reset_the_pane(handler: CountingHandler, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("first answer here", when="one")
    fake_anthropic.reply("second answer", when="two")
    fake_anthropic.fault("overloaded", when="one", after=2)
    run = pipeline_nb.run(
        "defaults: {provider: claude, stream: true, retry_backoff: [0, 0]}\n"
        "steps:\n  - id: a\n    prompt: one\n  - id: b\n    prompt: two\n", on_event=handler)
    (view,) = CountingView.made
    assert any(m.get("reset") == ["a"] for _, m in view.messages)
    check_text(view, "a", run.steps["a"].text, 3)
    check_text(view, "b", run.steps["b"].text, 2)
    assert [r["status"] for r in view.rows] == ["ok", "ok"]
