"""``judge:``: a Claude call that grades a result against a rubric and answers pass or fail, with why.

The judge's call is an llm step of its own (structured output: ``{"reason": ..., "pass": ...}``),
made through the run's provider, so it is retried, recorded in the cassette, journaled and
counted against the budget like every other call. With the mock provider it passes every output
and says so.
"""

from __future__ import annotations

from typing import Any

from ._expect_spec import Expectation
from ._spec import StepSpec
from ._templates import literal

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string"}, "pass": {"type": "boolean"}},
    "required": ["reason", "pass"],
    "additionalProperties": False,
}
"""The judge's reply: its reason first (it reasons before it decides), then the verdict."""

JUDGE_SYSTEM = (
    "You are a strict, fair grader. You are given the output of another model and a rubric. Decide "
    "whether the output meets every requirement of the rubric; judge only what the rubric asks. Reply "
    'with JSON: "reason", one or two sentences that say why, then "pass", true or false.'
)
MOCK_VERDICT = '{"reason": "[mock judge] The mock provider does not grade: every output passes.", "pass": true}'
"""What the offline mock provider answers a judge."""


def judge_step(step: StepSpec, expectation: Expectation, model: str, result_id: str) -> StepSpec:
    """The llm step that makes the judge's call for ``expectation`` of ``step``: the step's provider
    and retry policy, the judge's model and max_tokens, the verdict as structured output."""
    return StepSpec(
        id=result_id, index=step.index, type="llm", location=expectation.location,
        provider=step.provider, model=model, max_tokens=expectation.max_tokens,
        system=literal(JUDGE_SYSTEM), output_schema=VERDICT_SCHEMA, base_url=step.base_url,
        mock_response=MOCK_VERDICT, retries=step.retries, retry_backoff=step.retry_backoff,
        retry_after_cap=step.retry_after_cap, read_timeout=step.read_timeout,
        key_locations={key: where for key, where in step.key_locations.items() if key in ("provider", "base_url")},
    )


def judge_prompt(rubric: str, output: str, prompt: str | None) -> str:
    """The judge's user message: the step's prompt (when it sees it), the output, the rubric."""
    parts = [f"<prompt>\n{prompt}\n</prompt>"] if prompt is not None else []
    parts += [f"<output>\n{output}\n</output>", f"<rubric>\n{rubric}\n</rubric>",
              "Does the output meet the rubric?"]
    return "\n\n".join(parts)


def verdict(output: Any) -> tuple[bool, str]:
    """(passed, reason) from the judge's parsed reply."""
    return bool(output["pass"]), str(output.get("reason", "")).strip()

