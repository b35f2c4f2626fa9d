"""The fakes answer an unscripted request for structured output with a JSON value of its schema, so a
pipeline with output_schema runs against them without a script (the text of any other is an echo)."""

from __future__ import annotations

import pipeline_nb
from pipeline_nb._structured import schema_instance
from pipeline_nb.testing import FakeAnthropic, FakeGemini

SCHEMA = """{type: object, required: [score, tags, verdict],
             properties: {score: {type: integer, minimum: 3, maximum: 9}, tags: {type: array, minItems: 2,
             items: {type: string}}, verdict: {enum: [keep, drop]}, note: {type: string}}}"""


def test_an_unscripted_structured_step_gets_a_value_its_schema_accepts(fake_anthropic: FakeAnthropic,
                                                                        fake_gemini: FakeGemini) -> None:
    run = pipeline_nb.run(f"""
        steps:
          - {{id: claude, provider: claude, prompt: rate it, output_schema: {SCHEMA}}}
          - {{id: gemini, provider: gemini, model: gemini-2.5-flash, prompt: rate it, output_schema: {SCHEMA}}}
          - {{id: plain, provider: claude, prompt: say hi}}
    """, journal="off")
    for step in ("claude", "gemini"):
        assert run.steps[step].output == {"score": 3, "tags": ["Fake reply to: rate it"] * 2, "verdict": "keep"}
    assert run.steps["plain"].text == "Fake reply to: say hi"


def test_schema_instance_covers_the_common_shapes() -> None:
    assert schema_instance({"type": ["null", "number"], "exclusiveMinimum": 0}) == 1.0
    assert schema_instance({"anyOf": [{"const": 7}, {"type": "string"}]}) == 7
    assert schema_instance({"type": "string", "minLength": 9}, "short") == "short...."
    assert schema_instance({"properties": {"a": {"type": "boolean"}, "b": {"default": "x"}}}) == {"a": True, "b": "x"}
