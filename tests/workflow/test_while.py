"""while: a pipeline step's pipeline run again while a condition holds, bounded by max_iterations."""

from __future__ import annotations

from pipeline_nb.testing import FakeAnthropic

from _wf import run, spec_error

LOOP = """
steps:
  - id: start
    vars: {draft: "a first draft"}
  - id: improve
    while: "{{ last is none or 'good' not in last.review }}"
    max_iterations: MAX
    inputs:
      draft: "{{ last.rewrite if last else draft }}"
      round: "{{ loop.index }}"
    pipeline:
      steps:
        - id: rewrite
          prompt: "Round {{ round }}: improve {{ draft }}"
        - id: review
          prompt: "Review {{ steps.rewrite.text }}"
  - id: final
    prompt: "Publish {{ steps.improve.output.rewrite }}"
"""


def script(fake: FakeAnthropic) -> None:
    fake.reply("draft two", when="Round 0:")
    fake.reply("draft three", when="Round 1:")
    fake.reply("draft four", when="Round 2:")
    fake.reply("needs work", when="Review draft two")
    fake.reply("good now", when="Review draft three")
    fake.reply("good", when="Review draft four")
    fake.reply("published")


def test_the_pipeline_runs_until_the_condition_fails_each_iteration_reading_the_last(fake_anthropic) -> None:
    script(fake_anthropic)
    result = run(LOOP.replace("MAX", "5"))
    improve = result.steps["improve"]
    assert improve.status == "ok" and improve.note == "2 iterations; while became false"
    assert [i.id for i in improve.items] == ["improve[0]", "improve[1]"]
    assert improve.items[0].child.steps["rewrite"].text == "draft two"
    assert improve.output == {"rewrite": "draft three", "review": "good now"}
    assert "Round 1: improve draft two" in [r.prompt for r in fake_anthropic.requests]
    assert fake_anthropic.requests[-1].prompt == "Publish draft three"
    assert improve.usage.output_tokens == sum(i.usage.output_tokens for i in improve.items)


def test_max_iterations_bounds_the_loop_and_a_false_start_runs_nothing(fake_anthropic) -> None:
    script(fake_anthropic)
    result = run(LOOP.replace("MAX", "1"))
    assert result.steps["improve"].note == "1 iteration; stopped at max_iterations (1)"
    assert result.steps["final"].status == "ok"
    never = run("""
        steps:
          - id: loop
            while: "{{ false }}"
            max_iterations: 3
            pipeline: {steps: [{id: a, prompt: hi}]}
    """)
    assert never.steps["loop"].note == "0 iterations; while was false" and never.steps["loop"].output is None


def test_a_failed_iteration_stops_the_loop_and_fails_the_step(fake_anthropic) -> None:
    fake_anthropic.fault("http", status=400, when="Round 1:", times=None)
    script(fake_anthropic)
    result = run(LOOP.replace("MAX", "5"))
    improve = result.steps["improve"]
    assert improve.status == "error" and improve.error.type == "iteration_failed"
    assert len(improve.items) == 2 and improve.items[0].status == "ok"
    assert result.steps["final"].status == "skipped"


def test_a_loop_must_be_bounded_and_its_names_are_checked() -> None:
    error = spec_error("""
        steps:
          - {id: loop, while: "{{ true }}", pipeline: {steps: [{id: a, prompt: hi}]}}
    """)
    assert "'while' needs max_iterations" in str(error)
    error = spec_error("""
        steps:
          - {id: loop, while: "{{ lst }}", max_iterations: 2, pipeline: {steps: [{id: a, prompt: hi}]}}
    """)
    assert "while uses {{ lst }}, which is not defined" in str(error) and "did you mean 'last'?" in error.hint
