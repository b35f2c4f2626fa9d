"""``expect:`` as written: each entry checked (one kind, options that apply, a regex that
compiles, a JSON Schema that is one, names that differ) and compiled into an Expectation.

Values are templates, rendered in the scope of the result they check (a for_each item sees its
loop value), so a dataset's expected answers can sit beside its questions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import Location, PipelineSpecError
from ._values import Value, compile_value
from ._yaml import SourceMap

CHECK_KINDS = ("contains", "not_contains", "equals", "regex", "json_schema", "python", "judge", "tokens", "cost",
               "seconds")
TEXT_KINDS = ("contains", "not_contains", "equals", "regex")
LIMIT_KINDS = ("tokens", "cost", "seconds")
OPTIONS = {"ignore_case": TEXT_KINDS, "model": ("judge",), "sees_prompt": ("judge",), "max_tokens": ("judge",)}
"""Each option, and the kinds of check it applies to."""
JUDGE_MAX_TOKENS = 1024
NAME_SHOWN = 48
"""Characters of a check's value that the name made from it shows."""


@dataclass(frozen=True)
class Expectation:
    """One check of ``expect:``: its kind, its (templated) value, its name and options."""

    kind: str
    value: Value
    name: str
    location: Location | None = None
    ignore_case: bool = False
    model: str | None = None
    """judge: the model that grades (None: the step's)."""
    sees_prompt: bool = False
    """judge: the step's prompt is shown to the judge too."""
    max_tokens: int = JUDGE_MAX_TOKENS


def parse_expectations(raw: Sequence[Mapping[str, Any]], smap: SourceMap, path: tuple[Any, ...],
                       step_id: str) -> tuple[Expectation, ...]:
    """The step's ``expect:`` list (at ``path``) compiled; PipelineSpecError with line:col for a
    check with no kind or two, an option of another kind, a bad regex or JSON Schema, two of one name."""
    found: list[Expectation] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(raw):
        here = path + (index,)
        where = smap.locate(here)
        kinds = [key for key in entry if key in CHECK_KINDS]
        if len(kinds) != 1:
            problem = "names no check" if not kinds else f"names {len(kinds)} checks ({', '.join(kinds)})"
            raise PipelineSpecError(f"expect[{index}] {problem}", location=where, step_id=step_id,
                                    hint="write one check per entry: " + ", ".join(CHECK_KINDS))
        kind = kinds[0]
        for option in entry:
            applies = OPTIONS.get(option)
            if applies is not None and kind not in applies:
                raise PipelineSpecError(f"expect[{index}]: {option!r} does not apply to a {kind} check",
                                        location=smap.locate(here + (option,)), step_id=step_id,
                                        hint=f"{option}: is for {', '.join(applies)} checks")
        value = entry[kind]
        value_at = smap.locate(here + (kind,))
        _check_value(kind, value, value_at, step_id, index)
        name = entry.get("name") or default_name(kind, value)
        if name in names:
            raise PipelineSpecError(
                f"expect[{index}] is named {name!r}, like expect[{names[name]}]",
                location=smap.locate(here + ("name",)) if "name" in entry else where, step_id=step_id,
                hint="give one of them its own name: (pass rates are counted by name)")
        names[name] = index
        literal = kind in ("python", *LIMIT_KINDS)
        found.append(Expectation(
            kind=kind, value=_literal(value) if literal else compile_value(value),
            name=name, location=value_at or where, ignore_case=bool(entry.get("ignore_case", False)),
            model=entry.get("model"), sees_prompt=bool(entry.get("sees_prompt", False)),
            max_tokens=int(entry.get("max_tokens", JUDGE_MAX_TOKENS))))
    return tuple(found)


def _literal(value: Any) -> Value:
    """A value kept as written."""
    return Value(value, (), lambda ctx: value)


def _check_value(kind: str, value: Any, where: Location | None, step_id: str, index: int) -> None:
    if kind == "regex" and "{{" not in value:
        try:
            re.compile(value)
        except re.error as exc:
            raise PipelineSpecError(f"expect[{index}]: regex {value!r} does not compile: {exc}", location=where,
                                    step_id=step_id, hint="it is a Python regular expression (re.search); "
                                    "quote it in single quotes so YAML keeps its backslashes") from None
    if kind == "json_schema":
        import jsonschema

        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as exc:
            raise PipelineSpecError(f"expect[{index}]: json_schema is not a valid JSON Schema: {exc.message}",
                                    location=where, step_id=step_id) from None


def default_name(kind: str, value: Any) -> str:
    """The name of a check that has none: ``contains "Paris"``, ``regex /^\\d+$/``, ``judge: cites a
    source``, ``tokens ≤ 500``, ``cost ≤ $0.01``, ``seconds ≤ 30``."""
    if kind in ("contains", "not_contains"):
        words = value if isinstance(value, list) else [value]
        return f"{kind} " + ", ".join(f'"{_short(w)}"' for w in words)
    if kind == "equals":
        return f'equals "{_short(value)}"' if isinstance(value, str) else f"equals {_short(value)}"
    if kind == "regex":
        return f"regex /{_short(value)}/"
    if kind == "python":
        return f"python {value}"
    if kind == "judge":
        return f"judge: {_short(value)}"
    if kind == "tokens":
        if isinstance(value, Mapping):
            return "tokens " + ", ".join(f"{part} ≤ {limit}" for part, limit in value.items())
        return f"tokens ≤ {value}"
    if kind == "cost":
        return f"cost ≤ ${value:g}"
    if kind == "seconds":
        return f"seconds ≤ {value:g}"
    return kind  # json_schema


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= NAME_SHOWN else text[: NAME_SHOWN - 1] + "…"
