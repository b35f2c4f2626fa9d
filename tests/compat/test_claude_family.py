"""pipeline_ex's model steps run through the real SDK against FakeAnthropic: Claude Code's tools
confined to cwd, presets, claude_robust's retries and fallback, claude_session's conversation,
claude_extract's formats, gemini steps as provider gemini, and what is refused or noted."""

from __future__ import annotations

import re

import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.compat import CompatNote
from pipeline_nb._compat_extract import extract
from pipeline_nb._loader import load_spec
from pipeline_nb._yaml import load_yaml
from pipeline_nb.compat import translate
from pipeline_nb.testing import FakeAnthropic

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in its own working directory: pipeline_ex reads cwd relative to it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")
    return tmp_path


def steps_of(name: str) -> dict[str, dict[str, Any]]:
    path = CORPUS / name
    data, smap = load_yaml(path.read_text(), source=str(path))
    return {s["id"]: s for s in translate(data, smap, CORPUS)[0]["steps"]}


def workflow(steps: str) -> str:
    return "workflow:\n  name: t\n  steps:\n" + textwrap.indent(textwrap.dedent(steps), "    ")


def test_a_claude_step_with_write_really_writes_the_file_in_cwd(fake_anthropic: FakeAnthropic, in_tmp: Path) -> None:
    fake_anthropic.reply("", tool_calls=[{"name": "write_file", "input": {"path": "tides.md", "content": "- spring"}}],
                         times=1)
    fake_anthropic.reply("I wrote tides.md.", when="created tides.md")
    fake_anthropic.reply("One line.", when="Summarise")
    run = pipeline_nb.run(CORPUS / "claude_agent_tools.yaml")
    notes = run.warnings  # notes on the run
    assert run.ok, run.steps
    assert (in_tmp / "harbour_notes" / "tides.md").read_text() == "- spring"
    first = fake_anthropic.requests[0].body
    assert [t["name"] for t in first["tools"]] == ["write_file", "read_file"]  # LS is disallowed
    assert run.steps["draft_notes"].text == "I wrote tides.md." and len(run.steps["draft_notes"].tool_calls) == 1
    assert "tools" not in fake_anthropic.requests[-1].body  # a step without allowed_tools calls no tool
    assert "I wrote tides.md." in fake_anthropic.requests[-1].prompt
    said = list(notes)
    assert any("claude_options.verbose is ignored" in s and "claude_agent_tools.yaml:6:16" in s for s in said)
    assert any("claude_options.output_format is ignored" in s for s in said)


def test_max_turns_bounds_the_tool_rounds(fake_anthropic: FakeAnthropic, in_tmp: Path) -> None:
    assert steps_of("claude_agent_tools.yaml")["draft_notes"]["max_tool_rounds"] == 3
    fake_anthropic.reply("again", tool_calls=[{"name": "read_file", "input": {"path": "x.md"}}])
    run = pipeline_nb.run(workflow("""\
        - name: loop
          type: claude
          claude_options: {allowed_tools: [Read], cwd: ./w, max_turns: 2}
          prompt: Read x.md forever
    """), raise_on_error=False)
    assert run.steps["loop"].error.type == "tool_rounds_exceeded"
    assert len(fake_anthropic.requests) == 2  # one round of tools allowed, the second reply asking again fails


def test_presets_set_their_options(in_tmp: Path) -> None:
    with pytest.warns(CompatNote) as notes:
        steps = steps_of("claude_smart_presets.yaml")
    build, review, answer = steps["build"], steps["review"], steps["answer"]
    assert build["model"] == "claude-sonnet-5-5" and build["workdir"] == str(in_tmp / "lab")
    assert build["tools"] == ["write_file", "edit_file", "read_file", "search_files", "list_files"]
    assert build["system"].startswith("You are a helpful development assistant.")
    assert build["system"].endswith("Use detailed logging and provide comprehensive explanations.")
    assert (build["max_tool_rounds"], build["retries"], build["retry_backoff"], build["timeout"]) == (19, 2, [1, 2], 900)
    assert review["model"] == "claude-opus-5-5" and review["tools"] == ["read_file", "list_files", "search_files"]
    assert review["workdir"] == str(in_tmp / "workspace") and (in_tmp / "workspace").is_dir()
    assert "tools" not in answer and answer["system"].startswith("You are a helpful assistant.")
    said = [str(n.message) for n in notes]
    assert any("Bash tool of preset 'development' is ignored" in s for s in said)
    assert any("claude_smart options: is ignored" in s for s in said)


def test_a_preset_runs_with_its_model_system_and_tools(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Done.")
    run = pipeline_nb.run(CORPUS / "claude_smart_presets.yaml")
    assert run.ok
    build, review, answer = (r.body for r in fake_anthropic.requests)
    assert build["model"] == "claude-sonnet-5-5" and {t["name"] for t in build["tools"]} >= {"write_file"}
    assert review["model"] == "claude-opus-5-5" and "write_file" not in {t["name"] for t in review["tools"]}
    assert answer["system"].startswith("You are a helpful assistant.") and "tools" not in answer


def test_claude_robust_retries_then_falls_back_to_the_presets_fallback_model(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("overloaded_http", when=lambda r: r.body["model"] == "claude-opus-5-5", times=None)
    fake_anthropic.reply("High tide at 6:10.", when=lambda r: r.body["model"] == "claude-sonnet-5-5")
    run = pipeline_nb.run(CORPUS / "claude_robust_fallback.yaml")
    assert any(re.search("claude_robust fallback_action is ignored", w)  # a note on the run
               for w in run.warnings), run.warnings
    step = run.steps["forecast"]
    assert (step.status, step.text, step.model) == ("ok", "High tide at 6:10.", "claude-sonnet-5-5")
    assert step.note == "fell back to claude-sonnet-5-5 after overloaded_error"
    assert [r.body["model"] for r in fake_anthropic.requests] == ["claude-opus-5-5"] * 2 + ["claude-sonnet-5-5"]


def test_claude_options_fallback_model_and_retry_config_translate() -> None:
    data, smap = load_yaml(workflow("""\
        - name: a
          type: claude_smart
          preset: chat
          claude_options: {model: haiku, fallback_model: sonnet, timeout_ms: 1000,
                           retry_config: {max_retries: 4, backoff_strategy: linear, retry_on: [timeout]}}
          prompt: hi
    """), source="wf.yaml")
    with pytest.warns(CompatNote, match="retry_config.retry_on is ignored"):
        (step,) = translate(data, smap)[0]["steps"]
    assert (step["model"], step["fallback_model"]) == ("claude-haiku-5-5", "claude-sonnet-5-5")
    assert (step["retries"], step["retry_backoff"], step["timeout"]) == (3, [1.0, 3.0], 4.0)


def test_a_session_carries_the_conversation(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Noted: 41.", when="Remember")
    fake_anthropic.reply("Blue.", when="colour")
    fake_anthropic.reply("42.", when="Which number")
    run = pipeline_nb.run(CORPUS / "claude_session_dialogue.yaml")
    assert any(re.search("session_config.persist is ignored", w)  # a note on the run
               for w in run.warnings), run.warnings
    assert run.ok and run.steps["recall"].text == "42."
    aside, recall = fake_anthropic.requests[1].body["messages"], fake_anthropic.requests[2].body["messages"]
    assert len(aside) == 1  # another session starts its own conversation
    assert [m["role"] for m in recall] == ["user", "assistant", "user"]
    assert "Remember the number 41." in json.dumps(recall[0]) and "Noted: 41." in json.dumps(recall[1])


@pytest.mark.parametrize(("config", "text", "expected"), [
    ({"format": "json"}, "not json", '{"content": "not json", "format": "json"}'),
    ({"format": "json"}, '{"a": 1}', '{"a": 1}'),
    ({"format": "structured"}, "x", "## Extracted Content\n\nx\n"),
    ({"format": "summary", "max_summary_length": 8}, "0123456789", "01234..."),
    ({"format": "markdown"}, "# Title", "# Title"),
    ({"post_processing": ["extract_links", "trim"]}, "see https://a.org now",
     "see https://a.org now\n## Links Extracted\n- https://a.org\n"),
    ({"post_processing": ["extract_code_blocks"]}, "a\n```py\nx\n```", "a\n```py\nx\n```\n## Code Blocks Extracted\n"
                                                                      "```py\nx\n```\n"),
    ({"post_processing": ["generate_summary"]}, "One. Two. Three. Four.",
     "One. Two. Three. Four.\n## Generated Summary\nOne. Two. Three...\n"),
])
def test_extract_does_what_pipeline_ex_does_to_the_text(config: dict[str, Any], text: str, expected: str) -> None:
    assert extract(text, **config) == expected


def test_claude_extract_runs_the_reply_through_its_format(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Facts:\n- spring tides\n- neap tides", when="List three")
    fake_anthropic.reply("A long expansion of the facts.", when="Expand")
    run = pipeline_nb.run(CORPUS / "claude_extract_formats.yaml")
    assert run.ok, run.steps
    assert run.steps["raw"].text == "Facts:\n- spring tides\n- neap tides"
    marked = "# Extracted Content\n\nFacts:\n- spring tides\n- neap tides\n"
    assert run.steps["as_markdown"].text == marked + "\n## Key Points Extracted\n- spring tides\n- neap tides\n"
    assert run.steps["short"].text == "A long expansion ..."
    expand = fake_anthropic.requests[-1]
    assert expand.prompt.startswith("Expand on:\n# Extracted Content")  # the next step reads the extracted text
    assert expand.body["system"].startswith("You are a helpful assistant.")


def test_gemini_steps_become_llm_steps_with_provider_gemini() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompatNote)  # nothing of it is ignored
        steps = steps_of("gemini_steps.yaml")
    assert steps["plan"] == {"id": "plan", "type": "llm", "provider": "gemini", "prompt": "Plan a study of tidal marshes.",
                             "model": "gemini-2.5-flash-lite", "max_tokens": 256, "params": {"temperature": 0.3}}
    assert steps["outline"]["model"] == "gemini-2.5-pro" and steps["outline"]["max_tokens"] == 8192
    assert steps["outline"]["prompt"] == "Outline:\n{{ steps.plan.text }}"
    structured = steps["structured"]
    assert (structured["provider"], structured["model"], structured["max_tokens"]) == ("gemini", "gemini-2.5-flash", 2048)
    assert structured["output_schema"]["required"] == ["text"] and structured["params"] == {"temperature": 0.7}


def test_unsafe_tools_and_unknown_presets_are_refused_by_name_with_line_and_column() -> None:
    with pytest.raises(PipelineSpecError) as info:
        load_spec(CORPUS / "claude_refused_agent.yaml")
    found = [(p.location.line, p.location.col, p.step, p.message) for p in info.value.problems]
    assert found == [
        (8, 31, "run_tests", "claude_options.allowed_tools: Bash has no safe equivalent in pipeline_nb"),
        (8, 37, "run_tests", "claude_options.allowed_tools: Task has no safe equivalent in pipeline_nb"),
        (12, 15, "odd", "preset 'turbo' is not one of pipeline_ex's presets"),
    ]
    assert "pipeline_nb has no shell tool" in (info.value.problems[0].hint or "")


def test_disallowing_a_tool_with_no_equivalent_is_fine(in_tmp: Path) -> None:
    data, smap = load_yaml(workflow("""\
        - name: a
          type: claude
          claude_options: {allowed_tools: [Read, Bash], disallowed_tools: [Bash, WebFetch], cwd: ./docs}
          prompt: hi
        - name: b
          type: claude
          claude_options: {allowed_tools: [WebSearch, WebFetch, TodoWrite]}
          prompt: hi
    """), source="wf.yaml")
    with pytest.warns(CompatNote, match="TodoWrite tool of these claude_options is ignored"):
        a, b = translate(data, smap)[0]["steps"]
    assert (a["tools"], a["workdir"]) == (["read_file"], str(in_tmp / "docs"))
    assert b["tools"] == ["web_search", "web_fetch"] and "workdir" not in b


def test_what_pipeline_ex_itself_does_not_read_is_noted_not_refused() -> None:
    data, smap = load_yaml(workflow("""\
        - {name: g, type: gemini, prompt: hi, token_budget: {max_output_tokens: 9, max_input_tokens: 99}}
        - name: b
          type: claude_batch
          preset: chat
          prompt: unused
          tasks: [{prompt: one, claude_options: {output_format: text}}]
    """), source="wf.yaml")
    with pytest.warns(CompatNote) as notes:
        g, b = translate(data, smap)[0]["steps"]
    assert g["max_tokens"] == 9 and b["for_each"] == ["one"]
    said = " ".join(str(n.message) for n in notes)
    assert "token_budget.max_input_tokens is ignored" in said and "(at wf.yaml:4:98)" in said
    assert "claude_batch prompt: beside tasks: is ignored" in said
    assert "claude_options of a claude_batch task is ignored" in said


def test_gemini_steps_run_against_fake_gemini(fake_gemini: Any) -> None:
    fake_gemini.reply("Survey three marshes.", when="Plan")
    fake_gemini.reply("1. Survey.", when="Outline")
    fake_gemini.reply('{"text": "A survey plan.", "summary": "Survey."}', when="Summarise")
    run = pipeline_nb.run(CORPUS / "gemini_steps.yaml")
    assert run.ok, run.steps
    assert run.steps["structured"].output == {"text": "A survey plan.", "summary": "Survey."}
    plan, outline, structured = fake_gemini.requests
    assert "gemini-2.5-flash-lite" in plan.path and "gemini-2.5-pro" in outline.path
    assert plan.body["generationConfig"]["maxOutputTokens"] == 256 and plan.body["generationConfig"]["temperature"] == 0.3
    assert outline.prompt == "Outline:\nSurvey three marshes."
    assert structured.body["generationConfig"]["responseMimeType"] == "application/json"


def test_gemini_instructor_functions_get_pipeline_exs_basic_reply_and_its_registered_tool_is_refused() -> None:
    data, smap = load_yaml(workflow("""\
        - {name: a, type: gemini_instructor, functions: [simple_analysis], prompt: hi}
    """), source="wf.yaml")
    with pytest.warns(CompatNote, match="finding none of simple_analysis, asks for its basic reply"):
        (step,) = translate(data, smap)[0]["steps"]
    assert step["output_schema"]["properties"].keys() == {"text", "reasoning"}
    assert step["output_schema"]["required"] == ["text"]
    data, smap = load_yaml(workflow("""\
        - {name: a, type: gemini_instructor, functions: [get_wan_ip], prompt: hi}
    """), source="wf.yaml")
    with pytest.raises(PipelineSpecError, match="'get_wan_ip' is a tool of pipeline_ex's own registry"):
        translate(data, smap)


def test_a_session_conversation_is_refused_with_the_way_to_write_it() -> None:
    data, smap = load_yaml(workflow("""\
        - name: chat
          type: claude_session
          conversation:
            - {turn: 1, prompt: [{type: static, content: "7+8?"}]}
    """), source="wf.yaml")
    with pytest.raises(PipelineSpecError) as info:
        translate(data, smap)
    [problem] = info.value.problems  # no second "needs a prompt:": the hint says what to write
    assert (problem.location.line, problem.location.col) == (6, 7)
    assert problem.message == "claude_session step key 'conversation' is not supported"
    assert "does not read conversation: (it sends an empty prompt)" in problem.hint


def test_a_claude_replys_success_and_cost_read_as_pipeline_ex_gives_them(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Fixed.", when="Fix")
    fake_anthropic.reply("Checked.")
    run = pipeline_nb.run(workflow("""\
        - {name: fix, type: claude, prompt: Fix it}
        - name: check
          type: claude
          condition: fix.success
          prompt: "Check: {{fix.success}} at {{steps.fix.cost}}"
    """), journal="off")
    assert run.ok and fake_anthropic.requests[-1].prompt == "Check: true at 0"  # Elixir's true
