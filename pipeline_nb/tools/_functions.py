"""A kernel function as a tool: its JSON Schema from its signature, type hints and docstring.

Each parameter becomes a property (its type from the annotation, its description from
``Annotated[X, "..."]`` or the docstring, its ``default`` when the default is JSON); a parameter
without a default is required. What cannot be sent as JSON is refused up front, naming the
function and the parameter: ``*args``, ``**kwargs``, positional-only parameters, a parameter
with no annotation, and types with no JSON form. On a call, the JSON the model sends is built
back into the annotated types (dataclasses, pydantic models, Enums, tuples, dates).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING
from typing import Any

from ._docstrings import parse_docstring
from ._errors import ToolDefinitionError
from ._tool import NAME, Tool
from ._types import Convert, Describer, Undescribable, object_schema, with_notes

_EXPLICIT = "or use an explicit {name, description, input_schema, call} mapping"


def tool_from_function(fn: Callable[..., Any], name: str | None = None, description: str | None = None) -> Tool:
    """A tool that calls ``fn``; its name defaults to the function's, its description to the
    docstring's prose. Raises ToolDefinitionError naming the function and the parameter that
    cannot be described, and how to fix it."""
    label = _label(fn)
    if not callable(fn):
        raise ToolDefinitionError(name, None, f"{label} is not a function (its type is {type(fn).__name__})")
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name or tool_name == "<lambda>":
        raise ToolDefinitionError(None, None, f"{label} has no name to give the model; pass name=..., "
                                              "e.g. tool_from_function(fn, name='lookup')")
    if not NAME.fullmatch(tool_name):
        raise ToolDefinitionError(tool_name, None, f"{tool_name!r} is not a valid tool name (1 to 64 letters, digits, "
                                                   "'_' or '-'); pass name=..., e.g. name='lookup'")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ToolDefinitionError(tool_name, None, f"{label} has no signature to read; wrap it in a def with "
                                                   f"annotated parameters, {_EXPLICIT}") from None
    summary, notes = parse_docstring(inspect.getdoc(fn.func if isinstance(fn, functools.partial) else fn))
    describer = Describer()
    properties: dict[str, Any] = {}
    required: list[str] = []
    converts: dict[str, Convert] = {}
    for parameter in signature.parameters.values():
        _check_kind(tool_name, label, parameter)
        hint = _annotation(tool_name, label, fn, parameter)
        try:
            schema, convert = describer.describe(hint)
        except Undescribable as exc:
            raise ToolDefinitionError(tool_name, parameter.name, f"parameter {parameter.name!r} of {label}: {exc}; "
                                      f"change its annotation, {_EXPLICIT}") from None
        has_default = parameter.default is not parameter.empty
        properties[parameter.name] = with_notes(schema, hint, notes.get(parameter.name),
                                                parameter.default if has_default else MISSING)
        if not has_default:
            required.append(parameter.name)
        if convert is not None:
            converts[parameter.name] = convert
    input_schema = object_schema(properties, required)
    if describer.defs:
        input_schema["$defs"] = describer.defs
    convert_input = functools.partial(_convert_input, converts) if converts else None
    return Tool(tool_name, summary if description is None else description, input_schema, fn,
                convert_input=convert_input)


def _check_kind(tool: str, label: str, parameter: inspect.Parameter) -> None:
    if parameter.kind is parameter.VAR_POSITIONAL:
        raise ToolDefinitionError(tool, parameter.name, f"{label} takes *{parameter.name}, which the model cannot "
                                  f"fill: JSON input has named fields only; replace it with a named list "
                                  f"parameter (e.g. {parameter.name}: list[str]), {_EXPLICIT}")
    if parameter.kind is parameter.VAR_KEYWORD:
        raise ToolDefinitionError(tool, parameter.name, f"{label} takes **{parameter.name}, which has no schema "
                                  f"to tell the model; name the parameters it accepts, {_EXPLICIT}")
    if parameter.kind is parameter.POSITIONAL_ONLY:
        raise ToolDefinitionError(tool, parameter.name, f"parameter {parameter.name!r} of {label} is "
                                  "positional-only, but a tool is called with named arguments; remove the '/' "
                                  f"from its signature, or wrap it in a def with named parameters")


def _annotation(tool: str, label: str, fn: Callable[..., Any], parameter: inspect.Parameter) -> Any:
    """The parameter's type hint, with a string annotation (``from __future__ import annotations``)
    evaluated in the function's module."""
    hint = parameter.annotation
    if hint is parameter.empty and label == "a lambda":
        raise ToolDefinitionError(tool, parameter.name, f"parameter {parameter.name!r} of a lambda has no type "
                                  "annotation, and a lambda cannot have one; define the function with def and "
                                  f"annotate it, {_EXPLICIT}")
    if hint is parameter.empty:
        raise ToolDefinitionError(tool, parameter.name, f"parameter {parameter.name!r} of {label} has no type "
                                  f"annotation, so the model cannot be told what to pass; annotate it (e.g. "
                                  f"{parameter.name}: str), {_EXPLICIT}")
    if isinstance(hint, str):
        try:
            hint = eval(hint, _globals_of(fn))  # what typing.get_type_hints does, one parameter at a time
        except Exception as exc:
            raise ToolDefinitionError(tool, parameter.name, f"the annotation {parameter.annotation!r} of "
                                      f"parameter {parameter.name!r} of {label} cannot be resolved "
                                      f"({type(exc).__name__}: {exc}); define or import it at the top of "
                                      f"the function's module") from None
    return hint


def _globals_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """The module namespace the function's string annotations were written in."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    target = inspect.unwrap(getattr(target, "__func__", target))  # a bound method: its function
    if not inspect.isfunction(target):
        target = getattr(type(target), "__call__", None)  # a callable object: its __call__
    return getattr(target, "__globals__", {})


def _label(fn: Any) -> str:
    """How an error names the function: ``search()``, ``Corpus.search()``, ``a lambda``, or its repr."""
    if getattr(fn, "__name__", None) == "<lambda>":
        return "a lambda"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if isinstance(qualname, str):
        return f"{qualname.rpartition('<locals>.')[2]}()"  # a function defined in a function: its own name
    return repr(fn)


def _convert_input(converts: dict[str, Convert], input: dict[str, Any]) -> dict[str, Any]:
    return {key: converts[key](value) if key in converts else value for key, value in input.items()}
