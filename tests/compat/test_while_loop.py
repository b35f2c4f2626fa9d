"""pipeline_ex's while_loop, translated to a pipeline step with while: and max_iterations: its body's
variables carry from one iteration to the next, its condition reads them, later steps see the last ones."""

from __future__ import annotations

from pathlib import Path

import pipeline_nb
from pipeline_nb.compat import translate
from pipeline_nb.testing import FakeAnthropic
from pipeline_nb._yaml import load_yaml

CORPUS = Path(__file__).parent / "corpus"


def script(fake: FakeAnthropic) -> None:
    fake.reply("draft two", when="Round 0:")
    fake.reply("draft three", when="Round 1:")
    fake.reply("draft four", when="Round 2:")
    fake.reply("meh", when="Judge: draft two")
    fake.reply("good", when="Judge: draft three")
    fake.reply("done")


def test_the_loop_runs_until_its_condition_fails_carrying_the_bodys_variables(fake_anthropic: FakeAnthropic) -> None:
    script(fake_anthropic)
    run = pipeline_nb.run(CORPUS / "flow_while.yaml", journal="off")
    assert run.ok and run.steps["polish"].note == "2 iterations; while became false"
    assert [r.prompt for r in fake_anthropic.requests] == [
        "Round 0: improve a rough draft", "Judge: draft two", "Round 1: improve draft two", "Judge: draft three",
        "Publish draft three (good)"]


def test_the_translation_is_a_bounded_pipeline_step() -> None:
    path = CORPUS / "flow_while.yaml"
    data, smap = load_yaml(path.read_text(), source=str(path))
    polish = translate(data, smap, CORPUS)[0]["steps"][0]
    assert (polish["type"], polish["max_iterations"]) == ("pipeline", 4)
    assert polish["while"] == "{{ (last.remember.verdict if last else verdict) != \"good\" }}"
    assert polish["inputs"] == {"draft": "{{ last.remember.draft if last else draft }}",
                                "verdict": "{{ last.remember.verdict if last else verdict }}",
                                "iteration": "{{ loop.index }}"}
    assert [s["id"] for s in polish["pipeline"]["steps"]] == ["rewrite", "judge", "remember"]


def test_the_body_gets_the_workflows_defaults() -> None:
    text = """\
workflow:
  name: w
  defaults: {claude_options: {model: haiku, max_tokens: 77}}
  steps:
    - name: loop
      type: while_loop
      condition: "{{state.n < 2}}"
      max_iterations: 3
      steps:
        - {name: ask, type: claude, prompt: hi}
"""
    data, smap = load_yaml(text, source="w.yaml")
    [ask] = translate(data, smap)[0]["steps"][0]["pipeline"]["steps"]
    assert (ask["model"], ask["max_tokens"]) == ("claude-haiku-5-5", 77)
