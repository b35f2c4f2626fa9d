"""What wraps every provider works with provider: gemini: cassettes (record a streamed reply,
replay it offline), a resumed run reusing its replies, and estimates from countTokens."""

from __future__ import annotations

import sys

import pipeline_nb
from pipeline_nb.testing import FakeGemini

STREAMED = """
name: gemini-engine
steps:
  - {id: a, provider: gemini, model: gemini-2.5-flash, prompt: Tell me about tides, stream: true}
  - {id: b, provider: gemini, model: gemini-2.5-flash, prompt: "Shorter: {{ steps.a.text }}"}
"""


def deltas_of(events: list) -> list[str]:
    return [e.data.content for e in events if e.kind == "delta"]


def test_a_streamed_reply_recorded_to_a_cassette_replays_offline(fake_gemini: FakeGemini, tmp_path, monkeypatch):
    fake_gemini.reply("Tides follow the moon.", when="tides", chunks=["Tides ", "follow ", "the ", "moon."])
    fake_gemini.reply("Moon tides.", when="Shorter")
    cassette = tmp_path / "gemini.jsonl"
    live_events: list = []
    recorded = pipeline_nb.run(STREAMED, cassette=cassette, cassette_mode="record", on_event=live_events.append)
    assert [s.text for s in recorded.steps.values()] == ["Tides follow the moon.", "Moon tides."]
    assert len(fake_gemini.requests) == 2
    fake_gemini.stop()  # offline from here: no server, no key, no endpoint
    for name in ("GEMINI_API_KEY", "GEMINI_BASE_URL"):
        monkeypatch.delenv(name)
    replay_events: list = []
    replayed = pipeline_nb.run(STREAMED, cassette=cassette, cassette_mode="replay", on_event=replay_events.append)
    assert [(s.status, s.text) for s in replayed.steps.values()] == [("ok", "Tides follow the moon."), ("ok", "Moon tides.")]
    assert deltas_of(replay_events) == deltas_of(live_events) == ["Tides ", "follow ", "the ", "moon."]
    assert replayed.steps["a"].usage == recorded.steps["a"].usage


def test_a_cassette_replays_without_google_genai_installed(fake_gemini: FakeGemini, tmp_path, monkeypatch):
    cassette = tmp_path / "gemini.jsonl"
    pipeline_nb.run(STREAMED, cassette=cassette, cassette_mode="record")
    monkeypatch.setitem(sys.modules, "google.genai", None)
    replayed = pipeline_nb.run(STREAMED, cassette=cassette, cassette_mode="replay")
    assert replayed.steps["b"].text == "Fake reply to: Shorter: Fake reply to: Tell me about tides"


def test_a_resumed_run_reuses_gemini_replies_instead_of_calling(fake_gemini: FakeGemini, tmp_path):
    journal = tmp_path / "journal.sqlite"
    first = pipeline_nb.run(STREAMED, journal=journal)
    assert len(fake_gemini.requests) == 2
    again = pipeline_nb.run(STREAMED, journal=journal, resume=True)
    assert len(fake_gemini.requests) == 2  # nothing sent
    assert [s.text for s in again.steps.values()] == [s.text for s in first.steps.values()]
    assert all(s.note.startswith("reused from run") for s in again.steps.values())


def test_an_estimate_counts_input_tokens_with_count_tokens(fake_gemini: FakeGemini):
    spec = """
steps:
  - {id: a, provider: gemini, model: gemini-2.5-flash, system: Answer in one line., max_tokens: 100,
     prompt: "What is the tallest mountain on Earth, and how tall is it?"}
"""
    estimate = pipeline_nb.run(spec, estimate=True)
    counted = [r for r in fake_gemini.requests if r.path.endswith(":countTokens")]
    assert len(counted) == 1 and len(fake_gemini.requests) == 1  # counted, not called
    row = estimate.steps[0]
    # the system text is counted as a first user turn: the same text the call's promptTokenCount covers
    assert row.exact and row.input_tokens == len("Answer in one line.") // 4 + len(
        "What is the tallest mountain on Earth, and how tall is it?") // 4 + 1
    ran = pipeline_nb.run(spec)
    assert ran.steps["a"].usage.input_tokens == row.input_tokens


def test_a_budget_prices_gemini_usage_and_refuses_a_call_that_could_pass_it(fake_gemini: FakeGemini):
    fake_gemini.reply("ok", usage=(1000, 1000))
    spec = """
defaults:
  pricing: {gemini-2.5-flash: {input: 1, output: 1}}
  max_cost: 0.0024  # the first call fits (worst ~$0.0005); after its $0.002, the second cannot
steps:
  - {id: a, provider: gemini, model: gemini-2.5-flash, prompt: first, max_tokens: 500}
  - {id: b, provider: gemini, model: gemini-2.5-flash, prompt: second, max_tokens: 500}
"""
    result = pipeline_nb.run(spec, raise_on_error=False)
    first, second = result.steps["a"], result.steps["b"]
    assert first.status == "ok" and first.cost == 0.002  # 1,000 + 1,000 tokens at $1 a million
    assert second.error.type == "budget_exceeded" and len(fake_gemini.requests) == 1
