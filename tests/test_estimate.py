"""Estimates: requests rendered as the run renders them, counted by the provider, bounded where they
read earlier replies; checked against FakeAnthropic's counts and a real run of the same pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from pipeline_nb import run
from pipeline_nb._budget import Budget, BudgetProvider
from pipeline_nb._estimate import Counted, Estimate, count_input_tokens, estimate
from pipeline_nb._llm import LLMRequest, Provider, create_provider
from pipeline_nb._llm_call import ResolvedStep
from pipeline_nb._loader import load_spec
from pipeline_nb._plan import load_nested
from pipeline_nb._spec import StepSpec
from pipeline_nb.providers._mock import MockProvider
from pipeline_nb.testing import FakeAnthropic

MODEL = "claude-sonnet-5-5"
COUNT_PATH = "/v1/messages/count_tokens"
PRICES = {MODEL: {"input": 3.0, "output": 15.0}}


def pipeline(*steps: dict[str, Any], provider: str = "claude", max_tokens: int = 60, **top: Any) -> str:
    defaults = {"provider": provider, "model": MODEL, "max_tokens": max_tokens, "pricing": PRICES,
                "retry_backoff": [0.01, 0.05]}
    return yaml.safe_dump({"name": "tides", **top, "defaults": defaults, "steps": list(steps)}, sort_keys=False)


def estimate_of(source: str, namespace: Mapping[str, Any] | None = None, **kw: Any) -> Estimate:
    """As the engine would: each step's provider, model and max_tokens resolved, the run's context."""
    spec = load_spec(source)
    providers: dict[str, Provider] = {}

    def resolve(step: StepSpec) -> ResolvedStep:
        name = step.provider or "mock"
        provider = providers.setdefault(name, create_provider(name))
        return ResolvedStep(step, provider, name, step.model or MODEL, step.max_tokens or 1024, bool(step.stream))

    namespace = dict(namespace or {})
    return estimate(spec, resolve, {**namespace, **spec.vars}, namespace=namespace,
                    nested=load_nested(spec, namespace), **kw)


def tides(provider: str = "claude", **ports: Any) -> str:
    return pipeline(
        {"id": "intro", "system": "You are a harbour master.", "prompt": "Describe the tides of the North Sea."},
        {"id": "ports", "for_each": "{{ places }}", "as": "place", "prompt": "When is high tide at {{ place }}?",
         **ports},
        {"id": "summary", "prompt": "Summarise these answers in one line: {{ steps.ports.text }}"},
        vars={"places": ["Brest", "Dover", "Oslo"]}, provider=provider,
    )


TIDES = tides()


def test_an_estimate_counts_what_the_run_sends_and_bounds_what_reads_replies(fake_anthropic: FakeAnthropic) -> None:
    guess = estimate_of(TIDES)
    assert {r.path for r in fake_anthropic.requests} == {COUNT_PATH}, "an estimate calls no model"
    assert len(fake_anthropic.requests) == 5  # intro, three ports, summary
    intro, ports, summary = guess.steps
    assert (intro.calls, ports.calls, summary.calls) == (1, 3, 1)
    assert intro.exact and ports.exact and not (intro.bound or ports.bound or intro.partial or ports.partial)
    assert summary.bound and not summary.partial and "steps.ports" in summary.note
    assert (ports.output_tokens, guess.output_tokens) == (3 * 60, 5 * 60)
    assert summary.input_tokens >= 3 * 60, "the bound holds the three replies it reads, at their worst"

    done = run(TIDES)
    used = {sid: step.usage.input_tokens for sid, step in done.steps.items()}
    assert intro.input_tokens == used["intro"]
    assert ports.input_tokens == used["ports"] == sum(item.usage.input_tokens for item in done.steps["ports"].items)
    assert used["summary"] <= summary.input_tokens
    assert done.steps["summary"].usage.output_tokens <= 60 and done.cost <= guess.cost_max
    assert guess.cost_min == pytest.approx((intro.input_tokens + ports.input_tokens + summary.input_tokens) * 3 / 1e6)
    assert guess.cost_max == pytest.approx(guess.cost_min + 5 * 60 * 15 / 1e6)


def test_the_table_and_the_records_say_the_same(fake_anthropic: FakeAnthropic) -> None:
    guess = estimate_of(TIDES)
    table = guess.describe()
    lines = table.splitlines()
    assert lines[0] == "Estimate of 'tides' (no model was called)"
    summary_line = next(line for line in lines if line.startswith("summary"))
    assert f"≤ {guess.steps[2].input_tokens:,}" in summary_line and "reads steps.ports" in summary_line
    total = next(line for line in lines if line.startswith("total"))
    assert f"{guess.calls:,}" in total and f"{guess.output_tokens:,}" in total and "$" in total
    assert "counted by the API's count_tokens" in table and "≤ a bound" in table
    records = guess.to_records()
    assert [r["step_id"] for r in records] == ["intro", "ports", "summary"]
    assert records[1]["calls"] == 3 and records[2]["bound"] is True and set(records[0]) >= {
        "input_tokens", "output_tokens", "cost_min", "cost_max", "batch", "exact", "partial", "note"}


def test_the_mock_estimates_offline_and_says_so() -> None:
    guess = estimate_of(tides("mock"))
    assert not guess.exact and not any(row.exact for row in guess.steps if row.calls)
    assert "~ input estimated" in guess.describe()
    done = run(tides("mock"), stream=False)
    assert guess.steps[1].input_tokens == done.steps["ports"].usage.input_tokens  # no system there: the same words


def test_a_batch_step_costs_half() -> None:
    plain = estimate_of(tides("mock"))
    batched = estimate_of(tides("mock", batch=True))
    assert batched.steps[1].batch and not plain.steps[1].batch
    assert batched.steps[1].cost_max == pytest.approx(plain.steps[1].cost_max / 2)
    assert batched.steps[1].cost_min == pytest.approx(plain.steps[1].cost_min / 2)
    assert "batch: half price" in batched.describe()


def test_a_list_only_the_run_knows_counts_one_item_and_flags_the_rest(fake_anthropic: FakeAnthropic) -> None:
    guess = estimate_of(pipeline(
        {"id": "plan", "prompt": "List three ports.", "output_schema": {"type": "array", "items": {"type": "string"}}},
        {"id": "each", "for_each": "{{ steps.plan.output }}", "prompt": "Tides at {{ item }}?"},
    ))
    each = guess.steps[1]
    assert each.calls == 1 and each.partial and "for_each reads steps.plan" in each.note
    assert guess.partial and "+ partial: part of the cost cannot be known before the run" in guess.describe()


def test_nothing_runs_and_what_cannot_be_known_is_flagged(fake_anthropic: FakeAnthropic) -> None:
    called: list[str] = []

    def fetch(place: str) -> str:
        called.append(place)
        return "12:00"

    def tide_table(port: str) -> str:
        """The tide table of a port."""
        called.append(port)
        return "high at noon"

    guess = estimate_of(pipeline(
        {"id": "fetch", "call": "fetch", "args": {"place": "Brest"}},
        {"id": "ask", "prompt": "High tide is at {{ steps.fetch.output }}: when is low tide?"},
        {"id": "tools", "prompt": "When is high tide at Brest?", "tools": ["tide_table"]},
    ), namespace={"fetch": fetch, "tide_table": tide_table})
    assert called == []
    fetch_row, ask, tools = guess.steps
    assert fetch_row.partial and fetch_row.calls == 0 and "python step" in fetch_row.note
    assert ask.partial and "reads steps.fetch: no bound" in ask.note
    assert tools.partial and tools.calls == 1 and "tool loop" in tools.note
    sent_tools = fake_anthropic.requests[-1].body["tools"]
    assert [t["name"] for t in sent_tools] == ["tide_table"], "the count holds the tool definitions the run sends"


def test_when_continue_set_vars_parallel_and_nested_pipelines() -> None:
    guess = estimate_of(pipeline(
        {"id": "intro", "prompt": "Describe the tides in one line."},
        {"id": "never", "when": "{{ false }}", "prompt": "Never asked."},
        {"id": "maybe", "when": "{{ steps.intro.status == 'ok' }}", "prompt": "Asked if intro worked."},
        {"id": "more", "continue": "intro", "prompt": "And in French?"},
        {"id": "keep", "vars": {"opening": "{{ steps.intro.text }}", "port": "Brest"}},
        {"id": "both", "steps": [{"id": "a", "prompt": "{{ opening }} at {{ port }}"},
                                 {"id": "b", "prompt": "Plain question."}]},
        {"id": "sub", "pipeline": {"steps": [{"id": "inner", "prompt": "Inner {{ x }}"}]},
         "inputs": {"x": "{{ steps.more.text }}"}},
        provider="mock", max_tokens=50,
    ))
    rows = {row.step_id: row for row in guess.steps}
    assert list(rows) == ["intro", "never", "maybe", "more", "keep", "both", "a", "b", "sub", "sub/inner"]
    assert rows["never"].calls == 0 and "is false" in rows["never"].note
    assert rows["maybe"].calls == 1 and "counted as if when" in rows["maybe"].note
    assert rows["more"].bound and rows["more"].input_tokens >= rows["intro"].input_tokens + 50
    assert rows["a"].bound and rows["a"].input_tokens >= 50 and "reads opening" in rows["a"].note
    assert not rows["b"].bound and rows["both"].calls == 0
    assert rows["sub/inner"].bound and rows["sub/inner"].input_tokens >= 50 and "reads x" in rows["sub/inner"].note
    assert guess.calls == 6


def test_a_provider_that_cannot_count_is_asked_once(fake_anthropic: FakeAnthropic,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    asked: list[LLMRequest] = []

    def count(provider: Provider, request: LLMRequest) -> Counted:
        asked.append(request)
        return count_input_tokens(provider, request)

    guess = estimate_of(TIDES, count=count)
    assert len(asked) == 1 and not guess.exact
    assert guess.warnings == ["provider 'claude': count_tokens failed (missing_api_key: ANTHROPIC_API_KEY is not "
                              "set); input estimated at 4 characters a token"]
    assert all(row.input_tokens > 0 for row in guess.steps) and "warning: provider 'claude'" in guess.describe()


def test_distinct_requests_are_counted_once_and_at_most_so_many_a_step(fake_anthropic: FakeAnthropic) -> None:
    same = estimate_of(pipeline({"id": "fan", "for_each": "{{ range(4) | list }}", "prompt": "Same question."}))
    assert len(fake_anthropic.requests) == 1 and same.steps[0].calls == 4 and same.steps[0].exact
    assert same.steps[0].input_tokens == 4 * estimate_of(pipeline({"id": "one", "prompt": "Same question."})).input_tokens
    fake_anthropic.clear()
    many = estimate_of(pipeline({"id": "fan", "for_each": "{{ range(8) | list }}",
                                 "prompt": "Question {{ item }}: {{ 'why ' * item }}?"}), exact_items=3)
    fan = many.steps[0]
    assert len(fake_anthropic.requests) == 3 and fan.calls == 8
    assert not fan.exact and "3 of 8 distinct requests counted, the rest scaled by length" in fan.note
    done = run(pipeline({"id": "fan", "for_each": "{{ range(8) | list }}",
                         "prompt": "Question {{ item }}: {{ 'why ' * item }}?"}))
    assert fan.input_tokens == pytest.approx(done.steps["fan"].usage.input_tokens, rel=0.25)


def test_attachments_are_counted_as_the_run_sends_them(fake_anthropic: FakeAnthropic, tmp_path: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tides.txt").write_text("The moon pulls the sea twice a day. " * 50)
    monkeypatch.chdir(tmp_path)
    source = pipeline({"id": "read", "attachments": ["tides.txt"], "prompt": "When is high tide?"})
    guess = estimate_of(source)
    assert fake_anthropic.requests[0].documents[0].size == len("The moon pulls the sea twice a day. " * 50)
    done = run(source)
    assert guess.steps[0].input_tokens == done.steps["read"].usage.input_tokens > 350  # the document's words count


def test_the_count_reaches_the_provider_behind_its_wrappers() -> None:
    sent = LLMRequest("mock", MODEL, ({"role": "user", "content": "When is high tide at Brest?"},), 100)
    wrapped = BudgetProvider(MockProvider(), Budget(1.0, PRICES))
    assert count_input_tokens(wrapped, sent) == Counted(MockProvider().count_tokens(sent), False)
