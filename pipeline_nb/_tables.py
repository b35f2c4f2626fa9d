"""Results as tables: the rows behind ``to_records()`` and ``to_pandas()``.

A row is one piece of work that was done: a step, or one item of a for_each step. Containers
are replaced by what they hold, so the token and cost columns sum to the run's own totals:

- a for_each step is its items' rows (a for_each step that has no item results, because it was
  skipped, failed before its list was made, or looped over an empty list, is one row itself);
- a parallel step is no row: its children are steps of the run, each a row of its own;
- a pipeline step is its child pipeline's rows, their ids ``<step>/<child step>`` as in the
  stream events (one that never started its child is one row itself).

Columns, in this order (``docs/python-api.md#results-as-tables`` has the table):

    run, step, item_index, <loop values>, status, text, output, input_tokens, output_tokens,
    cache_write_tokens, cache_read_tokens, cost, duration, model, error_type, error_message,
    tool_calls

A step's table has no ``run`` column, and flattens mappings into dotted columns
(``paper.title``, ``output.score``, ``output.meta.lang``); a run's keeps them whole, since its
rows come from steps of different shapes.

pandas is imported only when a DataFrame is asked for, never at ``import pipeline_nb``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from ._results import PipelineRun, StepResult, latency, leaves, tool_calls_of
from ._step_ids import nested_id

__all__ = ["records_frame", "run_frame", "run_records", "step_frame", "step_records"]

HEAD = ("run", "step", "item_index")
BODY = ("status", "text")
TAIL = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cost", "duration", "model",
        "error_type", "error_message", "tool_calls")
FIXED = frozenset((*HEAD, *BODY, "output", *TAIL))

KINDS = {"run": "str", "step": "str", "item_index": "int", "status": "str", "text": "str", "output": "object",
         "input_tokens": "int", "output_tokens": "int", "cache_write_tokens": "int", "cache_read_tokens": "int",
         "cost": "float", "duration": "float", "model": "str", "error_type": "str", "error_message": "str",
         "tool_calls": "int"}
"""The fixed columns' dtypes, whatever the rows hold (a column of None is still a float or a string)."""

DEFAULT_LOOP_NAME = "item"
SAMPLE = "sample"
"""The column of a sample's number (1-based), in the rows of a ``repeat`` step."""
LOOP_PREFIX = "loop."
"""Put before an ``as:`` name that is also a fixed column's (``as: text`` → ``loop.text``)."""


class Row(NamedTuple):
    """A result placed in a table: the step it belongs to, its item position and loop values."""

    step: str
    result: StepResult
    item_index: int | None
    loop: dict[str, Any]


# -- rows --

def run_records(run: PipelineRun) -> list[dict[str, Any]]:
    """The run's rows as plain dicts, every one with every column (None where a row has no value)."""
    rows = list(_run_rows(run, None, None, {}))
    loop_columns = _ordered(_loop_column(name) for row in rows for name in row.loop)
    records = []
    for row in rows:
        loop = {_loop_column(name): value for name, value in row.loop.items()}
        records.append({"run": run.name, "step": row.step, "item_index": row.item_index,
                        **{column: loop.get(column) for column in loop_columns},
                        **_body(row.result), "output": row.result.output, **_tail(row.result)})
    return _without_unchecked(records)


def step_records(step: StepResult) -> list[dict[str, Any]]:
    """One dict per item of a for_each step, per sample of a repeat (one for any other step), mappings
    flattened; a matrix step's is its comparison, one dict per combination (see comparison_records)."""
    if step.variants is not None:
        return comparison_records(step)
    if step.items is not None:  # an empty list is no row
        rows = [row for item in step.items for row in _result_rows(item, step.id, None, item.index, _own_loop(item))]
    elif step.samples is not None:
        rows = list(_result_rows(step, step.id, None, None, {}))
    else:
        label = getattr(step.id, "parent", step.id) if step.index is not None else step.id
        rows = [Row(label, step, step.index, _own_loop(step))]
    loops = _spread({_loop_column(name): value for name, value in row.loop.items()} for row in rows)
    outputs = _spread({"output": row.result.output} for row in rows)
    return _without_unchecked([{"step": str(row.step), "item_index": row.item_index, **loop, **_body(row.result),
                                **output, **_tail(row.result)} for row, loop, output in zip(rows, loops, outputs)])


def comparison_records(step: StepResult) -> list[dict[str, Any]]:
    """A matrix step's comparison: per combination its values, status, pass rate (overall and per
    check, 0 to 1; None with no checks), calls, tokens, cost and latency (mean seconds a call)."""
    records = []
    for variant in step.variants or ():
        checks = variant.checks
        record = dict(variant.matrix or {})
        record.update({"status": variant.status, "pass_rate": checks.pass_rate})
        record.update({f"pass_rate: {name}": rate.rate for name, rate in checks.by_name().items()})
        record.update({"calls": len(leaves(variant)), "input_tokens": variant.usage.input_tokens,
                       "output_tokens": variant.usage.output_tokens, "cost": variant.cost,
                       "latency": latency(variant),
                       "error_type": variant.error.type if variant.error else None})
        records.append(record)
    return records


def _run_rows(run: PipelineRun, prefix: str | None, item_index: int | None,
              loop: dict[str, Any]) -> Iterator[Row]:
    """The rows of ``run`` (a nested run's under ``prefix``), in the order of its steps."""
    for result in run.steps.values():
        if result.type == "parallel" and result.items is None:
            continue  # its children are steps of this run: they are the rows
        yield from _result_rows(result, _qualified(prefix, result.id), prefix, item_index, loop)


def _result_rows(result: StepResult, step: str, prefix: str | None, item_index: int | None,
                 loop: dict[str, Any]) -> Iterator[Row]:
    if result.variants:  # a matrix: each combination's rows, its values as columns
        for variant in result.variants:
            yield from _result_rows(variant, step, prefix, item_index, {**loop, **(variant.matrix or {})})
    elif result.items:
        for item in result.items:
            item_loop = {**loop, **_own_loop(item)}
            if item.child is not None:  # an item of a for_each pipeline step: its child's rows
                yield from _run_rows(item.child, _qualified(prefix, item.id), item.index, item_loop)
            else:
                yield from _result_rows(item, step, prefix, item.index, item_loop)
    elif result.samples:
        for sample in result.samples:
            yield Row(step, sample, item_index, {**loop, SAMPLE: sample.sample})
    elif result.child is not None:
        yield from _run_rows(result.child, step, item_index, loop)
    else:
        yield Row(step, result, item_index, loop)


def _qualified(prefix: str | None, step_id: str) -> str:
    """A step's id as the run's stream events name it: ``nest/inner`` inside pipeline step ``nest``."""
    return str(step_id) if prefix is None else str(nested_id(prefix, step_id))


def _own_loop(result: StepResult) -> dict[str, Any]:
    """An item's loop value under its ``as:`` name; nothing for a result that is not an item."""
    if result.index is None:
        return {}
    # results from before StepResult kept its ``as:`` name know only the value: it gets the default name
    return {result.loop_var or DEFAULT_LOOP_NAME: result.item}


def _loop_column(name: str) -> str:
    return LOOP_PREFIX + name if name in FIXED else name


def _body(result: StepResult) -> dict[str, Any]:
    return {"status": result.status, "text": result.text}


def _tail(result: StepResult) -> dict[str, Any]:
    usage, error = result.usage, result.error
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_write_tokens": usage.cache_write_tokens, "cache_read_tokens": usage.cache_read_tokens,
            "cost": result.cost, "duration": result.duration, "model": result.model,
            "error_type": error.type if error else None, "error_message": error.message if error else None,
            "tool_calls": len(tool_calls_of(result)), **_checked(result)}


CHECK_COLUMNS = ("checks_passed", "checks_total")
"""Columns of a table whose rows had expectations (absent from the others' tables)."""


def _checked(result: StepResult) -> dict[str, Any]:
    """``checks_passed`` and ``checks_total`` of a result (None for one without expectations)."""
    checks = result.checks
    return dict(zip(CHECK_COLUMNS, (len(checks.passed), len(checks)) if checks else (None, None)))


def _without_unchecked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without the check columns when no row had an expectation."""
    if any(record.get("checks_total") is not None for record in records):
        return records
    return [{k: v for k, v in record.items() if k not in CHECK_COLUMNS} for record in records]


def _spread(values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each column whose values are all mappings (None aside) becomes dotted columns, one per key
    (nested mappings dotted further, lists kept as lists); the other columns stay as they are."""
    given = list(values)
    names = _ordered(name for value in given for name in value)
    flat: list[dict[str, Any]] = [{} for _ in given]
    for name in names:
        column = [value.get(name) for value in given]
        present = [v for v in column if v is not None]
        if present and all(isinstance(v, Mapping) for v in present) and any(present):
            spread = [_flatten(name, v) if v is not None else {} for v in column]
            keys = _ordered(key for cells in spread for key in cells)
            for record, cells in zip(flat, spread):
                record.update({key: cells.get(key) for key in keys})
        else:
            for record, cell in zip(flat, column):
                record[name] = cell
    return flat


def _flatten(prefix: str, value: Mapping[Any, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        name = f"{prefix}.{key}"
        if isinstance(inner, Mapping) and inner:
            flat.update(_flatten(name, inner))
        else:
            flat[name] = inner
    return flat


def _ordered(names: Iterable[str]) -> list[str]:
    """Each name once, in the order first seen."""
    return list(dict.fromkeys(names))


# -- DataFrames --

def run_frame(run: PipelineRun) -> Any:
    """``run_records(run)`` as a DataFrame with the fixed columns' dtypes."""
    records = run_records(run)
    return _frame(records, list(records[0]) if records else (*HEAD, *BODY, "output", *TAIL), KINDS)


def step_frame(step: StepResult) -> Any:
    """``step_records(step)`` as a DataFrame; an empty for_each still has the fixed columns.

    Its ``output`` column (outputs that are not mappings) is typed by what it holds: one step's
    outputs share a type, where a run's steps do not."""
    records = step_records(step)
    fixed = [c for c in (*HEAD, *BODY, "output", *TAIL) if c != "run"]
    return _frame(records, list(records[0]) if records else fixed, {**KINDS, "output": ""})


def records_frame(records: Iterable[Any], columns: Sequence[str] | None = None) -> Any:
    """A pandas DataFrame of ``records``: dicts, or dataclass instances (one column per field).

    Columns come in ``columns``' order (present even with no records), then the others in the
    order first seen; a record without a column has None there. Integer columns stay integers
    (pandas' nullable ``Int64`` when some are None), floats are float64 (None → NaN), text is
    pandas' string dtype. Without pandas it raises ImportError saying how to install it."""
    rows = [_as_dict(record, number) for number, record in enumerate(records)]
    names = _ordered([*(columns or ()), *(name for row in rows for name in row)])
    return _frame([{name: row.get(name) for name in names} for row in rows], names, {})


def _as_dict(record: Any, number: int) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return {str(key): value for key, value in record.items()}
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    msg = f"records_frame: record {number} is a {type(record).__name__}; give dicts or dataclass instances"
    raise TypeError(msg)


def _frame(records: list[dict[str, Any]], columns: Sequence[str], kinds: Mapping[str, str]) -> Any:
    pandas = _pandas()
    data = {name: _series(pandas, [record[name] for record in records], kinds.get(name)) for name in columns}
    return pandas.DataFrame(data, columns=list(columns), index=pandas.RangeIndex(len(records)))


def _series(pandas: Any, values: list[Any], kind: str | None) -> Any:
    """One column, typed by ``kind`` or, without one, by what its values are."""
    present = [v for v in values if v is not None]
    kind = kind or _kind_of(present)  # "" (or no kind) lets the values decide
    complete = len(present) == len(values)
    if kind == "int":
        return pandas.Series(values, dtype="int64" if complete else "Int64")
    if kind == "bool":
        return pandas.Series(values, dtype="bool" if complete else "boolean")
    if kind == "float":
        return pandas.Series([float("nan") if v is None else v for v in values], dtype="float64")
    if kind == "str":
        return pandas.Series(values, dtype=pandas.Series(["text"]).dtype)  # str in pandas 3, object in 2
    if kind == "object":
        return pandas.Series(values, dtype=object)
    return pandas.Series(values) if present else pandas.Series(values, dtype=object)


def _kind_of(present: list[Any]) -> str | None:
    """The kind every value shares (bool is not an int here), or None to let pandas decide."""
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if any(isinstance(v, bool) for v in present):
        return "object"
    if all(isinstance(v, int) and -2**63 <= v < 2**63 for v in present):
        return "int"
    if all(isinstance(v, (int, float)) for v in present):
        return "float"
    if all(isinstance(v, str) for v in present):
        return "str"
    return None


def _pandas() -> Any:
    """pandas, imported only now: it takes about 0.2 s here, twice what ``import pipeline_nb`` does."""
    try:
        import pandas
    except ImportError as exc:
        msg = (f"a DataFrame needs pandas, which cannot be imported here ({exc}): "
               "pip install 'pipeline_nb[pandas]', or use .to_records() for the same rows as plain dicts")
        raise ModuleNotFoundError(msg, name="pandas") from None
    return pandas
