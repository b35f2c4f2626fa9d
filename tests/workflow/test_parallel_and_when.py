"""parallel steps and when, through the real SDK against FakeAnthropic."""

from __future__ import annotations

from pipeline_nb.testing import FakeAnthropic

from _wf import prompts, run, spec_error

PARALLEL = """
    steps:
      - id: both
        type: parallel
        steps:
          - {id: left, prompt: "left side", stream: true}
          - {id: right, prompt: "right side"}
      - id: join
        prompt: "join {{ steps.left.text }} + {{ steps.right.output }}"
"""


def test_parallel_children_run_concurrently_and_are_addressable_by_id(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("L", when="left", delay=0.15, chunks=["L"])
    fake_anthropic.reply("R", when="right", delay=0.15, chunks=["R"])
    result = run(PARALLEL)
    assert result.ok and fake_anthropic.max_concurrent == 2
    assert result.steps["left"].text == "L" and result.steps["right"].output == "R"
    assert result.steps["both"].output == {"left": "L", "right": "R"}
    assert prompts(fake_anthropic)[-1] == "join L + R"
    assert list(result.steps) == ["both", "left", "right", "join"]


def test_parallel_max_parallel_one_runs_children_one_at_a_time(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("slow", delay=0.05, chunks=["s", "low"])
    result = run(PARALLEL.replace("type: parallel", "type: parallel\n        max_parallel: 1"))
    assert result.ok and fake_anthropic.max_concurrent == 1


def test_a_failing_child_fails_the_parent_and_a_later_step_is_skipped(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, when="right side", message="no right")
    result = run(PARALLEL)
    both, left, right, join = (result.steps[k] for k in ("both", "left", "right", "join"))
    assert right.status == "error" and "no right" in right.error.message
    assert left.status == "ok" and left.text == "Fake reply to: left side"
    assert both.status == "error" and both.error.type == "child_failed"
    assert both.error.message.startswith("1 of 2 children failed; first: right: invalid_request_error: no right")
    assert join.status == "skipped" and join.note == "skipped: step 'both' failed"
    assert not any(p.startswith("join") for p in prompts(fake_anthropic))


def test_parallel_spec_errors() -> None:
    error = spec_error("""
        steps:
          - id: both
            type: parallel
            steps:
              - {id: left, prompt: "left"}
              - {id: right, prompt: "{{ steps.left.text }}"}
    """)
    assert "refers to steps.left, which runs in parallel with this step (in 'both')" in str(error)
    assert error.step_id == "right" and error.location.line == 8
    assert "parallel step is missing 'steps'" in str(spec_error("steps:\n  - {id: p, type: parallel}\n"))


def test_when_false_skips_with_the_reason_and_sends_nothing(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        vars: {go: false}
        steps:
          - id: a
            when: go
            prompt: "first"
          - id: b
            prompt: "second"
    """)
    a = result.steps["a"]
    assert a.status == "skipped" and a.note == "skipped: when 'go' was false"
    assert result.ok and prompts(fake_anthropic) == ["second"]


def test_when_true_runs(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: a
            when: true
            prompt: "first"
          - id: b
            when: "{{ 2 > 1 }}"
            prompt: "second"
    """)
    assert [s.status for s in result.steps.values()] == ["ok", "ok"]
    assert prompts(fake_anthropic) == ["first", "second"]


def test_when_reads_earlier_step_output(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("yes, it is relevant", when="relevant?")
    fake_anthropic.reply('{"score": 3}', when="grade")
    result = run("""
        steps:
          - id: check
            prompt: "relevant?"
          - id: grade
            prompt: "grade it"
            output_schema: {type: object, properties: {score: {type: integer}}}
          - id: deep_dive
            when: "steps.check.text.startswith('yes')"
            prompt: "dig deeper"
          - id: rewrite
            when: steps.grade.output.score >= 5
            prompt: "rewrite"
    """)
    assert result.steps["deep_dive"].status == "ok"
    rewrite = result.steps["rewrite"]
    assert rewrite.status == "skipped" and rewrite.note == "skipped: when 'steps.grade.output.score >= 5' was false"
    assert "rewrite" not in prompts(fake_anthropic) and result.ok


def test_when_treats_the_text_false_from_a_var_as_false(fake_anthropic: FakeAnthropic) -> None:
    text = """
        steps:
          - id: a
            when: go
            prompt: "first"
          - id: b
            when: "{{ go }} and more"
            prompt: "second"
    """
    result = run(text, vars={"go": "false"})
    assert result.steps["a"].status == "skipped" and result.steps["b"].status == "ok"
    assert [s.status for s in run(text, vars={"go": "yes"}).steps.values()] == ["ok", "ok"]


def test_when_false_on_a_parallel_step_skips_its_children(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: both
            when: false
            steps:
              - {id: left, prompt: "left"}
              - {id: right, prompt: "right"}
    """)
    assert [s.status for s in result.steps.values()] == ["skipped"] * 3
    assert result.steps["left"].note == "skipped: step 'both' was skipped"
    assert fake_anthropic.requests == [] and result.ok


def test_when_is_checked_at_parse_time() -> None:
    error = spec_error("""
        steps:
          - id: a
            when: flagg
            prompt: "x"
    """, vars={"flag": True})
    assert "when uses {{ flagg }}, which is not defined" in str(error) and "did you mean 'flag'?" in str(error)
    assert (error.location.line, error.location.col) == (5, 11)


def test_a_parallel_step_may_nest_another_and_later_steps_read_the_grandchild(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("deep reply", when="inner")
    result = run("""
        steps:
          - id: outer
            type: parallel
            steps:
              - id: side
                prompt: "side"
              - id: mid
                type: parallel
                steps:
                  - id: inner
                    prompt: "inner"
          - id: after
            prompt: "got {{ steps.inner.text }}"
        """)
    assert {k: s.status for k, s in result.steps.items()} == dict.fromkeys(
        ["outer", "side", "mid", "inner", "after"], "ok")
    assert result.steps["mid"].output == {"inner": "deep reply"}
    assert "got deep reply" in prompts(fake_anthropic)


def test_a_failed_parallel_step_raises_with_its_cause_named_once(fake_anthropic: FakeAnthropic) -> None:
    import pipeline_nb

    fake_anthropic.fault("http", status=529, when="right side", error_type="overloaded_error",
                         message="overloaded_error")
    result = run(PARALLEL)
    assert str(result.steps["right"].error).startswith("overloaded_error (HTTP 529)")  # not "x: x (HTTP 529)"
    try:
        pipeline_nb.raise_for_status(result)
    except pipeline_nb.StepError as exc:
        message = str(exc)
    assert message.count("overloaded_error") == 1, message
    assert message.startswith("step 'right' failed: overloaded_error (HTTP 529)")
