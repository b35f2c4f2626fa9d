"""output_schema (structured output) and continue (multi-turn), checked on the requests
the real SDK sent to FakeAnthropic."""

from __future__ import annotations

import pytest

from pipeline_nb.testing import FakeAnthropic

from _wf import run, spec_error

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"},
                                           "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["score"]}
GRADE = """
    steps:
      - id: grade
        prompt: "grade it"
        stream: {stream}
        output_schema:
          type: object
          properties:
            score: {{type: integer}}
            tags: {{type: array, items: {{type: string}}}}
          required: [score]
"""


@pytest.mark.parametrize("stream", ["true", "false"])
def test_output_schema_is_sent_as_output_config_and_parsed(fake_anthropic: FakeAnthropic, stream: str) -> None:
    fake_anthropic.reply('{"score": 7, "tags": ["clear"]}')
    result = run(GRADE.format(stream=stream))
    grade = result.steps["grade"]
    assert grade.status == "ok" and grade.output == {"score": 7, "tags": ["clear"]}
    assert grade.text == '{"score": 7, "tags": ["clear"]}'
    body = fake_anthropic.requests[0].body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert body.get("stream", False) is (stream == "true")


def test_a_step_without_schema_sends_no_output_config(fake_anthropic: FakeAnthropic) -> None:
    assert run("steps:\n  - {id: a, prompt: hi}\n").ok
    assert "output_config" not in fake_anthropic.requests[0].body


def test_a_reply_that_does_not_match_names_the_failing_path(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply('{"score": "high", "tags": ["a"]}', times=1)
    fake_anthropic.reply('{"score": 1, "tags": ["a", 2]}', times=1)
    first = run(GRADE.format(stream="true")).steps["grade"]
    assert first.status == "error" and first.error.type == "invalid_output"
    assert "does not match output_schema at $.score: 'high' is not of type 'integer'" in first.error.message
    assert first.text == '{"score": "high", "tags": ["a"]}' and first.output is None
    second = run(GRADE.format(stream="false")).steps["grade"]
    assert "at $.tags[1]: 2 is not of type 'string'" in second.error.message


def test_a_reply_that_is_not_json_errors_clearly(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply('Sure! Here it is: {"score": 1}')
    result = run(GRADE.format(stream="true") + "      - {id: after, prompt: never}\n")
    grade = result.steps["grade"]
    assert grade.status == "error" and grade.error.type == "invalid_output"
    assert grade.error.message.startswith("the reply is not JSON (Expecting value at line 1 column 1)")
    assert grade.error.request_id and result.steps["after"].status == "skipped"


def test_an_invalid_schema_is_a_spec_error_before_any_call(fake_anthropic: FakeAnthropic) -> None:
    error = spec_error("""
        steps:
          - id: a
            prompt: hi
            output_schema: {type: nonsense}
    """)
    assert "output_schema is not a valid JSON Schema" in str(error)
    assert (error.location.line, error.location.col) == (6, 20) and error.step_id == "a"
    error = spec_error("steps:\n  - {id: a, prompt: hi, output_schema: 3}\n")
    assert "output_schema must be a mapping, got int 3" in str(error) and error.location.line == 3
    assert fake_anthropic.requests == []


def test_continue_sends_the_earlier_conversation(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.", when="capital")
    fake_anthropic.reply("Two million.", when="people")
    result = run("""
        steps:
          - id: q1
            prompt: "What is the capital of France?"
          - id: q2
            continue: q1
            prompt: "How many people live there?"
            stream: true
          - id: q3
            continue: q2
            prompt: "And in 1900?"
    """)
    assert result.ok
    first, second, third = (r.body["messages"] for r in fake_anthropic.requests)
    assert first == [{"role": "user", "content": "What is the capital of France?"}]
    assert second == [*first, {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]},
                      {"role": "user", "content": "How many people live there?"}]
    assert third == [*second, {"role": "assistant", "content": [{"type": "text", "text": "Two million."}]},
                     {"role": "user", "content": "And in 1900?"}]
    assert result.steps["q3"].messages == tuple(third)


def test_continuing_a_structured_step_sends_its_raw_json(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply('{"score": 4}', when="grade")
    result = run(GRADE.format(stream="false") + '      - {id: why, continue: grade, prompt: "why?"}\n')
    assert result.ok
    assert fake_anthropic.requests[1].body["messages"][1] == {"role": "assistant",
                                                            "content": [{"type": "text", "text": '{"score": 4}'}]}
    assert "output_config" not in fake_anthropic.requests[1].body


def test_continuing_a_skipped_step_skips(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - {id: q1, when: false, prompt: "first"}
          - {id: q2, continue: q1, prompt: "second"}
    """)
    assert result.steps["q2"].status == "skipped"
    assert result.steps["q2"].note == "skipped: it continues step 'q1', which was skipped"
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(("steps", "message", "line"), [
    ("  - {id: s, vars: {x: 1}}\n  - {id: a, prompt: x, continue: s}\n",
     "continue continues step 's', which is not an llm step", 4),
    ("  - {id: a, prompt: x, continue: b}\n  - {id: b, prompt: y}\n",
     "continue refers to steps.b, which runs after this step", 3),
    ("  - {id: a, prompt: x, continue: a}\n", "continue refers to its own result", 3),
    ("  - {id: f, for_each: [1, 2], prompt: x}\n  - {id: a, prompt: x, continue: f}\n",
     "continues step 'f', which runs for_each", 4),
    ("  - {id: p, call: print, continue: p}\n", "'continue' does not apply to a python step", 3),
])
def test_bad_continue_is_a_spec_error(steps: str, message: str, line: int) -> None:
    error = spec_error("steps:\n" + steps, namespace={"print": print})
    assert message in str(error) and error.location.line == line
