"""pipeline_ex's data_transform, translated to a python step calling the port of its transformer:
every operation over earlier steps' outputs (corpus/flow_transform.yaml), the transformer's edge
cases as pipeline_ex's transformer.ex decides them, and what is refused before running, with line:col."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._compat_transform import TransformError, data_transform, transform

CORPUS = Path(__file__).parent / "corpus"
HEAD = "workflow:\n  name: w\n  steps:\n    - {name: rows, type: test_echo, value: [{a: 1}]}\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_operation_runs_over_earlier_outputs_and_later_steps_read_the_results(workdir: Path) -> None:
    run = pipeline_nb.run(CORPUS / "flow_transform.yaml", provider="mock", journal="off")
    assert run.status == "ok", {k: s.error for k, s in run.steps.items() if s.error}
    assert any("data_transform lazy is ignored" in w for w in run.warnings), run.warnings
    out = {name: step.output for name, step in run.steps.items()}
    # pages > 200 keeps b4's "250" too (text orders after numbers), but it has no 'sea' tag
    assert [(b["isbn"], b["pages"]) for b in out["long_sea_reads"]["long_sea"]] == [("b3", 410), ("b1", 320)]
    shelved = out["shelved"]["shelved"]
    assert [(b["title"], b["shelf"], b["library"]) for b in shelved] == [
        ("TIDE TABLES", "B", "harbour"), ("SALT ROADS", "A", "harbour"), ("NIGHT HARBOUR", "C", "harbour"),
        ("BRINE", "B", "harbour"), ("KELP", "9", "harbour")]
    assert out["books"][0]["title"] == "Tide Tables"  # the earlier step's output is not changed
    on_loan = out["on_loan"]["on_loan"]
    assert [(b["isbn"], b["reader"], b["due"], b["pages"]) for b in on_loan] == [
        ("b3", "Ben", "2026-12-01", 410), ("b1", "Ana", "2026-12-04", 0)]  # the loan's fields win
    assert {genre: [b["isbn"] for b in books] for genre, books in out["by_genre"]["by_genre"].items()} == {
        "fiction": ["b3"], "history": ["b2"], "science": ["b1", "b4", "b5"]}
    assert out["science_pages"] == {"science_pages": 415}  # 320 + 95: the text "250" is no number
    assert out["genres"] == {"genres": '["science","history","fiction"]'}
    assert out["loaned_count"] == {"loaned_count": 2}
    assert out["summary"] == {"first_long": "Night Harbour", "first_due": "Ben", "science_pages": 415,
                              "line": '2 on loan; genres ["science","history","fiction"]'}


def test_what_cannot_run_is_refused_before_any_call_with_line_and_column() -> None:
    text = HEAD + (
        "    - name: bad\n"                                                        # 5
        "      type: data_transform\n"
        "      input_source: rows\n"
        "      operations:\n"
        "        - {operation: pivot, field: a}\n"                                 # 9
        "        - {operation: sort}\n"
        "        - {operation: filter, condition: \"a == 1 and b == 2\"}\n"
        "        - {operation: filter, condition: \"status = 'x'\"}\n"
        "        - {operation: map, field: a, mapping: {1: one}}\n"                # 13
        "        - {operation: map, field: a, expression: \"value * 2\"}\n"
        "        - {operation: map, field: a}\n"
        "        - {operation: aggregate, field: a, function: median}\n"
        "        - {operation: join, right_source: \"previous_response:nowhere\"}\n"  # 17
        "        - {operation: sort, field: a, order: DESC}\n"
        "      output_format: yaml\n")
    with pytest.raises(PipelineSpecError) as info:
        pipeline_nb.run(text, provider="mock", journal="off")
    found = [(p.location.line, p.location.col, p.message) for p in info.value.problems]
    assert found == [
        (9, 23, "data_transform operation 'pivot' is not supported"),
        (10, 11, "sort needs field:"),
        (11, 42, "filter condition 'a == 1 and b == 2' is not supported: '1 and b == 2' after '==' is not one value "
                 "(a condition compares one field with one value)"),
        (12, 42, "filter condition \"status = 'x'\" is not supported: it is not 'field <op> value' nor a field name"),
        (13, 48, "map mapping key 1 is not text, so it never matches: pipeline_ex looks up each value as text"),
        (14, 50, "map expression 'value * 2' is not supported"),
        (15, 11, "map needs mapping:"),
        (16, 54, "aggregate function 'median' is not supported"),
        (17, 11, "join needs join_key:"),
        (17, 43, "refers to step 'nowhere', which is not a step"),
        (18, 46, "sort order 'DESC' is not supported"),
        (19, 22, "output_format 'yaml' is not supported")]


def test_data_it_cannot_transform_fails_the_step_naming_the_operation(workdir: Path) -> None:
    text = ("workflow:\n  name: w\n  steps:\n    - {name: note, type: test_echo, value: just text}\n"
            "    - {name: rows, type: test_echo, value: [{a: 1}]}\n"
            "    - name: joined\n      type: data_transform\n      input_source: rows\n      operations:\n"
            "        - {operation: sort, field: a}\n"
            "        - {operation: join, left_field: a, right_source: note, join_key: a}\n")
    with pytest.raises(pipeline_nb.StepError, match=r"python_error: TransformError: operations\[1\] \(join\): "
                                                    "right_source is text, not a list of mappings"):
        pipeline_nb.run(text, provider="mock", journal="off")


# -- the transformer itself, case by case as transformer.ex decides --

def one(op: dict[str, Any], data: Any) -> Any:
    return transform(data, [op])


def test_filter_compares_as_elixir_terms() -> None:
    rows = [{"n": 5}, {"n": "5"}, {"n": 5.0}, {"n": None}, {"x": 1}, {"n": "250"}]
    assert one({"operation": "filter", "field": "n", "condition": "n == 5"}, rows) == [{"n": 5}, {"n": 5.0}]
    # text orders after every number, and null after numbers too: both pass "> 100"
    assert one({"operation": "filter", "field": "n", "condition": "n > 100"}, rows) == [
        {"n": "5"}, {"n": None}, {"x": 1}, {"n": "250"}]
    assert one({"operation": "filter", "field": "n", "condition": "n == null"}, rows) == [{"n": None}, {"x": 1}]
    assert one({"operation": "filter", "condition": "value >= 3"}, [1, 3, 7]) == [3, 7]
    assert one({"operation": "filter", "condition": "title contains 'ar'"}, [{"title": "Harbour"}, {"title": "Kelp"}]) \
        == [{"title": "Harbour"}]


def test_filter_reads_false_as_missing_and_any_other_value_as_true() -> None:
    rows = [{"on": True}, {"on": False}, {"on": 0}, {}]
    assert one({"operation": "filter", "field": "on", "condition": "on"}, rows) == [{"on": True}, {"on": 0}]
    # pipeline_ex reads fields with ||, so false is null and "== false" never holds
    assert one({"operation": "filter", "field": "on", "condition": "on == false"}, rows) == []
    # a bare name the item lacks falls back to the operation's field: without field:, the item itself
    assert one({"operation": "filter", "condition": "missing"}, [{"a": 1}]) == [{"a": 1}]


def test_a_condition_splits_at_the_first_operator_pipeline_ex_looks_for() -> None:
    rows = [{"t": "a"}, {"t": "b"}]
    # "==" is looked for before "!=": this reads as field "t != 'x" (missing: t's value) == text "y'"
    assert one({"operation": "filter", "field": "t", "condition": "t != 'x==y'"}, rows) == []


def test_operations_on_one_value_instead_of_a_list() -> None:
    record = {"tier": "gold", "scores": [3, 5]}
    assert one({"operation": "filter", "field": "tier", "condition": "tier == 'gold'"}, record) == record
    assert one({"operation": "filter", "field": "tier", "condition": "tier == 'lead'"}, record) is None
    assert one({"operation": "sort", "field": "tier"}, record) == record
    assert one({"operation": "group_by", "field": "tier"}, record) == {"default": record}
    # a list in a field is one value here, and not a number: the average is 0, as in pipeline_ex
    assert one({"operation": "aggregate", "field": "scores", "function": "average"}, record) == 0
    assert one({"operation": "aggregate", "field": "scores", "function": "count"}, record) == 1


def test_map_by_mapping_expression_or_merge() -> None:
    rows = [{"p": 1}, {"p": "2"}, {"p": True}, {"q": 0}]
    mapping = {"operation": "map", "field": "p", "mapping": {"1": "high", "2": "mid", "": "none"}}
    assert one(mapping, rows) == [{"p": "high"}, {"p": "mid"}, {"p": True}, {"q": 0, "p": "none"}]
    assert one({"operation": "map", "field": "u.v", "mapping": {"x": "y"}}, [{"u": {"v": "x"}}, {}]) == [
        {"u": {"v": "y"}}, {"u": {"v": None}}]  # a missing field is made, null
    assert one({"operation": "map", "field": "t", "expression": "lowercase"}, [{"t": "MiX"}, {"t": 3}]) == [
        {"t": "mix"}, {"t": 3}]
    assert one({"operation": "map", "mapping": {"src": "fleet"}}, [{"a": 1, "src": "x"}]) == [{"a": 1, "src": "fleet"}]
    with pytest.raises(TransformError, match=r"operations\[0\] \(map\): item 1 is a number, so mapping: cannot be "
                                             "merged into it"):
        one({"operation": "map", "mapping": {"src": "fleet"}}, [{"a": 1}, 7])


def test_join_is_a_left_join_whose_right_record_wins() -> None:
    orders = [{"id": 1, "user": "u1", "note": "mine"}, {"id": 2, "user": "u9"}]
    users = [{"uid": "u1", "name": "Ana", "note": "theirs"}, {"uid": "u2", "name": "Ben"}]
    op = {"operation": "join", "left_field": "user", "right_source": users, "join_key": "uid"}
    assert one(op, orders) == [{"id": 1, "user": "u1", "note": "theirs", "uid": "u1", "name": "Ana"},
                               {"id": 2, "user": "u9"}]
    assert one({**op, "right_source": users[0]}, orders[0])["name"] == "Ana"  # one record joins like a list of one
    assert one({**op, "right_source": None}, orders) == orders
    # an item without the left field matches the first record without the key (null == null)
    assert one({**op, "right_source": [{"name": "nobody"}]}, [{"id": 3}]) == [{"id": 3, "name": "nobody"}]
    with pytest.raises(TransformError, match=r"operations\[0\] \(join\): right_source is a list holding a number, "
                                             "not a list of mappings"):
        one({**op, "right_source": [1, 2]}, orders)


def test_group_by_keys_are_elixir_text_in_order() -> None:
    rows = [{"k": 2}, {"k": "b"}, {"k": None}, {"k": False}, {"k": 1000.0}, {"k": 2.5}, {"k": 2}, {"k": True}]
    grouped = one({"operation": "group_by", "field": "k"}, rows)
    assert list(grouped) == ["", "1.0e3", "2", "2.5", "b", "true"]
    assert grouped["2"] == [{"k": 2}, {"k": 2}] and grouped[""] == [{"k": None}, {"k": False}]  # false reads as null
    with pytest.raises(TransformError, match=r"operations\[0\] \(group_by\): a value of k is a mapping"):
        one({"operation": "group_by", "field": "k"}, [{"k": {"a": 1}}])


def test_sort_orders_numbers_then_null_then_text_and_is_stable() -> None:
    rows = [{"i": 0, "v": "b"}, {"i": 1, "v": 3}, {"i": 2}, {"i": 3, "v": 3.0}, {"i": 4, "v": "a"}]
    asc = one({"operation": "sort", "field": "v"}, rows)
    assert [r["i"] for r in asc] == [1, 3, 2, 4, 0]
    desc = one({"operation": "sort", "field": "v", "order": "desc"}, rows)
    assert [r["i"] for r in desc] == [0, 4, 2, 1, 3]  # 3 and 3.0 are equal: they keep their order


def test_aggregate_functions_skip_what_is_not_a_number() -> None:
    rows = [{"v": 4}, {"v": "7"}, {"v": 2.5}, {"v": None}, {}, {"v": False}, {"v": 4.0}]

    def agg(function: str, data: Any = rows) -> Any:
        return one({"operation": "aggregate", "field": "v", "function": function}, data)
    assert [agg(f) for f in ("sum", "average", "count", "max", "min", "first", "last")] == [
        10.5, 3.5, 4, 4, 2.5, 4, 4.0]  # null, missing and false are left out; "7" counts, but is no number
    assert agg("unique") == [4, "7", 2.5, 4.0]  # 4 and 4.0 are different values here
    assert [agg(f, []) for f in ("sum", "average", "max", "first")] == [0, 0, 0, None]
    assert one({"operation": "aggregate"}, [1, 2, "x"]) == 3  # sum of the items themselves


def test_output_formats_and_a_missing_input() -> None:
    data = [{"b": 1, "a": "é"}]
    assert data_transform(data, [], "out", "json") == {"out": '[{"a":"é","b":1}]'}
    assert data_transform(data, [], "out", "count") == {"out": 1}
    assert data_transform(["ab", "c"], [], "out", "string") == {"out": "abc"}
    assert data_transform(327.5, [], "out", "string") == {"out": "327.5"}
    with pytest.raises(TransformError, match="output_format string: the result is a list"):
        data_transform(data, [], "out", "string")
    with pytest.raises(TransformError, match="input_source gave nothing"):
        data_transform(None, [{"operation": "sort", "field": "a"}], "out")
    assert json.loads(data_transform({"x": [1]}, [], "out", "json")["out"]) == {"x": [1]}
