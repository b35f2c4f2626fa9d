"""pipeline_ex references that name nothing: a bare name is an input (asked for with --var), a field of
an undefined name renders empty, as pipeline_ex renders it, with a note."""

from __future__ import annotations

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.testing import FakeAnthropic

WORKFLOW = """\
workflow:
  name: refs
  steps:
    - name: ask
      type: claude
      prompt:
        - type: static
          content: |
            Topic: {{topic}}
            Example: {{first_step.output}}
"""


def test_a_bare_undefined_name_is_an_input_asked_for_with_var() -> None:
    with pytest.raises(PipelineSpecError, match=r"uses \{\{ topic \}\}, which is not defined") as info:
        pipeline_nb.run(WORKFLOW, provider="mock", journal="off")
    assert "--var topic=VALUE" in str(info.value)


def test_a_field_of_an_undefined_name_renders_empty_with_a_note(fake_anthropic: FakeAnthropic) -> None:
    run = pipeline_nb.run(WORKFLOW, vars={"topic": "tides"}, journal="off")
    assert fake_anthropic.requests[-1].prompt == "Topic: tides\nExample: \n"
    [note] = [w for w in run.warnings if "first_step.output" in w]
    assert "names nothing this workflow defines, so it renders empty, as in pipeline_ex (at <pipeline>:8:20)" in note
