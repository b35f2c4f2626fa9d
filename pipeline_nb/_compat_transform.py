"""pipeline_ex's data_transform, ported: what translated ``data_transform`` steps call (see _compat_flow.py).

It follows pipeline_ex's transformer (lib/pipeline/data/transformer.ex), quirks included, so a
workflow gives the results it gives there: a field is read by its dotted path through mappings
only, and a missing field or one that is ``false`` reads as null (pipeline_ex reads with ``||``);
values compare as Elixir terms (``1 == 1.0``, ``5 != "5"``, and number < true/false/null < mapping
< list < text); a value is matched with ``mapping:`` keys, and named as a ``group_by`` key, as
Elixir's ``to_string`` writes it (null is ``""``, ``1000.0`` is ``"1.0e3"``).

Differences: the whole list is transformed at once (pipeline_ex's ``lazy:`` path, also taken for
lists over 1,000 items, filters and sorts a little differently), and a join's ``right_source``
that is not a list of mappings fails the step (pipeline_ex leaves the items unjoined). Data
pipeline_ex crashes on fails the step with TransformError, naming the operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

OPERATIONS = ("filter", "map", "aggregate", "join", "group_by", "sort")
AGGREGATES = ("sum", "average", "count", "max", "min", "first", "last", "unique")
EXPRESSIONS = ("uppercase", "lowercase")
"""The map expressions pipeline_ex knows (it leaves items unchanged for any other)."""
OUTPUT_FORMATS = ("json", "string", "count")
_OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "contains")
"""In the order pipeline_ex looks for them: a condition splits at the first one it contains."""
_FIELD = re.compile(r"[\w-]+(\.[\w-]+)*")


class TransformError(ValueError):
    """Data a data_transform operation cannot transform; the message names the operation."""


def data_transform(input_source: Any, operations: list[Mapping[str, Any]] | None, output_field: str,
                   output_format: str | None = None) -> dict[str, Any]:
    """pipeline_ex's data_transform step: ``{output_field: result}`` (without its ``metadata``).
    Each join's ``right_source`` is the right-hand data itself, resolved by the translation."""
    if input_source is None:
        raise TransformError("input_source gave nothing (null); pipeline_ex fails here too "
                             "('Input source not found'): check the step or variable it names")
    result = transform(input_source, operations or [])
    return {output_field: formatted(result, output_format)}


def transform(data: Any, operations: list[Mapping[str, Any]]) -> Any:
    """``data`` after each operation in turn, as pipeline_ex's Transformer.transform gives it."""
    for index, op in enumerate(operations):
        kind = op.get("operation") if isinstance(op, Mapping) else None
        where = f"operations[{index}] ({kind})"
        if kind not in _APPLY:
            raise TransformError(f"{where}: unknown operation; operations: {', '.join(OPERATIONS)}")
        data = _APPLY[kind](data, op, where)
    return data


def formatted(data: Any, output_format: str | None) -> Any:
    """``output_format``: json (compact JSON text), string (Elixir's to_string), count, or the data."""
    if output_format == "json":
        try:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)
        except TypeError:  # keys of mixed types cannot be sorted
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    if output_format == "string":
        return _text(data, "output_format string: the result", " (use output_format: json)")
    if output_format == "count":
        return len(data) if isinstance(data, list) else 1
    return data


def condition_problem(condition: str) -> str | None:
    """Why pipeline_ex would misread a filter ``condition`` (None when it reads as written)."""
    op = next((o for o in _OPERATORS if o in condition), None)
    if op is None:
        return None if _FIELD.fullmatch(condition.strip()) else "it is not 'field <op> value' nor a field name"
    left, right = (part.strip() for part in condition.split(op, 1))
    if not _FIELD.fullmatch(left):
        return f"it splits at the first {op!r}, and {left!r} before it is not a field name"
    if not right:
        return f"nothing follows {op!r}"
    if _literal(right) == right and re.search(r"['\"<>]|[=!]=|\b(and|or|contains)\b|&&|\|\|", right):
        return f"{right!r} after {op!r} is not one value (a condition compares one field with one value)"
    return None


# -- the operations: each takes the data, the operation and where it is (for errors) --

def _filter(data: Any, op: Mapping[str, Any], where: str) -> Any:
    field, condition = op.get("field"), op.get("condition")
    if not isinstance(condition, str):
        raise TransformError(f"{where}: condition must be text such as \"status == 'done'\", got {condition!r}")

    def holds(item: Any) -> bool:
        return _holds(condition, _get(item, field) if _truthy(field) else item, item)
    if isinstance(data, list):
        return [item for item in data if holds(item)]
    return data if holds(data) else None


def _map(data: Any, op: Mapping[str, Any], where: str) -> Any:
    field, mapping, expression = op.get("field"), op.get("mapping"), op.get("expression")

    def one(item: Any, number: int) -> Any:
        if _truthy(mapping):
            if not isinstance(mapping, Mapping):
                raise TransformError(f"{where}: mapping must be a mapping, got {_kind(mapping)}")
            if _truthy(field):
                current = _get(item, field)
                return _set(item, field, mapping.get(_text(current, f"{where}: item {number}'s {field}"), current))
            if not isinstance(item, Mapping):
                raise TransformError(f"{where}: item {number} is {_kind(item)}, so mapping: cannot be merged into "
                                     "it (give field: to map one field's values)")
            return {**item, **mapping}
        if _truthy(expression) and isinstance(field, str) and expression in EXPRESSIONS:
            current = _get(item, field)
            if isinstance(current, str):
                return _set(item, field, current.upper() if expression == "uppercase" else current.lower())
        return item
    return [one(item, n) for n, item in enumerate(data)] if isinstance(data, list) else one(data, 0)


def _aggregate(data: Any, op: Mapping[str, Any], where: str) -> Any:
    field, function = op.get("field"), op.get("function", "sum")
    if isinstance(data, list):
        values = [v for v in (_get(item, field) for item in data) if v is not None] if _truthy(field) else data
    else:  # one value, unfiltered: a list in a field is one value here, as in pipeline_ex
        values = [_get(data, field) if _truthy(field) else data]
    numbers = [v for v in values if _is_number(v)]
    if function == "sum":
        return sum(numbers)
    if function == "average":
        return sum(numbers) / len(numbers) if numbers else 0
    if function == "count":
        return len(values)
    if function in ("max", "min"):
        return (max if function == "max" else min)(numbers) if numbers else 0
    if function in ("first", "last"):
        return values[0 if function == "first" else -1] if values else None
    if function == "unique":
        seen: dict[Any, Any] = {}
        for value in values:
            seen.setdefault(_strict(value), value)
        return list(seen.values())
    return values  # pipeline_ex's answer to an unknown function (the translation refuses one)


def _join(data: Any, op: Mapping[str, Any], where: str) -> Any:
    key, right = op.get("join_key"), op.get("right_source")
    left_field = op.get("left_field") if _truthy(op.get("left_field")) else key
    rights = [] if not _truthy(right) else [right] if isinstance(right, Mapping) else right
    if not isinstance(rights, list) or not all(isinstance(r, Mapping) for r in rights):
        odd = [r for r in rights if not isinstance(r, Mapping)] if isinstance(rights, list) else []
        what = "a list holding " + _kind(odd[0]) if odd else _kind(right)
        raise TransformError(f"{where}: right_source is {what}, not a list of mappings; name a step or variable "
                             "whose value is a list of records (or one record)")

    def one(item: Any, number: int) -> Any:
        target = _order(_get(item, left_field))
        match = next((r for r in rights if _order(_get(r, key)) == target), None)
        if match is None:  # unmatched items stay as they are (a left join)
            return item
        if not isinstance(item, Mapping):
            raise TransformError(f"{where}: item {number} is {_kind(item)}, so the matching record cannot be "
                                 "merged into it")
        return {**item, **match}  # the right record's fields win, as Map.merge gives them
    return [one(item, n) for n, item in enumerate(data)] if isinstance(data, list) else one(data, 0)


def _group_by(data: Any, op: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, list):
        return {"default": data}
    field = op.get("field")
    groups: dict[Any, tuple[Any, list[Any]]] = {}
    for item in data:
        value = _get(item, field)
        groups.setdefault(_strict(value), (value, []))[1].append(item)
    out: dict[str, list[Any]] = {}
    # Elixir walks the groups in key order, and of two keys with one text, the later one wins
    for value, items in sorted(groups.values(), key=lambda group: _order(group[0])):
        out[_text(value, f"{where}: a value of {field}")] = items
    return dict(sorted(out.items()))


def _sort(data: Any, op: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, list):
        return data
    field = op.get("field")
    return sorted(data, key=lambda item: _order(_get(item, field)), reverse=op.get("order") == "desc")


_APPLY = {"filter": _filter, "map": _map, "aggregate": _aggregate, "join": _join, "group_by": _group_by,
          "sort": _sort}


# -- pipeline_ex's conditions, fields and Elixir's terms --

def _holds(condition: str, value: Any, item: Any) -> bool:
    """pipeline_ex's evaluate_expression: ``left <op> literal``, else the truth of a field."""
    op = next((o for o in _OPERATORS if o in condition), None)
    if op is None:
        return _truthy(_resolve(condition, value, item))
    left, right = condition.split(op, 1)
    a, b = _resolve(left.strip(), value, item), _literal(right.strip())
    if op == "contains":
        if isinstance(a, list):
            return any(_order(x) == _order(b) for x in a)
        return isinstance(a, str) and isinstance(b, str) and b in a
    ka, kb = _order(a), _order(b)
    return {"==": ka == kb, "!=": ka != kb, ">=": ka >= kb, "<=": ka <= kb, ">": ka > kb, "<": ka < kb}[op]


def _resolve(name: str, value: Any, item: Any) -> Any:
    """A condition's left side: ``value`` (the operation's field), a dotted path of the item, or a
    name of the item, else the operation's field."""
    if name == "value":
        return value
    found = _get(item, name)
    return found if "." in name or _truthy(found) else value


def _literal(text: str) -> Any:
    """A condition's right side: quoted text, a whole or decimal number, true, false, null/nil, else the text."""
    if len(text) >= 1 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[0-9]+\.[0-9]+", text):
        return float(text)
    return {"true": True, "false": False, "null": None, "nil": None}.get(text, text)


def _get(data: Any, path: Any) -> Any:
    if not isinstance(path, str):
        return None
    for key in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
        data = None if data is False else data  # Map.get(data, key) || ...: false reads as missing
    return data


def _set(data: Any, path: str, value: Any) -> Any:
    """``data`` with the field at ``path`` set, missing mappings on the way made (what is no mapping stays)."""
    if not isinstance(data, Mapping):
        return data
    key, _, rest = path.partition(".")
    return {**data, key: _set(data.get(key, {}), rest, value) if rest else value}


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _order(value: Any) -> tuple[Any, ...]:
    """A key that orders (and, equal, equates) values as Elixir terms do."""
    if _is_number(value):
        return (0, value)
    if value is None or isinstance(value, bool):
        return (1, "nil" if value is None else str(value).lower())
    if isinstance(value, Mapping):
        keys = sorted(value, key=_order)
        return (2, len(value), tuple(_order(k) for k in keys), tuple(_order(value[k]) for k in keys))
    if isinstance(value, (list, tuple)):
        return (3, tuple(_order(v) for v in value))
    return (4, value if isinstance(value, str) else str(value))


def _strict(value: Any) -> Any:
    """A hashable key telling values apart as Elixir's map keys do (``1`` and ``1.0`` differ)."""
    if isinstance(value, Mapping):
        return ("map", tuple(sorted(((_strict(k), _strict(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_strict(v) for v in value))
    return (type(value).__name__, value if isinstance(value, (str, int, float, bool, type(None))) else str(value))


def _text(value: Any, what: str, hint: str = "") -> str:
    """Elixir's ``to_string``: null is "", true is "true", a list its items' text (a whole number: a character)."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list) and not any(isinstance(v, (bool, float)) for v in value):
        if all(isinstance(v, (str, list)) or (isinstance(v, int) and 0 <= v < 0x110000) for v in value):
            return "".join(chr(v) if isinstance(v, int) else _text(v, what, hint) for v in value)
    raise TransformError(f"{what} is {_kind(value)}, which has no text form in pipeline_ex{hint}")


def _float_text(number: float) -> str:
    """Erlang's shortest float text: fixed, unless scientific is shorter (or the number is past 2**53)."""
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    if not isinstance(exponent, int):  # inf or nan, which JSON never gives
        return repr(number)
    digits, point = "".join(map(str, digit_tuple)), len(digit_tuple) + exponent
    if point <= 0:
        fixed = "0." + "0" * -point + digits
    elif point >= len(digits):
        fixed = digits + "0" * (point - len(digits)) + ".0"
    else:
        fixed = digits[:point] + "." + digits[point:]
    scientific = f"{digits[0]}.{digits[1:] or '0'}e{point - 1}"
    text = scientific if abs(number) >= 2**53 or len(scientific) < len(fixed) else fixed
    return "-" + text if number < 0 else text


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")
