"""The mistakes a newcomer makes get a hint that says what to write, before any call."""

from __future__ import annotations

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.testing import FakeAnthropic


def spec_error(text: str) -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(text)
    return raised.value


def test_an_unquoted_template_value_gets_the_hint_to_quote_it() -> None:
    error = spec_error("steps:\n  - id: a\n    prompt: {{ topic }}\n")
    assert 'must be quoted, e.g. prompt: "{{ topic }}"' in error.hint
    assert (error.location.line, error.location.col) == (3, 14)


def test_a_misspelt_step_attribute_is_caught_before_the_paid_steps_with_a_hint(fake_anthropic: FakeAnthropic) -> None:
    error = spec_error("defaults: {provider: claude}\nsteps:\n  - {id: a, prompt: hi}\n"
                       "  - id: b\n    prompt: |\n      Shorten:\n      {{ steps.a.txt }}\n")
    assert error.message == "prompt uses steps.a.txt, which a step's result does not have"
    assert error.hint.startswith("did you mean steps.a.text?")
    assert (error.step_id, error.location.line) == ("b", 7)
    assert fake_anthropic.requests == []


def test_every_attribute_a_step_has_passes_the_check() -> None:
    run = pipeline_nb.run("defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n"
                          "  - {id: b, prompt: \"{{ steps.a.text }} {{ steps.a.usage.output_tokens }} "
                          "{{ steps['a'].status }} {{ steps.a.output }} {{ steps.a.ok }}\"}\n")
    assert run.ok


@pytest.mark.parametrize(("key", "value", "words"), [
    ("save_as", "my result", "it becomes a Python variable in the kernel"),
    ("id", "my-step", "it is used as steps.<id>"),
])
def test_a_bad_name_is_explained_by_what_it_becomes(key: str, value: str, words: str) -> None:
    step = {"id": "a", "prompt": "hi", key: value}
    error = spec_error(f"steps:\n  - {step}\n".replace("'", '"'))
    assert f"{key} '{value}' is not a valid name" in error.message and words in error.hint
