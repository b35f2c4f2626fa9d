"""Results as tables: ``to_records()`` and ``to_pandas()`` on real runs of the mock provider."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import pipeline_nb
from pipeline_nb._tables import records_frame

ROOT = Path(__file__).resolve().parents[1]
STR = str(pd.Series(["text"]).dtype)  # pandas' own string dtype: "str" in pandas 3, "object" in pandas 2

PRICED = """
name: papers
defaults:
  provider: mock
  mock_delay: 0
  pricing: {claude-sonnet-5-5: {input: 3, output: 15}}
vars:
  papers: [{title: Marshes, year: 2020}, {title: Dunes, year: 2021}]
steps:
  - id: intro
    prompt: Say hello.
  - id: extract
    for_each: papers
    prompt: "Read {{ item.title }}"
    output_schema:
      type: object
      properties: {score: {type: integer}, meta: {type: object}, tags: {type: array}}
    mock_response: '{"score": 3, "meta": {"lang": "en", "deep": {"x": 1}}, "tags": ["a", "b"]}'
"""

TAIL = ["input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cost", "duration", "model",
        "error_type", "error_message", "tool_calls"]
TAIL_DTYPES = {"input_tokens": "int64", "output_tokens": "int64", "cache_write_tokens": "int64",
               "cache_read_tokens": "int64", "cost": "float64", "duration": "float64", "model": STR,
               "error_type": STR, "error_message": STR, "tool_calls": "int64"}


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def test_a_runs_table_has_a_row_per_step_and_per_item_that_sum_to_the_run():
    run = pipeline_nb.run(PRICED)
    records = run.to_records()

    assert [(r["step"], r["item_index"]) for r in records] == [("intro", None), ("extract", 0), ("extract", 1)]
    assert list(records[0]) == ["run", "step", "item_index", "item", "status", "text", "output", *TAIL]
    assert records[1]["item"] == {"title": "Marshes", "year": 2020}  # a run's table keeps mappings whole
    assert records[1]["output"] == {"score": 3, "meta": {"lang": "en", "deep": {"x": 1}}, "tags": ["a", "b"]}
    assert records[0]["item"] is None and records[0]["run"] == "papers"
    assert json.loads(json.dumps(records)) == records  # plain values, JSON as they are
    assert sum(r["input_tokens"] for r in records) == run.usage.input_tokens
    assert sum(r["output_tokens"] for r in records) == run.usage.output_tokens
    assert sum(r["cost"] for r in records) == pytest.approx(run.cost) and run.cost > 0

    frame = run.to_pandas()
    assert list(frame.columns) == list(records[0])
    assert dtypes(frame) == {"run": STR, "step": STR, "item_index": "Int64", "item": "object", "status": STR,
                             "text": STR, "output": "object", **TAIL_DTYPES}
    assert frame["item_index"].isna().tolist() == [True, False, False]
    assert frame["input_tokens"].sum() == run.usage.input_tokens


def test_a_for_each_steps_table_spreads_dict_items_and_structured_outputs_into_columns():
    step = pipeline_nb.run(PRICED).steps["extract"]
    records = step.to_records()

    assert list(records[0]) == ["step", "item_index", "item.title", "item.year", "status", "text", "output.score",
                                "output.meta.lang", "output.meta.deep.x", "output.tags", *TAIL]
    assert [(r["item.title"], r["item.year"], r["output.meta.deep.x"]) for r in records] == [
        ("Marshes", 2020, 1), ("Dunes", 2021, 1)]
    assert records[0]["output.tags"] == ["a", "b"]  # lists stay lists
    assert records[0]["text"] == step.items[0].text and records[0]["cost"] == step.items[0].cost

    frame = step.to_pandas()
    assert dtypes(frame) == {"step": STR, "item_index": "int64", "item.title": STR, "item.year": "int64",
                             "status": STR, "text": STR, "output.score": "int64", "output.meta.lang": STR,
                             "output.meta.deep.x": "int64", "output.tags": "object", **TAIL_DTYPES}
    assert frame["output.tags"].tolist() == [["a", "b"], ["a", "b"]]


def test_failed_items_keep_their_rows_with_the_error_and_empty_output_columns():
    def score(x: int) -> dict[str, float]:
        return {"n": x, "inverse": 1 / (x - 2)}

    spec = "steps:\n  - {id: score, for_each: '[1, 2, 3]', call: score, args: {x: '{{ item }}'}}\n"
    run = pipeline_nb.run(spec, namespace={"score": score}, raise_on_error=False)
    records = run.steps["score"].to_records()

    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert (records[1]["error_type"], records[1]["error_message"]) == (
        "python_error", "ZeroDivisionError: division by zero")
    assert (records[1]["output.n"], records[1]["output.inverse"]) == (None, None)
    frame = run.steps["score"].to_pandas()
    assert dtypes(frame)["output.n"] == "Int64"  # integers stay integers beside a missing one
    assert dtypes(frame)["output.inverse"] == "float64"
    assert frame["output.n"].tolist() == [1, pd.NA, 3]
    assert frame["error_type"].isna().tolist() == [True, False, True]
    assert [(r["step"], r["status"]) for r in run.to_records()] == [("score", "ok"), ("score", "error"),
                                                                    ("score", "ok")]


def test_parallel_children_and_nested_pipeline_steps_are_rows_of_their_own():
    spec = """
defaults: {provider: mock, mock_delay: 0}
steps:
  - id: angles
    type: parallel
    steps:
      - {id: methods, prompt: Name the methods.}
      - {id: gaps, prompt: Name the gaps.}
  - id: nest
    pipeline:
      steps:
        - {id: first, prompt: One}
        - {id: second, prompt: Two}
  - id: fan
    for_each: "['x', 'y']"
    inputs: {topic: "{{ item }}"}
    pipeline:
      steps:
        - {id: inner, prompt: "About {{ topic }}"}
"""
    run = pipeline_nb.run(spec)
    records = run.to_records()

    assert [(r["step"], r["item_index"], r["item"]) for r in records] == [
        ("methods", None, None), ("gaps", None, None), ("nest/first", None, None), ("nest/second", None, None),
        ("fan[0]/inner", 0, "x"), ("fan[1]/inner", 1, "y")]
    assert records[3]["text"] == run.steps["nest"].child.steps["second"].text
    assert sum(r["output_tokens"] for r in records) == run.usage.output_tokens
    # a step's own table is one row, its mapping output spread by child
    assert [list(r)[4:6] for r in run.steps["angles"].to_records()] == [["output.methods", "output.gaps"]]


def test_a_step_that_never_made_items_is_one_row_and_an_empty_list_has_no_item_rows():
    spec = """
defaults: {provider: mock, mock_delay: 0}
steps:
  - {id: later, when: "false", for_each: "[1, 2]", prompt: hi}
  - {id: none, for_each: "[]", prompt: hi}
"""
    run = pipeline_nb.run(spec)
    assert [(r["step"], r["item_index"], r["status"]) for r in run.to_records()] == [
        ("later", None, "skipped"), ("none", None, "ok")]
    assert [r["status"] for r in run.steps["later"].to_records()] == ["skipped"]
    empty = run.steps["none"].to_pandas()
    assert (len(empty), list(empty.columns)) == (0, ["step", "item_index", "status", "text", "output", *TAIL])


def test_the_loop_value_columns_are_named_after_as():
    spec = """
defaults: {provider: mock, mock_delay: 0}
vars: {papers: [{title: Marshes}, {title: Dunes}]}
steps:
  - {id: read, for_each: papers, as: paper, prompt: "Read {{ paper.title }}"}
  - {id: echo, for_each: "['a']", as: text, prompt: "Echo {{ text }}"}
"""
    run = pipeline_nb.run(spec)
    assert list(run.to_records()[0])[:5] == ["run", "step", "item_index", "paper", "loop.text"]
    assert list(run.steps["read"].to_records()[0])[:3] == ["step", "item_index", "paper.title"]
    assert run.steps["echo"].to_records()[0]["loop.text"] == "a"  # an as: name that is a column's gets loop.


def test_a_run_loaded_from_the_journal_gives_the_same_table(tmp_path):
    spec = PRICED + "  - {id: nest, pipeline: {steps: [{id: first, prompt: One}]}}\n"
    run = pipeline_nb.run(spec, journal=tmp_path / "journal.sqlite")
    loaded = pipeline_nb.load_run(run.id, journal=tmp_path / "journal.sqlite")

    assert loaded.to_records() == run.to_records()
    assert [r["step"] for r in loaded.to_records()] == ["intro", "extract", "extract", "nest/first"]
    assert loaded.steps["extract"].to_records() == run.steps["extract"].to_records()


def test_records_need_no_pandas_and_a_frame_says_how_to_install_it(monkeypatch):
    run = pipeline_nb.run(PRICED)
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` meets where it is not installed

    assert len(run.to_records()) == 3 and len(run.steps["extract"].to_records()) == 2
    for make_frame in (run.to_pandas, run.steps["extract"].to_pandas, lambda: records_frame([{"a": 1}])):
        with pytest.raises(ImportError, match=r"pip install 'pipeline_nb\[pandas\]'") as caught:
            make_frame()
        assert "to_records()" in str(caught.value)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["pandas"] == ["pandas>=2"]  # the extra the message names exists


def test_importing_pipeline_nb_and_making_records_leave_pandas_unimported():
    script = ("import sys, pipeline_nb\n"
              "run = pipeline_nb.run('defaults: {provider: mock, mock_delay: 0}\\nsteps:\\n  - {id: a, prompt: hi}\\n')\n"
              "assert len(run.to_records()) == 1\n"
              "print('pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


@dataclass
class Summary:
    id: str
    steps: int
    cost: float | None
    ok: bool


def test_records_frame_turns_dataclasses_and_dicts_into_a_typed_frame():
    frame = records_frame([Summary("r1", 3, 0.5, True), Summary("r2", 2, None, False)])
    assert dtypes(frame) == {"id": STR, "steps": "int64", "cost": "float64", "ok": "bool"}
    assert frame["cost"].isna().tolist() == [False, True]

    mixed = records_frame([{"n": 1}, {"n": None, "late": "x"}], columns=["first"])
    assert dtypes(mixed) == {"first": "object", "n": "Int64", "late": STR}
    assert list(records_frame([], columns=["id", "steps"]).columns) == ["id", "steps"]
    with pytest.raises(TypeError, match="record 1 is a str; give dicts or dataclass instances"):
        records_frame([{"n": 1}, "oops"])
