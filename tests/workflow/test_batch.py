"""batch: true on a for_each llm step: Message Batches through the real SDK against FakeAnthropic
(and the mock provider), results back in input order, per-item failures, progress, cassettes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pipeline_nb
from pipeline_nb.providers import _claude as claude
from pipeline_nb.streaming import BufferHandler
from pipeline_nb.testing import FakeAnthropic

SPEC = """
defaults: {provider: claude, batch_poll_interval: 0.01, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}
steps:
  - id: fan
    for_each: words
    as: word
    batch: true
    prompt: "Define {{ word }}"
  - id: after
    prompt: "Count {{ steps.fan.output | length }}"
"""
WORDS = ["tide", "moon", "sun", "neap", "spring"]


def script(fake: FakeAnthropic) -> None:
    for word in WORDS:
        fake.reply(f"{word}: defined.", when=f"Define {word}", usage=(10, 4))
    fake.reply("five", when="Count")


def test_items_go_out_as_one_batch_and_come_back_in_input_order(fake_anthropic: FakeAnthropic) -> None:
    script(fake_anthropic)
    fake_anthropic.batch_polls(3)
    events = BufferHandler()
    run = pipeline_nb.run(SPEC, vars={"words": WORDS}, on_event=events)
    fan = run.steps["fan"]
    assert fan.status == "ok" and fan.note == "5 items in a batch"
    assert fan.output == [f"{w}: defined." for w in WORDS]  # the fake returns results out of order
    assert [item.id for item in fan.items] == [f"fan[{i}]" for i in range(5)]
    assert fake_anthropic.batches == [(fake_anthropic.batches[0][0], 5)]
    batch_requests = [r for r in fake_anthropic.requests if r.batch_id]
    assert sorted(r.prompt for r in batch_requests) == sorted(f"Define {w}" for w in WORDS)
    assert all(r.stream is False for r in batch_requests)
    notes = [e.data.note for e in events.events if e.kind == "progress" and e.data.id == "fan"]
    assert notes[0].startswith("batch: 5 processing") and notes[-1] == "batch: 0 processing · 5 succeeded"
    assert len(notes) >= 3  # the counts moved while it polled
    assert [e.data.step_id for e in events.events if e.kind == "done"][:5] == [f"fan[{i}]" for i in range(5)]
    assert fan.usage.input_tokens == 50 and fan.cost == pytest.approx(5 * (10 * 3 + 4 * 15) / 1e6 / 2)
    assert run.steps["after"].text == "five"


def test_errored_and_expired_items_are_reported_each_with_its_status(fake_anthropic: FakeAnthropic) -> None:
    script(fake_anthropic)
    fake_anthropic.fault("http", when="Define moon", status=400, error_type="invalid_request_error",
                         message="prompt is too long")
    fake_anthropic.fault("expired", when="Define neap")
    run = pipeline_nb.run(SPEC, vars={"words": WORDS}, raise_on_error=False)
    fan = run.steps["fan"]
    assert fan.status == "error" and fan.note == "5 items in a batch, 2 failed"
    statuses = {item.id: (item.status, item.error.type if item.error else None) for item in fan.items}
    assert statuses == {"fan[0]": ("ok", None), "fan[1]": ("error", "invalid_request_error"),
                        "fan[2]": ("ok", None), "fan[3]": ("error", "expired"), "fan[4]": ("ok", None)}
    assert "prompt is too long" in fan.items[1].error.message
    assert "24 h" in fan.items[3].error.message
    assert fan.output[0] == "tide: defined." and fan.output[1] is None  # what succeeded is kept
    assert run.steps["after"].status == "skipped"


def test_more_requests_than_one_batch_holds_are_split(fake_anthropic: FakeAnthropic, monkeypatch) -> None:
    script(fake_anthropic)
    monkeypatch.setattr(claude, "MAX_BATCH_REQUESTS", 2)
    run = pipeline_nb.run(SPEC, vars={"words": WORDS})
    assert [size for _, size in fake_anthropic.batches] == [2, 2, 1]
    assert run.steps["fan"].output == [f"{w}: defined." for w in WORDS]


def test_a_batch_records_to_and_replays_from_a_cassette(fake_anthropic: FakeAnthropic, tmp_path) -> None:
    script(fake_anthropic)
    cassette = tmp_path / "batch.jsonl"
    first = pipeline_nb.run(SPEC, vars={"words": WORDS}, cassette=cassette, cassette_mode="record")
    assert len(cassette.read_text().splitlines()) == 6  # five items and the last step
    fake_anthropic.clear()
    second = pipeline_nb.run(SPEC, vars={"words": WORDS}, cassette=cassette, cassette_mode="replay")
    assert fake_anthropic.requests == [] and fake_anthropic.batches == []
    assert second.steps["fan"].output == first.steps["fan"].output
    third = pipeline_nb.run(SPEC, vars={"words": [*WORDS, "ebb"]}, cassette=cassette, cassette_mode="replay",
                            raise_on_error=False)
    assert third.steps["fan"].items[5].error.type == "cassette_miss"
    assert [i.status for i in third.steps["fan"].items[:5]] == ["ok"] * 5


def test_auto_sends_only_the_missing_items(fake_anthropic: FakeAnthropic, tmp_path) -> None:
    script(fake_anthropic)
    fake_anthropic.reply("ebb: defined.", when="Define ebb")
    cassette = tmp_path / "batch.jsonl"
    pipeline_nb.run(SPEC, vars={"words": WORDS[:3]}, cassette=cassette)
    fake_anthropic.clear()
    script(fake_anthropic)
    fake_anthropic.reply("ebb: defined.", when="Define ebb")
    run = pipeline_nb.run(SPEC, vars={"words": [*WORDS, "ebb"]}, cassette=cassette)
    assert [size for _, size in fake_anthropic.batches] == [3]
    assert run.steps["fan"].output[-1] == "ebb: defined."


def test_an_interrupt_cancels_the_batch(fake_anthropic: FakeAnthropic) -> None:
    script(fake_anthropic)
    fake_anthropic.batch_polls(10_000)  # never ends by itself
    spec = SPEC.replace("batch_poll_interval: 0.01", "batch_poll_interval: 0.05")
    progress: list[str] = []

    def stop_on_progress(event) -> None:  # Ctrl-C while the batch is polled
        if event.kind == "progress":
            progress.append(event.data.note)
            if len(progress) == 3:
                raise KeyboardInterrupt

    with pytest.raises(pipeline_nb.RunInterrupted) as stopped:
        pipeline_nb.run(spec, vars={"words": WORDS}, on_event=stop_on_progress)
    fan = stopped.value.run.steps["fan"]
    assert fan.status == "interrupted" and {i.status for i in fan.items} == {"interrupted"}
    (batch_id, _), = fake_anthropic.batches
    assert [r.path for r in fake_anthropic.requests if r.path.endswith("/cancel")] == [
        f"/v1/messages/batches/{batch_id}/cancel"]


def test_the_cli_shows_batch_progress(fake_anthropic: FakeAnthropic, tmp_path) -> None:
    spec_file = tmp_path / "batch.yaml"
    spec_file.write_text(SPEC.replace("for_each: words", "for_each: \"['tide', 'moon']\""))
    script(fake_anthropic)
    done = subprocess.run([sys.executable, "-m", "pipeline_nb", "run", str(spec_file)], capture_output=True,
                          text=True, timeout=60,
                          env={"ANTHROPIC_BASE_URL": fake_anthropic.base_url, "ANTHROPIC_API_KEY": "sk-ant-test",
                               "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    assert "[fan: batch: 2 processing]" in done.stderr
    assert done.stdout.splitlines()[:2] == ["tide: defined.", "moon: defined."]


def test_the_mock_provider_batches_offline() -> None:
    run = pipeline_nb.run("steps:\n  - {id: fan, for_each: '[1, 2]', batch: true, prompt: 'n {{ item }}'}\n")
    assert run.steps["fan"].note == "2 items in a batch"
    assert [text.split("You asked: ")[1].split("\n")[0] for text in run.steps["fan"].output] == ["n 1", "n 2"]


@pytest.mark.parametrize(("yaml", "message"), [
    ("steps:\n  - {id: a, prompt: hi, batch: true}\n", "2:32: step 'a': 'batch' needs for_each"),
    ("steps:\n  - {id: a, for_each: '[1]', prompt: hi, batch: true, stream: true}\n",
     "2:63: step 'a': a batch step cannot stream"),
    ("steps:\n  - {id: a, for_each: '[1]', call: len, batch: true}\n",
     "2:48: step 'a': 'batch' does not apply to a python step"),
    ("steps:\n  - {id: a, for_each: '[1]', prompt: hi, batch: yes please}\n", "2:49: step 'a': batch must be a boolean"),
])
def test_batch_keys_are_checked_with_line_and_column(yaml: str, message: str) -> None:
    with pytest.raises(pipeline_nb.PipelineSpecError, match=message):
        pipeline_nb.run(yaml)
