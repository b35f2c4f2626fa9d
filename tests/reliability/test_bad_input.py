"""Bad input: a corpus of malformed specs, a fuzz test of the loader, and the template sandbox.

Each file in ``bad_specs/`` starts with ``# expect: <text in the error>`` and ``# at: LINE:COL``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._engine import RunOptions, execute
from pipeline_nb._loader import load_spec
from pipeline_nb._spec import PipelineSpec

CORPUS = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))
HEADER = re.compile(r"# expect: (?P<expect>.+)\n# at: (?P<line>\d+):(?P<col>\d+)\n")


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_a_malformed_spec_fails_with_line_and_column_before_any_call(fake_anthropic, path):
    header = HEADER.match(path.read_text(encoding="utf-8"))
    assert header, f"{path.name} needs '# expect:' and '# at:' lines"

    with pytest.raises(PipelineSpecError) as raised:
        execute(load_spec(path), RunOptions(default_provider="claude"))

    error = raised.value
    assert header["expect"] in str(error)
    assert error.location is not None
    assert (error.location.source, error.location.line, error.location.col) == (
        str(path), int(header["line"]), int(header["col"]))
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(("text", "where"), [
    ("steps:\n  - id: a\n    prompt: \"ring \x07\"\n", (3, 19)),
    ("steps:\n  - id: a\n    prompt: x\x00\n", (3, 14)),
    ("steps:\n  - id: a\n    prompt: \x1b[31mred\n", (3, 13)),
], ids=["bell", "nul", "escape"])
def test_a_character_yaml_forbids_is_a_spec_error(text, where):
    with pytest.raises(PipelineSpecError, match="is not allowed") as raised:
        load_spec(text)
    assert (raised.value.location.line, raised.value.location.col) == where


# -- fuzz: random YAML text, random data, and mutations of a valid spec --

VALID = {
    "name": "tides",
    "defaults": {"provider": "mock", "max_tokens": 200, "retries": 1},
    "vars": {"topic": "tides"},
    "steps": [
        {"id": "a", "prompt": "Explain {{ topic }}.", "stream": True, "stop_sequences": ["END"]},
        {"id": "b", "prompt": "Shorten: {{ steps.a.text }}", "system": "Be brief.", "save_as": "short"},
    ],
}
KEYS = ["steps", "id", "prompt", "system", "name", "vars", "defaults", "type", "model", "max_tokens", "stream",
        "retries", "retry_backoff", "timeout", "read_timeout", "stop_sequences", "save_as", "stream_handler",
        "provider", "continue_on_error", "description", "base_url", "mock_delay", "retry_after_cap"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["llm", "a", "b", "{{ topic", "{{ steps.b.text }}", "{% if %}", "{{ nope }}", "mock", "-1"]),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=20,
)
TOKENS = ["steps:", "id:", "prompt:", "- ", ": ", "\n", "\n  ", "\n    ", "\t", "{", "}", "[", "]", ",", "'", '"',
          "&a ", "*a", "!!python/object ", "!!str ", "? ", "#", "|", ">", "{{", "}}", "{%", "%}", "a", "1", "-1",
          "~", "null", "true", ".nan", "---", "<<: ", "steps.a.text", "\x00", "\u00e9", " "]
YAML_TEXT = st.one_of(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join), st.text(max_size=60))
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_spec_or_spec_error(source, *, located: bool) -> None:
    """The whole contract of load_spec: a PipelineSpec, or PipelineSpecError (with line:col for text)."""
    try:
        assert isinstance(load_spec(source), PipelineSpec)
    except PipelineSpecError as exc:
        assert exc.location is not None or not located, str(exc)


@FUZZ
@given(YAML_TEXT)
def test_random_yaml_text_gives_a_spec_or_a_located_spec_error(text):
    is_a_path = "\n" not in text and text.endswith((".yaml", ".yml"))  # load_spec reads it as a file name
    only_spec_or_spec_error(text, located=not is_a_path)


@FUZZ
@given(DATA)
def test_random_data_gives_a_spec_or_a_spec_error(data):
    only_spec_or_spec_error(data, located=False)
    if isinstance(data, dict):
        only_spec_or_spec_error(yaml.safe_dump(data) + "\n", located=True)


@st.composite
def mutated(draw) -> dict:
    """VALID with one value replaced by random data, or one key removed or added."""
    spec = copy.deepcopy(VALID)
    target = draw(st.sampled_from([spec, spec["defaults"], spec["vars"], *spec["steps"]]))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "add" or not target:
        target[draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)))] = draw(DATA)
    elif action == "delete":
        del target[draw(st.sampled_from(sorted(target)))]
    else:
        target[draw(st.sampled_from(sorted(target)))] = draw(DATA)
    return spec


@FUZZ
@given(mutated())
def test_a_mutated_valid_spec_gives_a_spec_or_a_located_spec_error(spec):
    only_spec_or_spec_error(spec, located=False)
    only_spec_or_spec_error(yaml.safe_dump(spec, sort_keys=False), located=True)


def test_the_valid_spec_used_by_the_fuzzer_is_valid():
    assert [s.id for s in load_spec(VALID).steps] == ["a", "b"]


# -- the sandbox and YAML tags --

ESCAPES = [
    "''.__class__.__mro__",
    "''.__class__.__mro__[1].__subclasses__()",
    "topic.__init__.__globals__",
    "lipsum.__globals__",
    "cycler.__init__.__globals__",
    "(topic | attr('__class__'))",
]


@pytest.mark.parametrize("expr", ESCAPES)
def test_the_template_sandbox_refuses_attribute_escapes(fake_anthropic, expr):
    spec = f'vars: {{topic: tides}}\nsteps:\n  - id: a\n    prompt: "{{{{ {expr} }}}}"\n    provider: claude\n'
    with pytest.raises(pipeline_nb.StepError) as raised:
        pipeline_nb.run(spec)
    step = raised.value.run.steps["a"]
    assert step.status == "error" and step.error.type == "template_error"
    assert "refused by the template sandbox" in step.error.message and "is unsafe" in step.error.message
    assert "<pipeline>:4:13" in step.error.message
    assert fake_anthropic.requests == []


def test_yaml_python_tags_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    for text in (f"steps:\n  - id: a\n    prompt: !!python/object/apply:os.system ['touch {marker}']\n",
                 f"!!python/object/apply:os.system ['touch {marker}']\n",
                 "steps:\n  - !!python/object/new:pipeline_nb._spec.StepSpec {}\n"):
        with pytest.raises(PipelineSpecError, match="python/object") as raised:
            load_spec(text)
        assert raised.value.location is not None
    assert not marker.exists()
