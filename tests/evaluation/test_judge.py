"""judge: a Claude call grades a result against a rubric, through the real SDK against FakeAnthropic:
what it is sent, a failing verdict, a judge that fails, and what it costs."""

from __future__ import annotations

import json

import pipeline_nb
from pipeline_nb.testing import FakeAnthropic

from _ev import run

FAIL = json.dumps({"reason": "It names Lyon, not the capital.", "pass": False})
PASS = json.dumps({"reason": "It names Paris.", "pass": True})


def judged(request) -> bool:
    return "<rubric>" in request.prompt


def test_the_judge_is_sent_the_output_and_the_rubric_with_its_model_and_a_verdict_schema(
        fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply(PASS, when=judged)
    fake_anthropic.reply("Paris is the capital.")
    result = run("""
        steps:
          - id: a
            prompt: "Capital of {{ country }}?"
            model: claude-sonnet-5-5
            expect:
              - judge: "The answer names the capital of {{ country }}."
                model: claude-haiku-5-5
              - name: in context
                judge: "It answers the question asked."
                sees_prompt: true
    """, vars={"country": "France"})
    step_call, first, second = fake_anthropic.requests
    assert step_call.body["model"] == "claude-sonnet-5-5"
    assert first.body["model"] == "claude-haiku-5-5" and second.body["model"] == "claude-sonnet-5-5"
    assert "grader" in first.body["system"]
    schema = first.body["output_config"]["format"]["schema"]
    assert list(schema["properties"]) == ["reason", "pass"] and schema["required"] == ["reason", "pass"]
    assert first.prompt == ("<output>\nParis is the capital.\n</output>\n\n"
                            "<rubric>\nThe answer names the capital of France.\n</rubric>\n\n"
                            "Does the output meet the rubric?")
    assert "<prompt>" not in first.prompt and second.prompt.startswith("<prompt>\nCapital of France?\n</prompt>")
    checks = result.steps["a"].checks
    assert [(c.name, c.kind, c.passed, c.detail) for c in checks] == [
        ("judge: The answer names the capital of {{ country }}.", "judge", True, "It names Paris."),
        ("in context", "judge", True, "It names Paris.")]


def test_a_failing_verdict_fails_the_check_with_the_judges_reason_and_its_cost_counts_for_the_run(
        fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply(FAIL, when=judged, usage=(200, 30))
    fake_anthropic.reply("Lyon.", usage=(10, 2))
    result = run("""
        defaults: {provider: claude, retries: 0, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}
        steps:
          - id: a
            prompt: "Capital of France?"
            model: claude-sonnet-5-5
            expect: [{judge: "Names Paris."}]
    """)
    [check] = result.checks
    assert (check.passed, check.detail, check.step_id) == (False, "It names Lyon, not the capital.", "a")
    assert result.status == "ok" and result.steps["a"].status == "ok"  # on_fail: warn
    step_cost = (10 * 3 + 2 * 15) / 1e6
    judge_cost = (200 * 3 + 30 * 15) / 1e6
    assert result.steps["a"].cost == step_cost  # the step's own cost is the model under test's
    assert check.cost == judge_cost and check.usage.input_tokens == 200
    assert abs(result.cost - (step_cost + judge_cost)) < 1e-12 and result.usage.input_tokens == 210


def test_a_judge_whose_call_fails_or_whose_reply_is_no_verdict_fails_the_check(
        fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, when=lambda r: "<rubric>\nfirst" in r.prompt, times=None)
    fake_anthropic.reply("I think it passes.", when=judged)
    fake_anthropic.reply("Paris.")
    result = run("""
        steps:
          - id: a
            prompt: "Capital?"
            expect: [{judge: first}, {judge: second}]
    """)
    first, second = result.checks
    assert not first.passed and first.detail.startswith("the judge's call failed: invalid_request_error")
    assert not second.passed and second.detail.startswith("the judge's call failed: invalid_output: the reply is not JSON")


def test_the_mock_provider_judges_offline_and_says_it_does_not_grade() -> None:
    result = pipeline_nb.run("""
        steps:
          - id: a
            prompt: hi
            mock_delay: 0
            expect: [{judge: anything}]
    """)
    [check] = result.checks
    assert check.passed and check.detail.startswith("[mock judge]")
