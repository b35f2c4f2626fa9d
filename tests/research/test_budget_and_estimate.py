"""A run's budget (max_cost) and its estimate, wired through run(): the budget stops a for_each
and the live view shows spent against it; an estimate calls no model and counts with the API."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.display import LiveView, WidgetHandler
from pipeline_nb.testing import FakeAnthropic

PRICED = "{claude-sonnet-5-5: {input: 3, output: 15}}"


class TitledView(LiveView):
    titles: list[str] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observe(lambda change: TitledView.titles.append(change["new"]), names="title")


class TitledHandler(WidgetHandler):
    view_class = TitledView


def test_max_cost_stops_a_for_each_keeps_what_ran_and_the_view_shows_the_budget(capsys) -> None:
    TitledView.titles.clear()
    run = pipeline_nb.run(dedent(f"""
        defaults: {{max_cost: 0.001, pricing: {PRICED}, max_tokens: 20, mock_delay: 0}}
        steps:
          - {{id: fan, for_each: "{{{{ range(10) | list }}}}", prompt: "item {{{{ item }}}}", max_parallel: 1}}
          - {{id: after, prompt: later}}
        """), on_event=TitledHandler(), raise_on_error=False)
    items = run.steps["fan"].items
    done = [i for i in items if i.ok]
    assert 1 <= len(done) < 10 and all(i.error.type == "budget_exceeded" for i in items if not i.ok)
    assert run.steps["after"].status == "skipped" and run.cost <= 0.001
    assert "raise max_cost" in items[-1].error.message
    assert TitledView.titles and TitledView.titles[-1].endswith("of $0.0010 spent")


def test_max_cost_needs_a_price_for_every_model_it_may_call() -> None:
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run("defaults: {max_cost: 1}\nsteps:\n  - {id: a, prompt: hi}\n")
    assert "has no price" in str(raised.value) and "a" == raised.value.step_id


def test_an_estimate_calls_no_model_and_its_counts_match_the_run(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("A short answer.")
    source = dedent(f"""
        defaults: {{provider: claude, pricing: {PRICED}, max_tokens: 100}}
        steps:
          - {{id: fan, for_each: [tides, moons, comets], prompt: "Explain {{{{ item }}}} briefly."}}
          - {{id: after, prompt: "Summarize {{{{ steps.fan.text }}}}"}}
        """)
    estimate = pipeline_nb.run(source, estimate=True)
    assert {r.path for r in fake_anthropic.requests} == {"/v1/messages/count_tokens"}
    fan, after = estimate.steps
    assert (fan.calls, after.calls) == (3, 1) and after.bound and not fan.bound
    run = pipeline_nb.run(source)
    assert fan.input_tokens == sum(i.usage.input_tokens for i in run.steps["fan"].items)
    assert after.input_tokens >= run.steps["after"].usage.input_tokens
    assert "no model was called" in estimate.describe()


def test_an_estimate_is_recorded_in_the_cassette_and_replays_offline(tmp_path, monkeypatch) -> None:
    cassette = tmp_path / "estimate.jsonl"
    source = f"defaults: {{provider: claude, pricing: {PRICED}}}\nsteps:\n  - {{id: a, prompt: 'Explain tides.'}}\n"
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        recorded = pipeline_nb.run(source, estimate=True, cassette=cassette, cassette_mode="record")
        assert len(fake.requests) == 1
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    replayed = pipeline_nb.run(source, estimate=True, cassette=cassette, cassette_mode="replay")
    assert replayed.steps[0].input_tokens == recorded.steps[0].input_tokens
    assert not replayed.warnings and "~" not in replayed.describe().split("\n")[2]  # counted, not guessed


def test_the_cli_estimates_without_calling_and_takes_a_budget(tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "demo.yaml").write_text(f"name: demo\ndefaults: {{pricing: {PRICED}}}\nsteps:\n"
                                        "  - {id: fan, for_each: [a, b], prompt: 'item {{ item }}'}\n")
    cli = [sys.executable, "-m", "pipeline_nb", "run", "demo.yaml"]
    estimated = subprocess.run([*cli, "--estimate"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert estimated.returncode == 0 and "Estimate of 'demo' (no model was called)" in estimated.stdout
    assert "fan        2" in estimated.stdout and not estimated.stderr
    budgeted = subprocess.run([*cli, "--max-cost", "0.00001"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    assert budgeted.returncode == 1 and "budget_exceeded" in budgeted.stderr


def test_the_magic_estimates_and_binds_the_estimate() -> None:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "pipeline_nb")
    ip.run_cell_magic("pipeline", "guess --estimate", "steps:\n  - {id: a, prompt: 'Explain tides.'}\n")
    estimate = ip.user_ns["guess"]
    assert estimate.calls == 1 and estimate.steps[0].step_id == "a"
