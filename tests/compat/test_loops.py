"""pipeline_ex's for_loop with a body of several steps (a pipeline step run per item), later steps
reading its results, set_variable's variable:/value:, and the references pipeline_ex computes
(arithmetic, functions) or renders empty, run through the real SDK against FakeAnthropic."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._yaml import load_yaml
from pipeline_nb.compat import translate
from pipeline_nb.testing import FakeAnthropic

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def tours(fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pipeline_nb.PipelineRun:
    shutil.copy(CORPUS / "flow_loops.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)
    fake_anthropic.reply("Welcome aboard.", when="tour brief")
    fake_anthropic.reply("Sunny quays.", when="Stop 0 of 3: Oslo")
    fake_anthropic.reply("Misty cliffs.", when="Stop 1 of 3: Lima")
    fake_anthropic.reply("Cold wharves.", when="Stop 2 of 3: Hobart")
    return pipeline_nb.run(tmp_path / "flow_loops.yaml", journal="off")


def test_a_for_loop_runs_its_steps_per_item_with_the_item_and_the_names_around_it(
        tours: pipeline_nb.PipelineRun, fake_anthropic: FakeAnthropic) -> None:
    assert tours.status == "ok"
    prompts = [r.prompt for r in fake_anthropic.requests]
    assert prompts[1:4] == [f"Stop {i} of 3: {port}. Describe it in a cheerful voice, following:\nWelcome aboard."
                            for i, port in enumerate(["Oslo", "Lima", "Hobart"])]
    items = tours.steps["tour_each_port"].output
    assert [(item["label"], item["describe"]) for item in items] == [
        ({"stop": "Stop 0 of 3: Oslo"}, "Sunny quays."), ({"stop": "Stop 1 of 3: Lima"}, "Misty cliffs."),
        ({"stop": "Stop 2 of 3: Hobart"}, "Cold wharves.")]


def test_later_steps_read_the_loop_as_pipeline_ex_gives_it(
        tours: pipeline_nb.PipelineRun, fake_anthropic: FakeAnthropic) -> None:
    assert tours.steps["port_count"].output == 3  # test_echo of completed_items
    prompts = [r.prompt for r in fake_anthropic.requests]
    # a for_loop over data_source "tour_each_port:iterations"
    assert prompts[4:7] == ["Recap visit 0 to Oslo: Sunny quays.", "Recap visit 1 to Lima: Misty cliffs.",
                            "Recap visit 2 to Hobart: Cold wharves."]
    head, _, rest = prompts[-1].partition("\n")
    assert head == "Close after 3 laps, notes [], 3 ports:"
    assert json.loads(rest) == {"completed_items": 3, "success": True, "total_items": 3, "iterations": [
        {"index": i, "item": port, "success": True, "results": {
            "label": {"stop": f"Stop {i} of 3: {port}"}, "describe": {"success": True, "text": reply}}}
        for i, (port, reply) in enumerate([("Oslo", "Sunny quays."), ("Lima", "Misty cliffs."),
                                           ("Hobart", "Cold wharves.")])]}


def test_a_while_loop_counts_with_arithmetic_and_what_pipeline_ex_renders_empty_is_noted(
        tours: pipeline_nb.PipelineRun, fake_anthropic: FakeAnthropic) -> None:
    prompts = [r.prompt for r in fake_anthropic.requests]
    assert prompts[7:10] == [f"Lap {n} in a cheerful voice" for n in range(3)]
    assert tours.steps["count_laps"].output["next_lap"] == {"laps": 3}  # an integer: the condition compares it
    assert tours.steps["choose_notes"].output == {"notes": ""}
    notes = "\n".join(tours.warnings)
    assert ("pipeline_ex does not evaluate {{state.laps == 3 ? state.tone : state.ports}}: it looks it up as a "
            "variable name, finds none and renders it empty, and so does the translation (at ") in notes
    assert "condition: on a step of a for_loop is ignored" in notes and "for_loop batch_size: is ignored" in notes


def test_set_variable_with_variable_and_value_sets_nothing_with_a_note(tours: pipeline_nb.PipelineRun) -> None:
    assert tours.steps["placeholder"].status == "ok" and tours.steps["placeholder"].output == {}
    notes = "\n".join(tours.warnings)
    assert "it reads only variables:, so this step sets nothing, as here (to set one, write variables: " \
           "{archive: ...})" in notes
    assert "set_variable streaming: is ignored" in notes


def test_the_body_is_an_inline_pipeline_whose_inputs_carry_what_it_reads() -> None:
    path = CORPUS / "flow_loops.yaml"
    data, smap = load_yaml(path.read_text(encoding="utf-8"), source=str(path))
    steps = {s["id"]: s for s in translate(data, smap, CORPUS, notes=[])[0]["steps"]}
    loop = steps["tour_each_port"]
    assert (loop["type"], loop["for_each"], loop["as"], loop["max_parallel"]) == ("pipeline", "{{ ports }}", "port", 1)
    assert loop["inputs"] == {"port": "{{ port }}", "tone": "{{ tone }}", "brief": "{{ steps.brief.text }}",
                              "loop": {"index": "{{ loop.index }}", "length": "{{ loop.length }}"}}
    assert [s["id"] for s in loop["pipeline"]["steps"]] == ["label", "describe", "_iteration"]
    assert "when" not in loop["pipeline"]["steps"][1]  # pipeline_ex's loop never reads a step's condition
    assert steps["recap_each"]["for_each"] == "{{ (steps.tour_each_port.output | map(attribute='_iteration') | list) }}"
    assert steps["recap_each"]["type"] == "llm"  # one claude step: still an llm step with for_each


def workflow(steps: str, variables: str = "") -> str:
    head = "workflow:\n  name: w\n" + (f"  variables: {variables}\n" if variables else "")
    return head + "  steps:\n" + textwrap.indent(textwrap.dedent(steps), "    ")


def value_of(expression: str) -> Any:
    text = workflow(f"- {{name: calc, type: set_variable, variables: {{r: {json.dumps(expression)}}}}}\n",
                    '{n: 5, m: "4", x: "1.5", neg: -3}')
    return pipeline_nb.run(text, provider="mock", journal="off").steps["calc"].output["r"]


@pytest.mark.parametrize(("expression", "expected"), [
    ("{{state.n + 1}}", 6),
    ("{{state.n+1}}", 6),
    ("{{state.n * state.m}}", 20),  # a number in text is read as one
    ("{{state.neg - 1}}", -4),
    ("{{n + 1}}", 6),  # without state., each word is a variable
    ("{{state.missing * 3}}", 0),  # a variable that is not set is 0
    ("{{state.n / 2}}", "5 / 2"),  # pipeline_ex never divides: the text, values in place
    ("{{state.x + 1}}", "1.5 + 1"),  # only integers are computed
    ("{{state.n + state.m + 1}}", "5 + 4 + 1"),  # only one operation
    ("{{state.neg-1}}", "-3-1"),  # a text that starts with "-" is not a subtraction
    ("{{round(2.5)}}", 3),  # Elixir rounds half away from zero
    ("{{round(-2.5)}}", -3),
    ("{{floor(state.x)}}", 1),
    ("{{ceil(state.x)}}", 2),
    ("{{state.n == 5 ? state.m : state.x}}", ""),
    ("{{n is 5}}", ""),
])
def test_references_pipeline_ex_computes_give_what_it_gives(expression: str, expected: Any) -> None:
    assert value_of(expression) == expected


def problems_of(text: str) -> PipelineSpecError:
    data, smap = load_yaml(text, source="wf.yaml")
    with pytest.raises(PipelineSpecError) as info:
        translate(data, smap, None, notes=[])
    return info.value


@pytest.mark.parametrize(("steps", "where", "message", "hint"), [
    ("""\
     - {name: each, type: for_loop, iterator: i, data_source: [1, 2],
        steps: [{name: say, type: test_echo, value: "{{loop.i}}"}]}
     """, (5, 34), "pipeline_ex's for_loop does not run test_echo steps", "move it out of the loop"),
    ("""\
     - {name: gen, type: set_variable, variables: {xs: [1]}}
     - {name: each, type: for_loop, iterator: i, data_source: "previous_response:gen:xs",
        steps: [{name: say, type: claude, prompt: "{{loop.i}}"}]}
     """, (5, 62), "reads the result of a step named 'previous_response', and there is none", '"<step>:<field>"'),
    ("""\
     - {name: each, type: for_loop, iterator: i, data_source: [1],
        steps: [{name: a, type: claude, prompt: x}, {name: b, type: claude, prompt: y}]}
     - {name: after, type: claude, prompt: "{{steps.each.iterations.0.item}}"}
     """, (6, 43), "step 'each' is a for_loop: pipeline_ex gives it iterations", 'data_source: "each:iterations"'),
    ("- {name: c, type: claude, prompt: \"{{lower(state.n)}}\"}\n", (4, 39),
     "{{lower(state.n)}} is not one of pipeline_ex's functions", "multiply(a, b)"),
])
def test_what_pipeline_ex_cannot_do_in_a_loop_is_refused_where_it_is(
        steps: str, where: tuple[int, int], message: str, hint: str) -> None:
    error = problems_of(workflow(steps))
    assert (error.location.line, error.location.col) == where, str(error)
    assert message in error.message and hint in (error.hint or ""), str(error)


def test_a_loop_inside_a_body_and_the_steps_after_it_see_their_own_items(fake_anthropic: FakeAnthropic) -> None:
    text = workflow("""\
        - name: outer
          type: for_loop
          iterator: shelf
          data_source: [A, B]
          parallel: true
          max_parallel: 2
          steps:
            - name: inner
              type: for_loop
              iterator: book
              data_source: [x, y]
              steps: [{name: read, type: claude, prompt: "read {{loop.book}}"}]
            - {name: sum_up, type: claude, prompt: "shelf {{loop.shelf}} after {{inner.text}}"}
        """)
    run = pipeline_nb.run(text, journal="off")
    assert run.ok and run.steps["outer"].output[1]["inner"] == ["Fake reply to: read x", "Fake reply to: read y"]
    assert sorted(r.prompt for r in fake_anthropic.requests if r.prompt.startswith("shelf")) == [
        f"shelf {s} after Fake reply to: read x\n\nFake reply to: read y" for s in "AB"]


def test_a_while_loop_in_a_body_starts_each_item_from_the_variables_around_the_loop(
        fake_anthropic: FakeAnthropic) -> None:
    text = workflow("""\
        - name: per_room
          type: for_loop
          iterator: room
          data_source: [hall, attic]
          steps:
            - name: sweep
              type: while_loop
              condition: "state.passes < 2"
              max_iterations: 3
              steps:
                - {name: pass_once, type: claude, prompt: "sweep {{loop.iteration}} of the {{state.where}}"}
                - {name: count, type: set_variable, variables: {passes: "{{state.passes + 1}}"}}
            - {name: report, type: claude, prompt: "{{loop.room}} swept {{state.passes}} times"}
        """, "{passes: 0, where: house}")
    run = pipeline_nb.run(text, journal="off")
    assert run.ok  # each item starts from passes 0: a body's variables last one iteration, as in pipeline_ex
    assert [r.prompt for r in fake_anthropic.requests] == [
        "sweep 0 of the house", "sweep 1 of the house", "hall swept 2 times",
        "sweep 0 of the house", "sweep 1 of the house", "attic swept 2 times"]
