"""Python type hints as JSON Schema, and the way back from JSON to those types.

:meth:`Describer.describe` turns one annotation into ``(schema, convert)``: the JSON Schema the model
sees, and a function that builds the annotated value from the JSON the model sends (None when
the JSON value is already right: ``str``, ``int``, ``list[str]``...). Understood: ``str``,
``int``, ``float``, ``bool``, ``None``, ``Any``; ``list[X]`` (and ``Sequence``, ``set``),
``tuple[X, Y]`` and ``tuple[X, ...]``, ``dict[str, X]``; ``X | None``, ``Optional[X]`` and other
unions; ``Literal[...]``; ``Annotated[X, "description"]``; ``Enum`` subclasses; dataclasses,
``TypedDict`` s and pydantic models (nested objects; pydantic through its own
``model_json_schema``, never imported here); ``datetime``, ``date`` and ``pathlib.Path`` (strings).
Anything else raises :class:`Undescribable`, which the caller names with its parameter.
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import datetime
import enum
import inspect
import json
import types
import typing
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, Union

from ._docstrings import parse_docstring

Convert = Callable[[Any], Any]
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_SEQUENCES = (list, abc.Sequence, abc.MutableSequence, abc.Collection, abc.Iterable)
_SETS = (set, frozenset, abc.Set, abc.MutableSet)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
_TAKEN = (" (a tool takes str, int, float, bool, None, list[X], tuple[...], dict[str, X], X | None, Literal, "
          "Enum, datetime, date, Path, dataclasses, TypedDicts and pydantic models)")
_FIELD_MARKERS = tuple(getattr(typing, marker) for marker in ("Required", "NotRequired", "ReadOnly")
                       if hasattr(typing, marker))


class Undescribable(Exception):
    """A type hint with no JSON Schema; ``str()`` says why and what to use instead."""


class Describer:
    """Describes the annotations of one tool, collecting the ``$defs`` that pydantic models share."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}
        self._open: list[type] = []  # the dataclasses being described, to refuse a recursive one

    def describe(self, hint: Any) -> tuple[dict[str, Any], Convert | None]:
        """``(JSON Schema, convert)`` for ``hint``; Undescribable if it has none."""
        if isinstance(hint, (str, typing.ForwardRef)):
            text = hint if isinstance(hint, str) else hint.__forward_arg__
            raise Undescribable(f"its annotation {text!r} cannot be resolved; import that name in the function's "
                                "module (a string annotation is looked up there)")
        try:
            hash(hint)
        except TypeError:  # `x: [int]` and the like: a value where a type belongs
            raise Undescribable(f"its annotation {hint!r} is not a type; write e.g. list[int]") from None
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in _FIELD_MARKERS:  # TypedDict's Required[X] / NotRequired[X]: the type is X
            return self.describe(args[0])
        if origin is typing.Annotated:
            schema, convert = self.describe(args[0])
            note = annotated_note(hint)
            return ({**schema, "description": note} if note else schema), convert
        if hint is Any:
            return {}, None
        if hint is None or hint in _JSON_TYPES:
            return {"type": _JSON_TYPES[type(None) if hint is None else hint]}, (float if hint is float else None)
        if hasattr(hint, "__supertype__"):  # typing.NewType
            return self.describe(hint.__supertype__)
        if origin is typing.Literal:
            return _literal(args), None
        if origin in (Union, types.UnionType):
            return self._union(args)
        if origin is tuple or hint is tuple:
            return self._tuple(args)
        if origin in _SEQUENCES or hint in (list, abc.Sequence):
            return self._array(args, list)
        if origin in _SETS or hint in (set, frozenset):
            schema, convert = self._array(args, frozenset if frozenset in (hint, origin) else set)
            return {**schema, "uniqueItems": True}, convert
        if origin in _MAPPINGS or hint in (dict, abc.Mapping):
            return self._mapping(args)
        if isinstance(hint, type):
            return self._class(hint)
        raise Undescribable(f"its type {_name(hint)} cannot be described as JSON{_TAKEN}")

    def _union(self, args: tuple[Any, ...]) -> tuple[dict[str, Any], Convert | None]:
        options = [a for a in args if a is not type(None)]
        described = [self.describe(a) for a in options]
        if len(options) < len(args):  # X | None: nullable
            if len(described) == 1:
                schema, convert = described[0]
                return _nullable(schema), (None if convert is None else _unless_none(convert))
            described.append(({"type": "null"}, None))
        schema = {"anyOf": [s for s, _ in described]}
        if all(c is None for _, c in described):
            return schema, None
        return schema, _first_fitting(described, self.defs)

    def _array(self, args: tuple[Any, ...], kind: type) -> tuple[dict[str, Any], Convert | None]:
        if not args or args[0] is Any:
            return {"type": "array"}, (None if kind is list else kind)
        items, convert = self.describe(args[0])
        if convert is None:
            return {"type": "array", "items": items}, (None if kind is list else kind)
        return {"type": "array", "items": items}, lambda value: kind(convert(v) for v in value)

    def _tuple(self, args: tuple[Any, ...]) -> tuple[dict[str, Any], Convert | None]:
        if not args:
            return {"type": "array"}, tuple
        if len(args) == 2 and args[1] is Ellipsis:
            return self._array(args[:1], tuple)
        if args == ((),):  # tuple[()]: the empty tuple
            return {"type": "array", "maxItems": 0}, tuple
        described = [self.describe(a) for a in args]
        converts = [c or _same for _, c in described]
        schema = {"type": "array", "prefixItems": [s for s, _ in described], "minItems": len(args),
                  "maxItems": len(args)}
        return schema, lambda value: tuple(c(v) for c, v in zip(converts, value))

    def _mapping(self, args: tuple[Any, ...]) -> tuple[dict[str, Any], Convert | None]:
        if not args:
            return {"type": "object"}, None
        if args[0] not in (str, Any):
            raise Undescribable(f"its keys are {_name(args[0])}, but JSON object keys are strings; use dict[str, ...]")
        if args[1] is Any:
            return {"type": "object"}, None
        values, convert = self.describe(args[1])
        schema = {"type": "object", "additionalProperties": values}
        return schema, (None if convert is None else lambda value: {k: convert(v) for k, v in value.items()})

    def _class(self, cls: type) -> tuple[dict[str, Any], Convert | None]:
        if issubclass(cls, enum.Enum):
            return _literal(tuple(member.value for member in cls), cls.__name__), cls
        if issubclass(cls, datetime.datetime):
            return {"type": "string", "format": "date-time"}, cls.fromisoformat
        if issubclass(cls, datetime.date):
            return {"type": "string", "format": "date"}, cls.fromisoformat
        if issubclass(cls, PurePath):
            return {"type": "string"}, cls
        if callable(getattr(cls, "model_json_schema", None)) and callable(getattr(cls, "model_validate", None)):
            return self._pydantic(cls), cls.model_validate
        if dataclasses.is_dataclass(cls) or _is_typeddict(cls):
            return self._record(cls)
        raise Undescribable(f"its type {_name(cls)} cannot be described as JSON{_TAKEN}")

    def _pydantic(self, model: Any) -> dict[str, Any]:
        schema = dict(model.model_json_schema())
        for name, definition in schema.pop("$defs", {}).items():  # refs point at the root: keep them there
            if self.defs.setdefault(name, definition) != definition:
                raise Undescribable(f"two different models are both named {name!r}; rename one of them")
        return schema

    def _record(self, cls: type) -> tuple[dict[str, Any], Convert | None]:
        """A dataclass or a TypedDict: an object with one property per field."""
        if cls in self._open:
            raise Undescribable(f"{cls.__name__} contains itself, which a JSON Schema built here cannot say; "
                                "use a pydantic model for a recursive type")
        self._open.append(cls)
        try:
            return self._record_fields(cls)
        finally:
            self._open.pop()

    def _record_fields(self, cls: type) -> tuple[dict[str, Any], Convert | None]:
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception as exc:  # a NameError from a string annotation, mostly
            raise Undescribable(f"the fields of {cls.__name__} cannot be resolved "
                                f"({type(exc).__name__}: {exc})") from None
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")  # its own, not one inherited (dict's)
        is_generated = doc.startswith(f"{cls.__name__}(")  # @dataclass writes one from the signature
        description, notes = parse_docstring("" if is_generated else doc)
        if dataclasses.is_dataclass(cls):
            fields = [(f.name, f.default, f.default_factory) for f in dataclasses.fields(cls) if f.init]
            required = {f for f, default, factory in fields
                        if default is dataclasses.MISSING and factory is dataclasses.MISSING}
            defaults = {f: default for f, default, _ in fields if default is not dataclasses.MISSING}
            names = [f for f, _, _ in fields]
        else:
            names, required, defaults = list(hints), set(cls.__required_keys__), {}
        properties: dict[str, Any] = {}
        converts: dict[str, Convert] = {}
        for name in names:
            try:
                schema, convert = self.describe(hints[name])
            except Undescribable as exc:
                raise Undescribable(f"field {name!r} of {cls.__name__}: {exc}") from None
            properties[name] = with_notes(schema, hints[name], notes.get(name), defaults.get(name, dataclasses.MISSING))
            if convert is not None:
                converts[name] = convert
        schema = object_schema(properties, [n for n in names if n in required])
        if description:
            schema = {"description": description, **schema}
        build = cls if dataclasses.is_dataclass(cls) else dict

        def convert(value: dict[str, Any]) -> Any:
            return build(**{k: converts[k](v) if k in converts else v for k, v in value.items()})

        return schema, convert


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An object with these properties and no others."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def with_notes(schema: dict[str, Any], hint: Any, note: str | None,
               default: Any = dataclasses.MISSING) -> dict[str, Any]:
    """``schema`` with its description and its default (when JSON-able). The description is the
    ``Annotated`` one, else the docstring's ``note``, else the type's own (a model's docstring)."""
    note = annotated_note(hint) or note
    if note:
        schema = {**schema, "description": note}
    if default is not dataclasses.MISSING:
        shown = default.value if isinstance(default, enum.Enum) else default
        shown = list(shown) if isinstance(shown, tuple) else shown
        try:
            json.dumps(shown, allow_nan=False)
        except (TypeError, ValueError):
            return schema  # the function still has its default; the model just is not told it
        schema = {**schema, "default": shown}
    return schema


def annotated_note(hint: Any) -> str | None:
    """The description an ``Annotated[X, "..."]`` hint gives (a str, or an object's ``description``)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    extras = typing.get_args(hint)[1:]
    note = next((m for m in extras if isinstance(m, str)), None)
    return note or next((m.description for m in extras if isinstance(getattr(m, "description", None), str)), None)


def _literal(values: tuple[Any, ...], owner: str | None = None) -> dict[str, Any]:
    kinds = {_JSON_TYPES.get(type(v)) for v in values}
    if None in kinds or not values:
        what = f"the values of {owner}" if owner else "its Literal values"
        raise Undescribable(f"{what} must be strings, numbers, booleans or None to be sent as JSON")
    schema: dict[str, Any] = {"enum": list(values)}
    return {"type": kinds.pop(), **schema} if len(kinds) == 1 else schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes null: ``{"type": ["integer", "null"]}`` where that reads plainly."""
    if isinstance(schema.get("type"), str) and "$ref" not in schema:
        nullable = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


def _unless_none(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _first_fitting(options: list[tuple[dict[str, Any], Convert | None]], defs: dict[str, Any]) -> Convert:
    """For a union: convert with the first option whose schema the value fits."""
    def convert(value: Any) -> Any:
        import jsonschema

        for schema, option_convert in options:
            checked = {**schema, "$defs": defs} if defs else schema
            if jsonschema.Draft202012Validator(checked).is_valid(value):
                return value if option_convert is None else option_convert(value)
        return value
    return convert


def _is_typeddict(cls: type) -> bool:
    """typing's or typing_extensions' TypedDict (``typing.is_typeddict`` knows only its own)."""
    return issubclass(cls, dict) and hasattr(cls, "__required_keys__") and hasattr(cls, "__annotations__")


def _same(value: Any) -> Any:
    return value


def _name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__ if hint.__module__ == "builtins" else f"{hint.__module__}.{hint.__qualname__}"
    return repr(hint).replace("typing.", "")
