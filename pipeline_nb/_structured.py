"""Structured output: parse a reply as JSON and validate it against the step's schema."""

from __future__ import annotations

import json
from typing import Any



class StructuredOutputError(ValueError):
    """A reply that is not JSON, or does not match ``output_schema``; names the failing path."""


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON Schema, or None."""
    import jsonschema

    if not isinstance(schema, dict):
        return f"output_schema must be a mapping, got {type(schema).__name__}"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"output_schema is not a valid JSON Schema: {exc.message}"
    return None


def parse_reply(text: str, schema: dict[str, Any]) -> Any:
    """The reply's JSON value; raises StructuredOutputError naming what is wrong and where."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"the reply is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise StructuredOutputError(msg) from None
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise StructuredOutputError(f"the reply does not match output_schema at {path}: {error.message}")
    return value


def schema_instance(schema: Any, text: str = "example") -> Any:
    """A small value that ``schema`` accepts (for fakes and the mock, which answer without a model):
    its ``const``, ``default`` or first ``enum`` value; an object of its required properties (all of
    them when none is required); ``minItems`` items; numbers at their minimum; ``text`` for strings."""
    if not isinstance(schema, dict):
        return text
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_instance(schema[key][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        wanted = schema.get("required") or list(properties)
        return {name: schema_instance(properties.get(name, {}), text) for name in wanted}
    if kind == "array":
        return [schema_instance(schema.get("items", {}), text) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0))
        value = max(low, 1) if "maximum" not in schema or schema["maximum"] >= 1 else low
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text + "." * max(0, schema.get("minLength", 0) - len(text))
