"""Every kind of expectation, checked on replies that came through the real SDK from FakeAnthropic:
what passes, what fails and why, and where the results live."""

from __future__ import annotations

import pytest

from pipeline_nb.streaming import Event
from pipeline_nb.testing import FakeAnthropic

from _ev import run

PARIS = "The capital of France is Paris."


def test_text_checks_pass_and_fail_with_a_reason(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply(PARIS)
    result = run("""
        steps:
          - id: a
            prompt: "What is the capital of France?"
            expect:
              - contains: Paris
              - contains: [Paris, France]
              - name: berlin
                contains: Berlin
              - not_contains: sorry
              - name: no capital
                not_contains: capital
              - equals: "  The capital of France is Paris.\\n"
              - name: shouting
                equals: THE CAPITAL OF FRANCE IS PARIS.
                ignore_case: true
              - regex: 'is (Paris|Lyon)\\.$'
              - name: digits
                regex: '\\d+'
              - name: case
                contains: PARIS
              - name: any case
                contains: PARIS
                ignore_case: true
    """)
    verdicts = {c.name: (c.passed, c.detail) for c in result.steps["a"].checks}
    assert verdicts == {
        'contains "Paris"': (True, ""),
        'contains "Paris", "France"': (True, ""),
        "berlin": (False, 'the output does not contain "Berlin"'),
        'not_contains "sorry"': (True, ""),
        "no capital": (False, 'the output contains "capital": …The capital of France is Paris.…'),
        'equals "The capital of France is Paris."': (True, ""),
        "shouting": (True, ""),
        "regex /is (Paris|Lyon)\\.$/": (True, ""),
        "digits": (False, "nothing in the output matches /\\d+/"),
        "case": (False, 'the output does not contain "PARIS"'),
        "any case": (True, ""),
    }
    assert result.status == "ok" and result.steps["a"].status == "ok"  # on_fail: warn is the default
    assert result.checks.pass_rate == pytest.approx(7 / 11)


def test_json_schema_checks_a_structured_output_and_text_that_should_be_json(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply('{"city": "Paris", "population": 2100000}', when="structured")
    fake_anthropic.reply("```json\n{\"city\": \"Paris\"}\n```", when="fenced")
    fake_anthropic.reply("Paris, I think.", when="prose")
    schema = "{type: object, required: [city, population], properties: {population: {type: integer}}}"
    result = run(f"""
        steps:
          - id: structured
            prompt: structured
            output_schema: {{type: object}}
            expect: [{{json_schema: {schema}}}]
          - id: fenced
            prompt: fenced
            expect: [{{json_schema: {{type: object, required: [city]}}}}]
          - id: prose
            prompt: prose
            expect: [{{json_schema: {{type: object}}}}]
          - id: missing
            prompt: structured
            output_schema: {{type: object}}
            expect: [{{json_schema: {{type: object, required: [country]}}}}]
    """)
    detail = {step: [(c.passed, c.detail) for c in result.steps[step].checks] for step in result.steps}
    assert detail["structured"] == [(True, "")]
    assert detail["fenced"] == [(True, "")]  # the fence models like to write is not part of the JSON
    assert detail["prose"][0][0] is False and detail["prose"][0][1].startswith("the output is not JSON")
    assert detail["missing"] == [(False, "the output does not match the schema at $: 'country' is a required property")]


def yes(output: str) -> bool:
    return "Paris" in output


def test_python_checks_take_the_output_and_say_why_they_fail(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply(PARIS)

    def short(output: str) -> bool | str:
        return True if len(output) < 10 else f"{len(output)} characters is too long"

    def sees_the_result(output: str, result: object) -> bool:
        return result.model == "claude-sonnet-5-5" and result.usage.output_tokens > 0

    namespace = {"short": short, "sees_the_result": sees_the_result, "boom": lambda output: 1 / 0,
                 "forgot": lambda output: None, "refuse": lambda output: False}
    result = run("""
        steps:
          - id: a
            prompt: "Capital?"
            model: claude-sonnet-5-5
            expect:
              - python: short
              - python: sees_the_result
              - python: boom
              - python: forgot
              - python: refuse
              - python: test_checks:yes
    """, namespace=namespace)
    verdicts = [(c.name, c.passed, c.detail) for c in result.steps["a"].checks]
    assert verdicts == [
        ("python short", False, "31 characters is too long"),
        ("python sees_the_result", True, ""),
        ("python boom", False, "boom raised ZeroDivisionError: division by zero"),
        ("python forgot", False, "forgot returned None; return True, False, or a message saying what failed"),
        ("python refuse", False, "refuse returned False"),
        ("python test_checks:yes", True, ""),
    ]


def test_limits_on_tokens_cost_and_seconds(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply(PARIS, usage=(40, 12), delay=0.05)
    result = run("""
        defaults: {provider: claude, retries: 0, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}
        steps:
          - id: a
            prompt: "Capital?"
            model: claude-sonnet-5-5
            expect:
              - tokens: 12
              - name: few
                tokens: 11
              - name: all
                tokens: {input: 40, total: 51}
              - cost: 0.001
              - name: cheap
                cost: 0.0001
              - seconds: 600
              - name: instant
                seconds: 0.001
    """)
    verdicts = {c.name: (c.passed, c.detail) for c in result.steps["a"].checks}
    assert verdicts["tokens ≤ 12"] == (True, "12 output tokens")
    assert verdicts["few"] == (False, "it used 12 output tokens (at most 11)")
    assert verdicts["all"] == (False, "it used 52 total tokens (at most 51)")
    assert verdicts["cost ≤ $0.001"] == (True, "it cost $0.0003 (at most $0.001)")
    assert verdicts["cheap"] == (False, "it cost $0.0003 (at most $0.0001)")
    assert verdicts["seconds ≤ 600"][0] is True
    assert verdicts["instant"][0] is False and verdicts["instant"][1].startswith("it took ")


def test_checks_are_rendered_per_item_and_counted_per_check(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.", when="France")
    fake_anthropic.reply("Bonn, I believe.", when="Germany")
    events: list[Event] = []
    result = run("""
        vars:
          questions:
            - {country: France, capital: Paris}
            - {country: Germany, capital: Berlin}
        steps:
          - id: ask
            for_each: "{{ questions }}"
            as: q
            prompt: "Capital of {{ q.country }}?"
            expect:
              - name: right city
                contains: "{{ q.capital }}"
              - regex: '\\.$'
    """, on_event=events.append)
    ask = result.steps["ask"]
    assert [(c.step_id, c.name, c.passed) for c in ask.checks] == [
        ("ask[0]", "right city", True), ("ask[0]", "regex /\\.$/", True),
        ("ask[1]", "right city", False), ("ask[1]", "regex /\\.$/", True)]
    assert ask.items[1].own_checks[0].detail == 'the output does not contain "Berlin"'
    assert [str(r) for r in result.checks.rates()] == ["1/2", "2/2"]
    assert str(result.checks) == (
        "checks: 3 of 4 passed\n"
        "  step  check        result\n"
        "  ask   right city   ✗ 1/2\n"
        "  ask   regex /\\.$/  ✓ 2/2")
    kinds = [e.kind for e in events]
    checks = [i for i, kind in enumerate(kinds) if kind == "check"]
    assert len(checks) == 4 and max(checks) < kinds.index("step_end")  # each as it resolves, before the step ends
    assert result.to_pandas()[["step", "item_index", "checks_passed", "checks_total"]].values.tolist() == [
        ["ask", 0, 2, 2], ["ask", 1, 1, 2]]


def test_a_step_that_failed_fails_its_checks_as_not_checked(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, times=None)
    result = run("""
        steps:
          - id: a
            prompt: hi
            expect: [{contains: hi}]
    """)
    [check] = result.checks
    assert (check.passed, check.detail) == (False, "not checked: the result failed (invalid_request_error)")


def test_checks_of_python_and_nested_pipeline_steps(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: count
            call: count
            expect: [{equals: 3}, {json_schema: {type: integer, minimum: 5}}]
          - id: nest
            pipeline:
              steps:
                - id: inner
                  call: count
                  expect: [{equals: 3}]
    """, namespace={"count": lambda: 3})
    assert [(c.name, c.passed) for c in result.steps["count"].checks] == [("equals 3", True), ("json_schema", False)]
    assert [(c.step_id, c.passed) for c in result.steps["nest"].checks] == [("inner", True)]
    assert len(result.checks) == 3
