"""Specs: every problem is a PipelineSpecError with line:col, step id and a useful hint;
good specs load from text, files and dicts with defaults merged and types inferred."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._loader import load_spec


def error_of(text: str, **kwargs: object) -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as info:
        load_spec(text, **kwargs)  # type: ignore[arg-type]
    return info.value


def at(error: PipelineSpecError) -> tuple[int, int]:
    assert error.location is not None, str(error)
    return error.location.line, error.location.col


# (name, text, (line, col), step id, words in the message, words in the hint)
ERRORS = [
    ("tab indent", "steps:\n\t- id: a\n    prompt: hi\n", (2, 1), None, "'\\t'", "spaces, not tabs"),
    ("tab before key", "steps:\n  - id: a\n\tprompt: hi\n", (3, 1), None, "'\\t'", "spaces, not tabs"),
    ("key indented too far", "steps:\n  - id: a\n     prompt: hi\n", (3, 12), None,
     "mapping values are not allowed", "must line up"),
    ("key indented too little", "steps:\n  - id: a\n    prompt: hi\n   model: x\n", (4, 4), None,
     "expected <block end>", "indentation"),
    ("colon in a plain value", "steps:\n  - id: a\n    prompt: Note: this\n", (3, 17), None,
     "mapping values are not allowed", 'quote values that contain ": "'),
    ("unclosed double quote", 'steps:\n  - id: a\n    prompt: "hi\n  - id: b\n', (3, 13), None,
     "quoted string is never closed", "close the quote"),
    ("unclosed single quote", "steps:\n  - id: a\n    prompt: 'it is\n", (3, 13), None,
     "quoted string is never closed", "close the quote"),
    ("unclosed flow mapping", "defaults: {provider: mock\nsteps:\n  - id: a\n    prompt: hi\n", (2, 6), None,
     "expected ','", None),
    ("duplicate key", "steps:\n  - id: a\n    prompt: hi\n    prompt: ho\n", (4, 5), None,
     "duplicate key 'prompt'", "once per mapping"),
    ("unknown step key", "steps:\n  - id: a\n    prompt: hi\n    promtp: x\n", (4, 5), "a",
     "unknown key 'promtp'", "did you mean 'prompt'?"),
    ("unknown key, nothing close", "steps:\n  - id: a\n    prompt: hi\n    zzzzzz: x\n", (4, 5), "a",
     "unknown key 'zzzzzz'", "known keys: args, as, attachments, base_url"),
    ("unknown top-level key", "stepz: []\nsteps:\n  - id: a\n    prompt: hi\n", (1, 1), None,
     "unknown key 'stepz'", "did you mean 'steps'?"),
    ("unknown key in defaults", "defaults: {modle: x}\nsteps:\n  - id: a\n    prompt: hi\n", (1, 12), None,
     "unknown key 'modle' in defaults", "did you mean 'model'?"),
    ("id in defaults", "defaults: {id: x}\nsteps:\n  - id: a\n    prompt: hi\n", (1, 12), None,
     "unknown key 'id' in defaults", None),
    ("unknown step type", "steps:\n  - id: a\n    type: tool\n    prompt: hi\n", (3, 11), "a",
     "unknown step type 'tool'; known types: llm", None),
    ("duplicate id", "steps:\n  - id: a\n    prompt: hi\n  - id: a\n    prompt: ho\n", (4, 9), "a",
     "duplicate step id 'a' (first used by step 1)", "its own id"),
    ("missing prompt", "steps:\n  - id: a\n    type: llm\n", (2, 5), "a", "missing 'prompt'", "prompt:"),
    ("no type, no prompt", "steps:\n  - id: a\n    model: m\n", (2, 5), "a", "no type and no prompt", None),
    ("missing id", "steps:\n  - prompt: hi\n", (2, 5), None, "step 1 is missing 'id'", "id: name"),
    ("bad id", "steps:\n  - id: 1a\n    prompt: hi\n", (2, 9), "1a", "id '1a' is not a valid name", "letters"),
    ("step is a string", "steps:\n  - a\n", (2, 5), None, "step 1 must be a mapping, got string 'a'", "- id:"),
    ("steps is a mapping", "steps:\n  id: a\n  prompt: hi\n", (2, 3), None, "steps must be a list, got mapping",
     "'- '"),
    ("no steps", "steps: []\n", (1, 8), None, "steps must not be empty", None),
    ("empty document", "", (1, 1), None, "got an empty document", "steps:"),
    ("not a mapping", "- a\n", (1, 1), None, "got list ['a']", None),
    ("a file name without .yaml", "flows/demo", (1, 1), None, "got string 'flows/demo'", "pathlib.Path"),
    ("wrong type", "steps:\n  - id: a\n    prompt: hi\n    max_tokens: lots\n", (4, 17), "a",
     "max_tokens must be an integer, got string 'lots'", None),
    ("boolean", "steps:\n  - id: a\n    prompt: hi\n    stream: 'yes'\n", (4, 13), "a",
     "stream must be a boolean", None),
    ("too few items", "steps:\n  - id: a\n    prompt: hi\n    retry_backoff: [1]\n", (4, 20), "a",
     "retry_backoff must have at least 2 items, got 1", None),
    ("above maximum", "steps:\n  - id: a\n    prompt: hi\n    retries: 100\n", (4, 14), "a",
     "retries must be at most 20, got 100", None),
    ("zero timeout", "steps:\n  - id: a\n    prompt: hi\n    timeout: 0\n", (4, 14), "a",
     "timeout must be more than 0", None),
    ("bad template", "steps:\n  - id: a\n    prompt: 'hi {{ x '\n", (3, 13), "a", "bad template in prompt", "{{ name }}"),
    ("bad template in system", "steps:\n  - id: a\n    prompt: hi\n    system: '{% if %}'\n", (4, 13), "a",
     "bad template in system", None),
    ("bad template, line 2 of a block", "steps:\n  - id: a\n    prompt: |\n      line one\n      line {{ two\n",
     (5, 7), "a", "bad template in prompt", None),
    ("unknown filter", "steps:\n  - id: a\n    prompt: '{{ x | nosuchfilter }}'\n", (3, 13), "a",
     "No filter named 'nosuchfilter'", None),
    ("later step", "steps:\n  - id: a\n    prompt: '{{ steps.b.text }}'\n  - id: b\n    prompt: hi\n", (3, 13), "a",
     "refers to steps.b, which runs after this step", "move step 'b' above step 'a'"),
    ("unknown step", "steps:\n  - id: first\n    prompt: hi\n  - id: b\n    prompt: '{{ steps.frist.text }}'\n",
     (5, 13), "b", "refers to steps.frist, which is not a step", "did you mean steps.first?"),
    ("own result", "steps:\n  - id: a\n    prompt: \"{{ steps['a'].text }}\"\n", (3, 13), "a",
     "refers to its own result", None),
    ("ref on line 3 of a block", "steps:\n  - id: a\n    prompt: hi\n  - id: b\n    system: |\n      one\n"
     "      two\n      {{ steps.c.text }}\n    prompt: hi\n", (8, 7), "b", "system refers to steps.c", None),
]


@pytest.mark.parametrize("name, text, where, step_id, message, hint", ERRORS, ids=[e[0] for e in ERRORS])
def test_spec_errors(name: str, text: str, where: tuple[int, int], step_id: str | None, message: str,
                     hint: str | None) -> None:
    error = error_of(text)
    assert at(error) == where
    assert error.step_id == step_id
    assert message in error.message
    if hint is not None:
        assert error.hint and hint in error.hint
    head = str(error).splitlines()[0]
    assert head.startswith(f"<pipeline>:{where[0]}:{where[1]}: " + (f"step '{step_id}': " if step_id else ""))


def test_unknown_variables_are_found_before_running_with_did_you_mean() -> None:
    text = "vars: {topic: tides}\nsteps:\n  - id: a\n    prompt: |\n      About {{ topic }},\n      for {{ reader }}\n"
    with pytest.raises(PipelineSpecError) as info:
        pipeline_nb.run(text, namespace={"readers": 1})
    error = info.value
    assert at(error) == (6, 7) and error.step_id == "a"
    assert "prompt uses {{ reader }}, which is not defined" in error.message
    assert error.hint and "did you mean 'readers'?" in error.hint and "--var reader=VALUE" in error.hint
    for source in ({"vars": {"reader": "x"}}, {"namespace": {"reader": "x"}}):
        assert pipeline_nb.run(text, **source).ok  # type: ignore[arg-type]


def test_line_offset_counts_the_magic_line() -> None:
    error = error_of("steps:\n  - id: a\n    prompt: hi\n    promtp: x\n", line_offset=1, source_name="<cell>")
    assert str(error).startswith("<cell>:5:5: step 'a': unknown key 'promtp'")
    assert at(error_of("steps:\n\t- id: a\n", line_offset=1)) == (3, 1)
    assert at(error_of("steps:\n  - id: a\n    prompt: |\n      x\n      {{ y\n", line_offset=1)) == (6, 7)
    assert at(error_of("steps:\n  - id: a\n    prompt: '{{ steps.b.text }}'\n", line_offset=1)) == (4, 13)


def test_defaults_merge_and_type_inference() -> None:
    spec = load_spec("""
name: merged
description: two steps
defaults: {provider: mock, model: m1, max_tokens: 99, stop_sequences: [END], stream: true}
vars: {topic: tides}
steps:
  - id: a
    prompt: "About {{ topic }}"
  - id: b
    type: llm
    model: m2
    stream: false
    stop_sequences: []
    prompt: "{{ steps.a.text }}"
""")
    a, b = spec.steps
    assert (spec.name, spec.description, dict(spec.vars)) == ("merged", "two steps", {"topic": "tides"})
    assert (a.type, a.model, a.max_tokens, a.stop_sequences, a.stream, a.provider) == (
        "llm", "m1", 99, ("END",), True, "mock")
    assert (b.type, b.model, b.max_tokens, b.stop_sequences, b.stream) == ("llm", "m2", 99, (), False)
    assert (a.index, b.index, a.retries, a.retry_backoff, a.save_as) == (0, 1, 2, (0.5, 8.0), None)
    assert a.prompt is not None and a.prompt.names == {"topic"} and b.prompt is not None
    assert b.prompt.step_refs == ("a",)
    assert a.where("model") is not None and a.where("model").line == 4  # from defaults
    assert b.where("model") is not None and b.where("model").line == 11  # its own


def test_static_text_is_not_a_template() -> None:
    spec = load_spec({"steps": [{"id": "a", "prompt": "literal {braces} and 50% off"}]})
    assert spec.steps[0].prompt is not None and spec.steps[0].prompt.is_static


def test_dict_source() -> None:
    spec = load_spec({"name": "d", "steps": [{"id": "a", "prompt": "hi"}]})
    assert spec.name == "d" and spec.source == "<dict>" and spec.steps[0].type == "llm"
    with pytest.raises(PipelineSpecError, match="unknown key 'promtp'") as info:
        load_spec({"steps": [{"id": "a", "prompt": "hi", "promtp": "x"}]})
    assert info.value.step_id == "a"


@pytest.mark.parametrize("as_path", [True, False])
def test_path_source(tmp_path: Path, as_path: bool) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("steps:\n  - id: a\n    prompt: hi\n", encoding="utf-8")
    spec = load_spec(path if as_path else str(path))
    assert spec.source == str(path) and spec.base_dir == tmp_path and spec.steps[0].id == "a"
    path.write_text("steps:\n  - id: a\n    prompt: hi\n    promtp: x\n", encoding="utf-8")
    assert str(error_of(path if as_path else str(path))).startswith(f"{path}:4:5: step 'a': unknown key")


def test_missing_file() -> None:
    with pytest.raises(PipelineSpecError, match="cannot read pipeline file.*nowhere.yaml"):
        load_spec("nowhere.yaml")


def test_a_name_used_only_under_a_default_filter_may_be_undefined() -> None:
    """``{{ tone | default("plain") }}`` is a choice, not a typo: it runs without tone, and with it."""
    yaml = 'steps: [{id: a, prompt: "Say it {{ tone | default(\'plainly\') }}.", mock_response: ok, mock_delay: 0}]'
    assert pipeline_nb.run(yaml).steps["a"].messages[-1]["content"] == "Say it plainly."
    assert pipeline_nb.run(yaml, vars={"tone": "loudly"}).steps["a"].messages[-1]["content"] == "Say it loudly."
    with pytest.raises(pipeline_nb.PipelineSpecError, match=r"\{\{ tone \}\}, which is not defined"):
        pipeline_nb.run('steps: [{id: a, prompt: "{{ tone | default(\'x\') }} and {{ tone }}"}]')
