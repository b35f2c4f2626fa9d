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
