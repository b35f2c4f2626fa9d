"""repeat: N samples of a call, concurrently, each checked; the cassette keeps N replies apart."""

from __future__ import annotations

from pathlib import Path

from pipeline_nb.streaming import Event
from pipeline_nb.testing import FakeAnthropic

from _ev import run

SAMPLED = """
steps:
  - id: a
    prompt: "Pick a city."
    repeat: 3
    stream: true
    expect:
      - contains: Paris
      - regex: '\\.$'
  - id: b
    prompt: "You said {{ steps.a.text }} ({{ steps.a.samples | length }} samples)"
"""


def script(fake: FakeAnthropic) -> None:
    for city in ("Paris.", "Lyon.", "Paris!"):
        fake.reply(city, when="Pick", times=1, delay=0.05)
    fake.reply("noted")


def test_samples_run_concurrently_and_each_is_checked(fake_anthropic: FakeAnthropic) -> None:
    script(fake_anthropic)
    events: list[Event] = []
    result = run(SAMPLED, on_event=events.append)
    a = result.steps["a"]
    assert [s.id for s in a.samples] == ["a#1", "a#2", "a#3"] and [s.sample for s in a.samples] == [1, 2, 3]
    assert sorted(s.text for s in a.samples) == ["Lyon.", "Paris!", "Paris."]
    assert fake_anthropic.max_concurrent >= 2  # within max_parallel (4), not one after another
    assert a.text == a.samples[0].text and a.note == "3 samples"
    assert a.usage.output_tokens == sum(s.usage.output_tokens for s in a.samples)
    rates = {r.name: str(r) for r in a.checks.rates()}
    assert rates == {'contains "Paris"': "2/3", "regex /\\.$/": "2/3"}
    assert result.steps["b"].status == "ok" and f"You said {a.text} (3 samples)" in fake_anthropic.requests[-1].prompt
    assert {e.data.step_id for e in events if e.kind == "delta"} == {"a#1", "a#2", "a#3"}
    notes = [e.data.note for e in events if e.kind == "progress"]
    assert notes[0] == "0 of 3 samples" and notes[-1] == "3 of 3 samples"
    assert result.to_pandas()["sample"].tolist()[:3] == [1, 2, 3]


def test_a_cassette_replays_the_same_n_replies_in_sample_order(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    cassette = tmp_path / "samples.jsonl"
    script(fake_anthropic)
    recorded = run(SAMPLED, cassette=cassette, cassette_mode="record")
    assert len(cassette.read_text().splitlines()) == 4  # three samples and b: one entry each
    fake_anthropic.clear()
    replayed = run(SAMPLED, cassette=cassette, cassette_mode="replay")
    assert fake_anthropic.requests == []
    assert [s.text for s in replayed.steps["a"].samples] == [s.text for s in recorded.steps["a"].samples]
    assert [c.passed for c in replayed.checks] == [c.passed for c in recorded.checks]


def test_a_failed_sample_counts_against_the_pass_rate_and_the_step(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, times=1)
    fake_anthropic.reply("Paris.")
    result = run("""
        steps:
          - id: a
            prompt: "Pick a city."
            repeat: 2
            max_parallel: 1
            expect: [{contains: Paris}]
    """)
    a = result.steps["a"]
    assert a.status == "error" and a.error.type == "sample_failed"
    assert a.text == "Paris." and a.note == "2 samples, 1 failed"  # the good sample's text is kept
    assert [(c.step_id, c.passed) for c in a.checks] == [("a#1", False), ("a#2", True)]
