"""A tool: what the model is told (name, description, input schema) and what runs when it calls.

:class:`Tool` is one tool, whatever it came from: a kernel function (:func:`tool_from_function`),
an explicit mapping (:func:`tool_from_mapping`), a server tool the API runs itself
(:func:`server_tool`), or a workspace tool. ``to_api()`` is the Messages API's tool parameter;
``call(input)`` checks the model's input against the schema, builds the annotated values back
from their JSON, and runs the function.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._docstrings import parse_docstring
from ._errors import ToolDefinitionError, ToolInputError

NAME_LIMIT = 64
"""Characters of a tool's name, at most."""
NAME = re.compile(rf"[a-zA-Z0-9_-]{{1,{NAME_LIMIT}}}")
"""The names the API takes for a tool."""
MAPPING_KEYS = ("name", "description", "input_schema", "call")
_MAX_PROBLEMS = 5  # the model fixes a few at a time; more only lengthens the message
_MAX_PROBLEM_CHARS = 300  # jsonschema quotes the value, which may be a whole document


@dataclass(frozen=True)
class Tool:
    """One tool the model may call. ``function`` is None for a server tool, whose API dict is
    ``server``. ``convert_input`` turns checked JSON input into the function's keyword
    arguments (building dataclasses, Enums, tuples...); None passes the input as it is."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    function: Callable[..., Any] | None = None
    server: Mapping[str, Any] | None = None
    convert_input: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def is_server_tool(self) -> bool:
        """Whether the API runs this tool itself (web search, web fetch, code execution)."""
        return self.server is not None

    def to_api(self) -> dict[str, Any]:
        """The Messages API's tool parameter (a copy: changing it changes nothing here)."""
        if self.server is not None:
            return copy.deepcopy(dict(self.server))
        tool: dict[str, Any] = {"name": self.name}
        if self.description:
            tool["description"] = self.description
        tool["input_schema"] = copy.deepcopy(dict(self.input_schema))
        return tool

    def arguments(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for ``input``; ToolInputError, naming each bad field, if it does
        not match ``input_schema`` or cannot be built into the annotated types."""
        if not isinstance(input, Mapping):
            raise ToolInputError(f"input for tool {self.name!r} must be a JSON object, got {type(input).__name__}",
                                 tool=self.name)
        problems = [_problem(error, self.input_schema) for error in self._validator.iter_errors(dict(input))]
        if problems:
            shown = "; ".join(problems[:_MAX_PROBLEMS])
            more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
            raise ToolInputError(f"input for tool {self.name!r} does not match its schema: {shown}{more}",
                                 tool=self.name)
        if self.convert_input is None:
            return dict(input)
        try:
            return self.convert_input(dict(input))
        except Exception as exc:  # a dataclass's __post_init__, pydantic's validators, a bad ISO date...
            raise ToolInputError(f"input for tool {self.name!r} was refused: {type(exc).__name__}: {exc}",
                                 tool=self.name) from None

    def call(self, input: Mapping[str, Any]) -> Any:
        """Run the tool on the model's ``input`` and return what the function returns (an ``async``
        function is run to completion). Raises ToolInputError for input that does not fit;
        whatever the function raises propagates."""
        if self.function is None:
            raise TypeError(f"tool {self.name!r} is a server tool: the API runs it, not this process")
        result = self.function(**self.arguments(input))
        if inspect.iscoroutine(result):
            import asyncio  # only for an async tool: it costs more to import than the rest of the package

            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(result)  # no loop in this thread (the loop's workers): run one
            result.close()
            raise RuntimeError(f"tool {self.name!r} is an async function and this thread already runs an event "
                               "loop; call it from a worker thread")
        return result

    @functools.cached_property
    def _validator(self) -> Any:
        import jsonschema  # not at import time: the package loads fast for a run that uses no tools

        return jsonschema.Draft202012Validator(dict(self.input_schema))


def check_name(name: Any, what: str = "tool name") -> str:
    """``name`` if the API takes it as a tool name, else ToolDefinitionError."""
    if name is None:
        raise ToolDefinitionError(None, "name", f"the {what} is missing; add one, e.g. name: search_corpus")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ToolDefinitionError(None, "name", f"{what} {name!r} is not valid: use 1 to 64 letters, digits, "
                                                "'_' or '-' (e.g. 'search_corpus')")
    return name


def tool_from_mapping(mapping: Mapping[str, Any], resolve: Callable[[str], Any]) -> Tool:
    """A tool from ``{name, description, input_schema, call}``: ``call`` is a callable or a name
    that ``resolve`` looks up (the kernel's namespace, an import path). ``description`` may be
    left out when the function has a docstring. Raises ToolDefinitionError naming the key at fault."""
    if not isinstance(mapping, Mapping):
        raise ToolDefinitionError(None, None, f"a tool mapping must be a mapping with keys {', '.join(MAPPING_KEYS)}; "
                                              f"got {type(mapping).__name__}")
    name = check_name(mapping.get("name"))
    for key in mapping:
        if key not in MAPPING_KEYS:
            close = difflib.get_close_matches(str(key), MAPPING_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ToolDefinitionError(name, str(key), f"unknown key {key!r}; {hint}the keys are "
                                                      f"{', '.join(MAPPING_KEYS)}")
    schema = _checked_schema(name, mapping.get("input_schema"))
    function = _resolved(name, mapping.get("call"), resolve)
    description = mapping.get("description")
    if description is None:
        description = parse_docstring(inspect.getdoc(function))[0]
    if not isinstance(description, str):
        raise ToolDefinitionError(name, "description", f"description must be text, got {type(description).__name__}")
    _check_parameters(name, schema, function)
    return Tool(name, description, schema, function)


def _checked_schema(name: str, schema: Any) -> dict[str, Any]:
    if schema is None:
        raise ToolDefinitionError(name, "input_schema", "input_schema is missing; give a JSON Schema of type "
                                  "object, or give the function alone and its schema is derived from its signature")
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise ToolDefinitionError(name, "input_schema", "input_schema must be a JSON Schema of type object, e.g. "
                                  "{type: object, properties: {query: {type: string}}, required: [query]}")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ToolDefinitionError(name, "input_schema", f"input_schema is not a valid JSON Schema"
                                  f"{f' at {where}' if where else ''}: {exc.message}") from None
    return copy.deepcopy(dict(schema))


def _resolved(name: str, call: Any, resolve: Callable[[str], Any]) -> Callable[..., Any]:
    if call is None:
        raise ToolDefinitionError(name, "call", "call is missing; name the function to run, e.g. call: search_corpus")
    if isinstance(call, str):
        try:
            call = resolve(call)
        except LookupError as exc:
            raise ToolDefinitionError(name, "call", f"call {call!r} cannot be found: {exc}") from None
    if not callable(call):
        raise ToolDefinitionError(name, "call", "call must be a function, or name one; its type is "
                                                f"{type(call).__name__}")
    return call


def _check_parameters(name: str, schema: Mapping[str, Any], function: Callable[..., Any]) -> None:
    """Refuse a schema whose fields the function cannot take, before the model calls it."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return  # a builtin without a signature: its own error will say, when called
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    taken = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    accepted = ", ".join(sorted(taken)) or "no arguments"
    for field_name in schema.get("properties") or {}:
        if field_name not in taken:
            raise ToolDefinitionError(name, "input_schema", f"input_schema has the field {field_name!r}, but the "
                                      f"function takes {accepted}; rename the field or add it to the function")
    needed = [p.name for p in parameters
              if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for parameter in needed:
        if parameter not in (schema.get("required") or ()):
            raise ToolDefinitionError(name, "input_schema", f"the function needs {parameter!r} but input_schema "
                                      f"does not require it; add {parameter!r} to required, or give it a default")


def _problem(error: Any, schema: Mapping[str, Any]) -> str:
    """One validation error in words: which field, and why."""
    import jsonschema

    if error.context:
        error = jsonschema.exceptions.best_match(error.context)
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = error.message
    if error.validator == "additionalProperties" and not path:
        taken = ", ".join(schema.get("properties") or {}) or "no fields"
        message = f"{message}; the fields are: {taken}"
    if len(message) > _MAX_PROBLEM_CHARS:
        message = message[:_MAX_PROBLEM_CHARS] + "..."
    return f"field {path!r}: {message}" if path else message
