"""The budget: worst cases reserved before each call, never past max_cost however many threads ask,
settled with what the calls cost; BudgetProvider refuses the calls that do not fit, with the real
executor, the mock and the real SDK against FakeAnthropic."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pipeline_nb._budget import Budget, BudgetExceeded, BudgetProvider, UnpricedModel, require_price
from pipeline_nb._errors import PipelineSpecError
from pipeline_nb._execute import Executor
from pipeline_nb._llm import BatchStatus, CancelToken, LLMRequest, ProviderError, no_emit
from pipeline_nb._llm_call import ResolvedStep
from pipeline_nb._loader import load_spec
from pipeline_nb._results import ERROR_TYPES, PipelineRun, StepResult
from pipeline_nb._spec import StepSpec
from pipeline_nb.content import Usage
from pipeline_nb.providers._claude import ClaudeProvider
from pipeline_nb.providers._mock import MockProvider
from pipeline_nb.testing import FakeAnthropic

MODEL = "claude-sonnet-5-5"
PRICES = {MODEL: {"input": 3.0, "output": 15.0}}
PROMPT = "x" * 400  # 100 tokens at 4 characters a token


def request(max_tokens: int = 1_000, prompt: str = PROMPT, **kw: Any) -> LLMRequest:
    return LLMRequest(kw.pop("provider", "mock"), kw.pop("model", MODEL), ({"role": "user", "content": prompt},),
                      max_tokens, **kw)


WORST = (100 * 3 + 1_000 * 15) / 1e6  # USD: 100 input tokens and 1,000 output at most


def test_a_reservation_is_the_worst_case_and_settling_replaces_it_by_the_cost() -> None:
    budget = Budget(1.0, PRICES)
    held = budget.reserve(request())
    assert held.worst == pytest.approx(WORST) and held.input_tokens == 100
    assert (budget.spent, budget.in_flight) == (0.0, pytest.approx(WORST))
    assert budget.settle(held, Usage(input_tokens=120, output_tokens=10)) == pytest.approx((120 * 3 + 10 * 15) / 1e6)
    assert (budget.spent, budget.in_flight) == (pytest.approx(510 / 1e6), 0.0)
    assert budget.describe() == "$0.0005 of $1.00 spent"
    cached = budget.reserve(request(params={"cache_control": {"type": "ephemeral", "ttl": "1h"}}))
    assert cached.worst == pytest.approx((100 * 3 * 2.0 + 1_000 * 15) / 1e6), "a 1-hour cache write costs 2x input"
    batched = budget.reserve(request(), discount=0.5)
    assert batched.worst == pytest.approx(WORST / 2)


def test_a_call_that_does_not_fit_is_refused_and_says_why() -> None:
    budget = Budget(WORST * 2.5, PRICES)
    first, second = budget.reserve(request()), budget.reserve(request())
    with pytest.raises(BudgetExceeded) as refused:
        budget.reserve(request())
    exceeded = refused.value
    assert (exceeded.spent, exceeded.in_flight, exceeded.worst, exceeded.max_cost) == (
        0.0, pytest.approx(2 * WORST), pytest.approx(WORST), pytest.approx(2.5 * WORST))
    assert "raise max_cost: in defaults" in str(exceeded) and "$0.0306 in flight that passes max_cost $0.0382" in str(exceeded)
    budget.settle(first, Usage(input_tokens=100, output_tokens=5))
    assert budget.reserve(request(max_tokens=10)).worst < WORST, "a smaller call fits once the first settled"
    budget.settle(second, None)


def test_many_threads_reserving_at_once_never_pass_the_budget() -> None:
    budget = Budget(WORST * 37 + WORST / 2, PRICES)
    threads, rounds = 16, 10
    start = threading.Barrier(threads)
    granted: list[Any] = []
    refused: list[BudgetExceeded] = []
    peaks: list[float] = []
    lock = threading.Lock()

    def ask() -> None:
        start.wait(timeout=30)
        for _ in range(rounds):
            try:
                held = budget.reserve(request())
            except BudgetExceeded as exc:
                with lock:
                    refused.append(exc)
                continue
            with lock:
                granted.append(held)
                peaks.append(budget.spent + budget.in_flight)

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(granted) == 37 and len(refused) == threads * rounds - 37
    assert max(peaks) <= budget.max_cost and budget.in_flight == pytest.approx(37 * WORST)
    assert all(exc.spent + exc.in_flight + exc.worst > exc.max_cost for exc in refused)
    settlers = [threading.Thread(target=budget.settle, args=(held, Usage(100, 1_000))) for held in granted]
    for settler in settlers:
        settler.start()
    for settler in settlers:
        settler.join(timeout=60)
    assert budget.in_flight == pytest.approx(0.0, abs=1e-12) and budget.spent == pytest.approx(37 * WORST)


def test_an_unpriced_model_cannot_be_budgeted() -> None:
    with pytest.raises(UnpricedModel, match="add pricing: {claude-haiku-5-5: {input: <USD>, output: <USD>}}"):
        Budget(5.0, PRICES).reserve(request(model="claude-haiku-5-5"))
    spec = load_spec("defaults:\n  model: claude-haiku-5-5\nsteps:\n  - id: ask\n    prompt: hi\n")
    with pytest.raises(PipelineSpecError) as refused:
        require_price(PRICES, spec.steps[0], "claude-haiku-5-5")
    assert "max_cost is set, but model 'claude-haiku-5-5' has no price" in str(refused.value)
    assert refused.value.location is not None and refused.value.location.line == 2  # defaults' model:
    require_price(PRICES, spec.steps[0], MODEL)
    with pytest.raises(ValueError, match="max_cost must be a positive number"):
        Budget(float("nan"), PRICES)


def test_budget_exceeded_is_a_documented_error_type() -> None:
    assert "budget_exceeded" in ERROR_TYPES


# -- BudgetProvider ---------------------------------------------------------------------------

def test_the_provider_refuses_a_call_that_does_not_fit_before_sending_it() -> None:
    budget = Budget(WORST * 1.5, PRICES)
    provider = BudgetProvider(MockProvider(), budget)
    reply = provider.complete(request(), no_emit, CancelToken())
    assert budget.spent == pytest.approx((reply.usage.input_tokens * 3 + reply.usage.output_tokens * 15) / 1e6)
    assert budget.in_flight == 0
    provider.complete(request(max_tokens=50), no_emit, CancelToken())
    with pytest.raises(ProviderError) as refused:
        provider.complete(request(max_tokens=5_000), no_emit, CancelToken())
    error = refused.value
    assert error.type == "budget_exceeded" and not error.retryable
    assert "spent" in error.message and "max_cost $0.0229" in error.message and "raise max_cost" in error.message


def executor_run(yaml_text: str, budget: Budget) -> PipelineRun:
    """The real executor on ``yaml_text``, every step's provider (the mock) behind ``budget``."""
    spec = load_spec(yaml_text)
    provider = BudgetProvider(MockProvider(), budget)

    def resolve(step: StepSpec) -> ResolvedStep:
        return ResolvedStep(step, provider, "mock", step.model or MODEL, step.max_tokens or 1024, False)

    run = PipelineRun(spec.name, {s.id: StepResult(s.id, type=s.type) for s in spec.all_steps()})
    Executor(spec, run, resolve, dict(spec.vars), lambda event: None, CancelToken()).run_all()
    return run


def test_a_budget_stops_a_for_each_and_keeps_what_was_done() -> None:
    item = request(prompt=f"{PROMPT[:-2]} 0", options={"mock_delay": 0})
    probe = Budget(1.0, PRICES)
    held = probe.reserve(item)
    each = probe.settle(held, MockProvider().complete(item, no_emit, CancelToken()).usage)
    assert 0 < each < held.worst / 10
    budget = Budget(held.worst + 2.5 * each, PRICES)  # three calls fit; the worst case of a fourth does not
    run = executor_run(f"""
defaults: {{max_tokens: 1000, mock_delay: 0}}
steps:
  - id: fan
    for_each: "{{{{ range(6) | list }}}}"
    max_parallel: 1
    prompt: "{PROMPT[:-2]} {{{{ item }}}}"
  - id: after
    prompt: never asked
""", budget)
    items = run.steps["fan"].items
    assert [item.status for item in items] == ["ok"] * 3 + ["error"] * 3
    assert all(item.error.type == "budget_exceeded" and item.attempts == 1 for item in items[3:])
    assert "with $0.0" in items[3].error.message and "spent" in items[3].error.message
    assert run.steps["fan"].error.type == "item_failed" and run.steps["after"].status == "skipped"
    assert budget.in_flight == 0 and budget.spent == pytest.approx(3 * each) and budget.spent <= budget.max_cost


def test_a_batch_sends_what_fits_and_refuses_the_rest(fake_anthropic: FakeAnthropic) -> None:
    budget = Budget(WORST / 2 * 2.5, PRICES)  # two requests at half price
    provider = BudgetProvider(ClaudeProvider(), budget)
    statuses: list[BatchStatus] = []
    sent = [request(provider="claude", base_url=fake_anthropic.base_url, prompt=PROMPT[:-1] + str(i)) for i in range(4)]
    outcomes = provider.batch(sent, statuses.append, CancelToken(), poll_interval=0.01)
    assert fake_anthropic.batches == [(fake_anthropic.batches[0][0], 2)]
    assert [type(o).__name__ for o in outcomes] == ["Reply", "Reply", "ProviderError", "ProviderError"]
    assert outcomes[3].type == "budget_exceeded"  # type: ignore[union-attr]
    assert budget.in_flight == 0 and 0 < budget.spent < WORST


def test_a_refused_call_costs_nothing_and_a_broken_stream_costs_what_may_be_billed(
        fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")  # a 429 must reach the call, not the limiter
    budget = Budget(1.0, PRICES)
    provider = BudgetProvider(ClaudeProvider(), budget)
    fake_anthropic.fault("rate_limit", times=1)
    with pytest.raises(ProviderError, match="rate_limit_error"):
        provider.complete(request(provider="claude", base_url=fake_anthropic.base_url), no_emit, CancelToken())
    assert (budget.spent, budget.in_flight) == (0.0, 0.0)
    fake_anthropic.reply("one two three four five six seven eight", times=1)
    fake_anthropic.fault("cut", after=4, times=1)
    streamed = request(provider="claude", base_url=fake_anthropic.base_url, stream=True)
    with pytest.raises(ProviderError, match="connection_lost"):
        provider.complete(streamed, no_emit, CancelToken())
    assert budget.in_flight == 0
    assert budget.spent == pytest.approx((100 * 3 + len("one two three four ") // 4 * 15 + 15) / 1e6, rel=0.2)
