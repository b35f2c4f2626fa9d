"""The JSON Schema for pipelines (``schema.json``) and its errors, made readable."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ._yaml import SourceMap
from ._errors import PipelineSpecError

if TYPE_CHECKING:
    import jsonschema


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema for pipeline files, shipped as ``pipeline_nb/schema.json``."""
    text = resources.files("pipeline_nb").joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema  # lazily: it costs a large part of the import time

    cls = jsonschema.validators.validator_for(schema())
    return cls(schema())


def step_keys() -> frozenset[str]:
    """Every key a step may have (``defaults`` takes them all but ``id`` and the step-only ones)."""
    return frozenset(schema()["$defs"]["stepKeys"]["properties"]) | frozenset(schema()["$defs"]["step"]["properties"])


def check_keys() -> frozenset[str]:
    """Every key of an ``expect:`` entry."""
    return frozenset(schema()["$defs"]["check"]["properties"])


def check_schema(data: Mapping[str, Any], smap: SourceMap) -> None:
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    leaves = [e for e in map(_leaf, errors) if not _spurious(e)] or [_leaf(errors[0])]
    first = min(leaves, key=lambda e: _position(e, smap))
    raise _friendly(first, data, smap)


def _spurious(error: jsonschema.ValidationError) -> bool:
    """An unevaluatedProperties error caused by a sibling failure, with no unknown key."""
    if error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return False
    allowed = _allowed_keys(tuple(error.absolute_path))
    return isinstance(error.instance, Mapping) and all(k in allowed for k in error.instance)


def _leaf(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific error under ``error`` (allOf/anyOf wrap the useful one)."""
    while error.context:
        error = min(error.context, key=lambda e: -len(e.absolute_path))
    return error


def _position(error: jsonschema.ValidationError, smap: SourceMap) -> tuple[int, int]:
    where = smap.locate(tuple(error.absolute_path))
    return (where.line, where.col) if where else (0, 0)


def _friendly(error: jsonschema.ValidationError, data: Mapping[str, Any], smap: SourceMap) -> PipelineSpecError:
    path = tuple(error.absolute_path)
    step_id = None
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        raw = data["steps"][path[1]]
        step_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else None
    key = next((p for p in reversed(path) if isinstance(p, str)), None)
    label = _label(path)
    where = smap.locate(path)
    value = error.instance
    hint = None
    kind = error.validator
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = _allowed_keys(path)
        unknown = sorted((k for k in value if k not in allowed), key=str) if isinstance(value, Mapping) else []
        bad = unknown[0] if unknown else "?"
        close = difflib.get_close_matches(str(bad), sorted(allowed), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
        return PipelineSpecError(
            f"unknown key {bad!r}" + (f" in {label}" if label and not step_id else ""),
            location=smap.locate(path + (bad,), key=True) or where, step_id=step_id, hint=hint,
        )
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        what = label or "pipeline"
        return PipelineSpecError(
            f"{what} is missing {missing!r}", location=where, step_id=step_id,
            hint="add 'id: name' to the step; every step needs a unique id" if missing == "id" else "add 'steps:' with a list of steps",
        )
    if kind == "type":
        expected = error.validator_value
        expected = [expected] if isinstance(expected, str) else expected
        words = " or ".join(_TYPE_WORDS.get(e, e) for e in expected)
        article = "an" if words[0] in "aeiou" else "a"
        message = f"{label or 'value'} must be {article} {words}, got {_describe(value)}"
        if expected == ["array"] and isinstance(value, Mapping):
            hint = "write each list item on its own line starting with '- '"
        elif expected == ["object"] and label.startswith("step "):
            hint = "write a step as '- id: name' with its keys (prompt: ...) indented below"
    elif kind == "enum":
        choices = ", ".join(map(str, error.validator_value))
        message = f"{label} is {value!r}; expected one of: {choices}"
        if key == "type":
            message = f"unknown step type {value!r}; known types: {choices}"
    elif kind in ("minItems", "maxItems") and error.validator_value != 1:
        message = f"{label} must have {_BOUNDS[kind]} {error.validator_value} items, got {len(value)}"
    elif kind in ("minItems", "minLength"):
        message = f"{label} must not be empty"
    elif kind in _BOUNDS:
        message = f"{label} must be {_BOUNDS[kind]} {error.validator_value}, got {value!r}"
    elif kind == "pattern":
        if error.validator_value.startswith("^[A-Za-z_]"):
            message = f"{label} {value!r} is not a valid name"
            hint = "use letters, digits and _, not starting with a digit " + _NAME_USE.get(key, "(it is used as steps.<id>)")
        else:
            message = f"{label} {value!r} does not match {error.validator_value}"
    else:
        message = f"{label or 'pipeline'}: {error.message}"
    return PipelineSpecError(message, location=where, step_id=step_id, hint=hint)


def _allowed_keys(path: tuple[Any, ...]) -> frozenset[str]:
    if not path:
        return frozenset(schema()["properties"])
    if path == ("defaults",):
        return frozenset(schema()["$defs"]["stepKeys"]["properties"]) | {"pricing", "cassette", "cassette_mode",
                                                                         "journal", "max_cost"}
    if len(path) >= 2 and path[-2] == "expect":
        return check_keys()
    return step_keys()


_NAME_USE = {
    "save_as": "(it becomes a Python variable in the kernel), e.g. my_result",
    "as": "(it is the loop variable's name in templates), e.g. topic",
}
"""What a name is used as, by key, for the hint on a name that is not valid."""

_BOUNDS = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
           "minItems": "at least", "maxItems": "at most"}
_TYPE_WORDS = {"object": "mapping", "array": "list", "boolean": "boolean (true or false)"}


def _label(path: tuple[Any, ...]) -> str:
    if len(path) == 2 and path[0] == "steps" and isinstance(path[1], int):
        return f"step {path[1] + 1}"
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        path = path[2:]
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def _describe(value: Any, *, quote: bool = True) -> str:
    """What ``value`` is, for an error message: ``string 'lots'`` (short values are quoted).

    Without ``quote``, nothing of the value is shown, only its kind and size
    (``a string (12 characters)``): for text from a file that may not be a pipeline.
    """
    if value is None:
        return "nothing (null)"
    if not quote:
        sized = {str: ("a string ({})", "character"), bytes: ("binary data ({})", "byte"),
                 list: ("a list of {}", "item"), dict: ("a mapping with {}", "key")}.get(type(value))
        if sized:
            template, unit = sized
            return template.format(f"{len(value):,} {unit}" + ("" if len(value) == 1 else "s"))
        kinds = {bool: "a boolean", int: "an integer", float: "a number"}
        return kinds.get(type(value), f"a {type(value).__name__}")
    name = {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)
    if isinstance(value, (str, bytes, list, dict)) and len(value) > 40:  # too long to quote: skip the repr
        return name
    shown = repr(value)
    return f"{name} {shown}" if len(shown) <= 40 else name
