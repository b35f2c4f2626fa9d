"""pipeline_ex compatibility: each translation (as dicts), line:col kept through translation,
every untranslatable thing listed with its line:col, and the example run end to end
(mock, CLI, and the real SDK against FakeAnthropic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._compat_refs import literal
from pipeline_nb._yaml import load_yaml
from pipeline_nb.compat import translate
from pipeline_nb._loader import load_spec
from pipeline_nb._templates import compile_template
from pipeline_nb.testing import FakeAnthropic

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "pipelines" / "pipeline_ex_example.yaml"


def workflow(steps: str, head: str = "") -> str:
    """A pipeline_ex document: ``head`` (workflow keys) and ``steps`` (the step list), dedented."""
    body = textwrap.indent(textwrap.dedent(head), "  ") + "  steps:\n" + textwrap.indent(textwrap.dedent(steps), "    ")
    return "workflow:\n  name: t\n" + body


def steps_of(text: str, base_dir: Path | None = None) -> list[dict[str, Any]]:
    data, smap = load_yaml(text, source="wf.yaml")
    return translate(data, smap, base_dir)[0]["steps"]


def problems_of(text: str, base_dir: Path | None = None) -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as info:
        load_spec(text, source_name="wf.yaml")
    return info.value


CLAUDE = {"type": "llm", "provider": "claude"}


def test_claude_step_options_and_sanitized_id() -> None:
    steps = steps_of(workflow("""\
        - name: "analyze-code"
          type: claude
          role: muscle
          claude_options: {model: opus, max_tokens: 300, system_prompt: "Be brief.", append_system_prompt: "No {x}.",
                           timeout_ms: 1500, async_streaming: true, max_turns: 2, verbose: true, allowed_tools: []}
          prompt: [{type: static, content: "Hi"}]
          output_schema: {type: object}
    """))
    assert steps == [{"id": "analyze_code", **CLAUDE, "prompt": "Hi", "model": "claude-opus-5-5", "max_tokens": 300,
                      "system": "Be brief.\n\n{% raw %}No {x}.{% endraw %}", "timeout": 1.5, "stream": True,
                      "output_schema": {"type": "object"}}]


def test_defaults_claude_options_and_output_dir() -> None:
    steps = steps_of(workflow("""\
        - {name: a, type: claude, prompt: hi, output_to_file: "a.md", claude_options: {max_tokens: 9}}
    """, head="defaults: {output_dir: ./out/x, claude_options: {model: sonnet, max_tokens: 5}, gemini_model: g}\n"))
    assert steps == [{"id": "a", **CLAUDE, "prompt": "hi", "model": "claude-sonnet-5-5", "max_tokens": 9,
                      "output_to_file": "out/x/a.md"}]


def test_set_variable_becomes_set_step_and_later_references_resolve() -> None:
    steps = steps_of(workflow("""\
        - name: init
          type: set_variable
          scope: global
          variables: {topic: tides, n: 3, items: ["a {b}", "{{state.topic}}"], copy: "{{state.topic}}"}
        - {name: use, type: claude, prompt: "About {{topic}} and {{variables.n}}"}
    """))
    assert steps[0] == {"id": "init", "type": "set", "vars": {
        "topic": "tides", "n": 3, "items": ["{% raw %}a {b}{% endraw %}", "{{ topic }}"], "copy": "{{ topic }}"}}
    assert steps[1]["prompt"] == "About {{ topic }} and {{ n }}"


def test_for_loop_with_one_claude_step_becomes_for_each() -> None:
    steps = steps_of(workflow("""\
        - {name: scan, type: set_variable, variables: {files: [x, y]}}
        - name: per-file
          type: for_loop
          iterator: file
          data_source: "{{state.files}}"
          parallel: true
          max_parallel: 3
          steps:
            - name: inner
              type: claude
              prompt: "{{loop.index}}/{{loop.total}} {{loop.file.path}} first={{loop.first}}"
        - {name: seq, type: for_loop, iterator: f, data_source: [p, "{q}"],
           steps: [{name: i, type: claude, prompt: "{{loop.f}}"}]}
    """))
    assert steps[1] == {"id": "per_file", "for_each": "{{ files }}", "as": "file", "max_parallel": 3, **CLAUDE,
                        "prompt": '{{ loop.index }}/{{ loop.length }} {{ file["path"] }} first={{ (loop.index == 0) }}'}
    assert steps[2] == {"id": "seq", "for_each": ["p", "{% raw %}{q}{% endraw %}"], "as": "f", "max_parallel": 1,
                        **CLAUDE, "prompt": "{{ f }}"}


def test_parallel_claude_becomes_parallel_with_children() -> None:
    steps = steps_of(workflow("""\
        - name: both
          type: parallel_claude
          parallel_tasks:
            - {id: left-side, prompt: "L", output_to_file: l.md}
            - {id: right, prompt: [{type: static, content: R}], claude_options: {model: haiku}}
        - {name: after, type: claude, prompt: [{type: previous_response, step: both, extract: left-side}]}
    """))
    assert steps[0] == {"id": "both", "type": "parallel", "max_parallel": 2, "steps": [
        {"id": "left_side", **CLAUDE, "prompt": "L", "output_to_file": "outputs/l.md"},
        {"id": "right", **CLAUDE, "prompt": "R", "model": "claude-haiku-5-5"}]}
    assert steps[1]["prompt"] == "{{ steps.left_side.text }}"


def test_claude_batch_becomes_concurrent_for_each() -> None:
    steps = steps_of(workflow("""\
        - {name: first, type: claude, prompt: hi}
        - name: batch
          type: claude_batch
          preset: chat
          batch_config: {max_parallel: 2, timeout_per_task: 10000, consolidate_results: true}
          tasks:
            - {task_id: one, prompt: [{type: static, content: "One"}, {type: previous_response, step: first}]}
            - {prompt: "Two"}
    """))
    assert steps[1] == {"id": "batch", **CLAUDE, "for_each": ["One\n{{ steps.first.text }}", "Two"], "as": "task",
                        "prompt": "{{ task }}", "max_parallel": 2, "timeout": 10.0, "retries": 0,
                        "system": "You are a helpful assistant. Provide clear, concise responses."}  # the chat preset


def test_prompt_parts_static_file_and_previous_response(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("File {{ not_a_var }} {% if %}\n", encoding="utf-8")
    steps = steps_of(workflow("""\
        - {name: txt, type: claude, prompt: a}
        - {name: js, type: claude, prompt: b, output_schema: {type: object}}
        - {name: par, type: parallel_claude, parallel_tasks: [{id: x-1, prompt: c}, {id: y, prompt: d}]}
        - name: all
          type: claude
          prompt:
            - {type: static, content: "Static {% raw %} {x} }} {#"}
            - {type: file, path: p.md}
            - {type: previous_response, step: txt}
            - {type: previous_response, step: txt, extract: content}
            - {type: previous_response, step: js}
            - {type: previous_response, step: js, extract: "items[0].name"}
            - {type: previous_response, step: par}
    """), base_dir=tmp_path)
    prompt = steps[3]["prompt"]
    field = 'steps.js.output["items"][0]["name"]'
    assert prompt.split("\n")[3:] == [
        "{{ steps.txt.text }}", "{{ steps.txt.text }}",
        "{{ steps.js.output if steps.js.output is string else steps.js.output | tojson }}",
        f"{{{{ {field} if {field} is string else {field} | tojson }}}}",
        "===[x-1]===", "{{ steps.x_1.text }}", "===[y]===", "{{ steps.y.text }}"]
    rendered = compile_template(prompt).render({"steps": {
        "txt": {"text": "T"}, "js": {"output": {"items": [{"name": "N"}]}}, "x_1": {"text": "X"}, "y": {"text": "Y"}}})
    assert rendered == ("Static {% raw %} {x} }} {#\nFile {{ not_a_var }} {% if %}\n\nT\nT\n"
                        '{"items": [{"name": "N"}]}\nN\n===[x-1]===\nX\n===[y]===\nY')


@given(st.text(alphabet="{}%#-+ endraw\n\\'\"é😀x", max_size=40))
def test_literal_text_renders_exactly(text: str) -> None:
    assert compile_template(literal(text)).render({}) == text


CONDITIONS = [
    ("a.score > 80", 'steps.a.output["score"] > 80'),
    ("{{steps.a.flag == true}}", 'steps.a.output["flag"] == true'),
    ("a.tags contains 'x y'", '("x y" in steps.a.output["tags"])'),
    ("t.text != \"no\"", 'steps.t.text != "no"'),
    ("{{state.go}}", "go"),
    ({"and": ["a.ok", {"not": "a.bad"}]},
     '(steps.a.output["ok"] and not (steps.a.output["bad"]))'),
    ({"or": ["go", "a.n <= -1.5"]}, '(go or steps.a.output["n"] <= -1.5)'),
    (["go", False], "(go and false)"),
]


@pytest.mark.parametrize(("condition", "expected"), CONDITIONS)
def test_conditions_become_when_expressions(condition: Any, expected: str) -> None:
    text = workflow(f"""\
        - {{name: a, type: claude, prompt: a, output_schema: {{type: object}}}}
        - {{name: t, type: claude, prompt: t}}
        - {{name: c, type: claude, prompt: c, condition: {json.dumps(condition)}}}
    """)
    assert steps_of(text)[2]["when"] == f"{{{{ {expected} }}}}"


def test_every_untranslatable_thing_is_listed_with_line_and_column() -> None:
    text = workflow("""\
        - {name: plan, type: codebase_query, prompt: hi}
        - name: impl
          type: claude
          claude_options: {allowed_tools: [Bash], session_id: s}
          prompt:
            - {type: session_context, session_id: s}
            - {type: previous_response, step: later}
        - {name: later, type: checkpoint}
        - {name: check, type: claude, prompt: "{{floor(a, b)}}", condition: "length(x) > 2", retry_config: {}}
    """, head="triggers: {a: {}}\n")
    error = problems_of(text)
    found = [(p.location.line, p.location.col, p.step, p.message.split(":")[0]) for p in error.problems]
    assert found == [
        (3, 3, None, "workflow key 'triggers' is not supported"),
        (5, 26, "plan", "step type 'codebase_query' is not supported"),
        (8, 40, "impl", "claude_options.allowed_tools"),
        (8, 47, "impl", "claude_options.session_id is not supported"),
        (10, 18, "impl", "prompt part type 'session_context' is not supported"),
        (11, 43, "impl", "refers to step 'later', which runs later"),
        (12, 27, "later", "step type 'checkpoint' is not supported"),
        (13, 43, "check", "{{floor(a, b)}} is not one of pipeline_ex's functions with its arguments, so pipeline_ex "
                          "renders it as text"),
        (13, 73, "check", "condition 'length(x) > 2' is not supported"),
        (13, 90, "check", "claude step key 'retry_config' is not supported"),
    ]
    assert str(error).startswith("wf.yaml:3:3: 10 parts of this pipeline_ex workflow cannot be translated:\n")
    assert "  - wf.yaml:5:26: step 'plan': step type 'codebase_query' is not supported" in str(error)
    assert "hint: pipeline_nb translates pipeline_ex's step types claude, set_variable" in str(error)


@pytest.mark.parametrize(("steps", "where", "message", "hint"), [
    ("- {name: a-b, type: claude, prompt: x}\n- {name: a_b, type: claude, prompt: y}\n", (5, 14),
     "step 'a_b' gets id 'a_b', as 'a-b' does", "its own name"),
    ("- {name: a, type: claude, prompt: x}\n- {name: a, type: claude, prompt: y}\n", (5, 14),
     "step 'a' is used twice", "its own name"),
    (("- {name: a, type: for_loop, iterator: i, data_source: [1],\n   steps: [{name: x, type: claude, prompt: p},"
      " {name: y, type: test_echo, value: q}]}\n"), (5, 68), "pipeline_ex's for_loop does not run test_echo steps",
     "move it out of the loop"),
    ("- {name: a, type: claude, prompt: 42}\n", (4, 39), "prompt must be text or a list of parts", None),
    ("- {name: a, type: claude, prompt: [{type: file, path: missing.md}]}\n", (4, 59), "'missing.md' not found",
     "looked in"),
    ("- {name: a, type: claude, prompt: x}\n- {name: b, type: claude, prompt: x, condition: a.score}\n", (5, 53),
     "step 'a' gives text, so it has no field 'score'", "add output_schema: to step 'a'"),
])
def test_single_problem_is_a_plain_error(steps: str, where: tuple[int, int], message: str, hint: str | None) -> None:
    error = problems_of(workflow(steps))
    assert (error.location.line, error.location.col) == where, str(error)
    assert message in error.message and (hint is None or hint in (error.hint or ""))


def test_errors_found_after_translation_point_into_the_pipeline_ex_file() -> None:
    text = workflow("""\
        - {name: b, type: claude_batch, preset: chat, batch_config: {max_parallel: 0}, tasks: [{prompt: hi}]}
    """)
    error = problems_of(text)
    assert (error.location.line, error.location.col, error.step_id) == (4, 80, "b")
    assert "max_parallel must be at least 1" in error.message
    text = workflow("""\
        - name: w
          type: claude
          prompt:
            - type: static
              content: |
                first line
                uses {{ topik }}
    """)
    with pytest.raises(PipelineSpecError) as info:  # names are checked when the run starts
        pipeline_nb.run(text, provider="mock")
    error = info.value
    assert (error.location.line, error.location.col, error.step_id) == (10, 13, "w")
    assert "{{ topik }}, which is not defined" in error.message


def test_a_dict_and_yaml_text_are_translated_too() -> None:
    data = {"workflow": {"name": "d", "steps": [{"name": "s", "type": "claude", "prompt": "Hi {{who}}"}]}}
    run = pipeline_nb.run(data, provider="mock", vars={"who": "you"})
    assert "You asked: Hi you" in run.steps["s"].text
    assert load_spec(workflow("- {name: s, type: claude, prompt: x}\n")).steps[0].provider == "claude"


def check_example_outputs(cwd: Path) -> None:
    out = cwd / "outputs" / "literature_scan"
    assert sorted(p.name for p in out.iterdir()) == ["answers.json", "gaps.md", "report.md", "scope.md"]
    answers = json.loads((out / "answers.json").read_text(encoding="utf-8"))
    assert [a.split(": ", 1)[1].split(". Build")[0] for a in answers] == [
        f"Question {i} about tidal energy: {q}" for i, q in
        enumerate(["resource potential", "environmental impact", "cost trends"])]


def test_example_runs_end_to_end_on_the_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = pipeline_nb.run(EXAMPLE, provider="mock")
    assert {s.id: s.status for s in run.steps.values()} == {
        "setup": "ok", "scope": "ok", "sub_questions": "ok", "reviews": "ok", "methods_review": "ok",
        "gaps_review": "ok", "key_terms": "ok", "report": "ok", "press_release": "skipped"}
    assert "Cite every claim as {author, year}" in run.steps["scope"].messages[0]["content"]
    assert "Write a one-page report." in run.steps["report"].text
    assert len(run.steps["key_terms"].items) == 2
    check_example_outputs(tmp_path)


def test_example_runs_from_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"} | {"PYTHONIOENCODING": "utf-8"}
    cmd = [sys.executable, "-m", "pipeline_nb", "run", str(EXAMPLE)]
    done = subprocess.run([*cmd, "--provider", "mock"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "literature_scan: ok" in done.stderr and "press_release: skipped" in done.stderr
    check_example_outputs(tmp_path)
    refused = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
    assert refused.returncode == 1 and "missing_api_key: ANTHROPIC_API_KEY is not set" in refused.stderr


def test_example_through_the_real_sdk(fake_anthropic: FakeAnthropic, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_anthropic.reply("An outline of tidal power.", when="Outline the state")
    fake_anthropic.reply("An answer.", when="Question", delay=0.05)
    run = pipeline_nb.run(EXAMPLE)
    assert run.status == "ok" and run.steps["press_release"].status == "skipped"
    bodies = {r.prompt.split(" ")[0]: r.body for r in fake_anthropic.requests}
    assert bodies["Outline"]["model"] == "claude-sonnet-5-5"
    assert bodies["Outline"]["system"] == "You are a careful research assistant."
    assert "Cite every claim as {author, year}" in bodies["Outline"]["messages"][0]["content"]
    assert sum(r.prompt.startswith("Question") for r in fake_anthropic.requests) == 3
    assert fake_anthropic.max_concurrent == 2  # 3 sub-questions at max_parallel 2; no other step runs 3 at once
    assert "An outline of tidal power." in bodies["Write"]["messages"][0]["content"]


def test_structured_reply_extract_and_condition_through_the_real_sdk(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply('{"score": 9, "notes": ["tight"]}', when="Rate")
    text = workflow("""\
        - {name: rate, type: claude, prompt: "Rate it", output_schema: {type: object, required: [score]}}
        - name: praise
          type: claude
          condition: "rate.score > 5"
          prompt: [{type: static, content: "Notes:"}, {type: previous_response, step: rate, extract: notes}]
        - {name: fix, type: claude, condition: "rate.score <= 5", prompt: "Fix it"}
    """)
    run = pipeline_nb.run(text)
    assert run.steps["rate"].output == {"score": 9, "notes": ["tight"]}
    assert run.steps["fix"].status == "skipped"
    assert fake_anthropic.requests[-1].prompt == 'Notes:\n["tight"]'


def test_a_prompt_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    from pipeline_nb._pipeline_file import MAX_PIPELINE_FILE_BYTES

    with (tmp_path / "huge.md").open("wb") as handle:
        handle.truncate(MAX_PIPELINE_FILE_BYTES + 1)  # sparse: nothing is written
    (tmp_path / "wf.yaml").write_text(workflow("- {name: a, type: claude, prompt: [{type: file, path: huge.md}]}\n"))
    with pytest.raises(PipelineSpecError) as info:
        load_spec(tmp_path / "wf.yaml")
    assert f"prompt file 'huge.md' is {MAX_PIPELINE_FILE_BYTES + 1:,} bytes, over the limit" in str(info.value)
