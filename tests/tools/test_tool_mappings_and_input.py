"""An explicit ``{name, description, input_schema, call}`` mapping is checked before any call, and
input the model sends that does not fit a tool's schema is refused with a message naming each
field, which the loop sends back to the model."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from pipeline_nb._names import resolve_name
from pipeline_nb.tools import ToolDefinitionError, ToolInputError, tool_from_function, tool_from_mapping

SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
          "required": ["query"]}


def search_corpus(query, limit=3):
    """Search the corpus for passages."""
    return [f"{query} #{i}" for i in range(limit)]


KERNEL = {"search_corpus": search_corpus, "not_callable": 42}


def resolve(name: str) -> Any:
    return resolve_name(name, KERNEL)


def mapping(**changes: Any) -> dict[str, Any]:
    base = {"name": "search", "description": "Search.", "input_schema": SCHEMA, "call": "search_corpus"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def refusal(tool_mapping: Any) -> ToolDefinitionError:
    with pytest.raises(ToolDefinitionError) as caught:
        tool_from_mapping(tool_mapping, resolve)
    return caught.value


def test_a_mapping_resolves_its_call_by_name_and_sends_its_schema_as_given():
    tool = tool_from_mapping(mapping(), resolve)
    assert tool.to_api() == {"name": "search", "description": "Search.", "input_schema": SCHEMA}
    assert tool.call({"query": "tides", "limit": 2}) == ["tides #0", "tides #1"]


def test_a_mapping_takes_a_callable_an_import_path_and_defaults_its_description_to_the_docstring():
    assert tool_from_mapping(mapping(call=search_corpus, description=None), resolve).description == \
        "Search the corpus for passages."
    dumps = tool_from_mapping({"name": "dumps", "input_schema": {"type": "object", "properties": {
        "obj": {}}, "required": ["obj"]}, "call": "json:dumps"}, resolve)
    assert dumps.call({"obj": [1]}) == "[1]"


@pytest.mark.parametrize("changes, param, words", [
    ({"name": "two words"}, "name", "tool name 'two words' is not valid: use 1 to 64 letters, digits"),
    ({"name": "x" * 65}, "name", "is not valid"),
    ({"description": 3}, "description", "description must be text, got int"),
    ({"input_schema": {"type": "array"}}, "input_schema", "input_schema must be a JSON Schema of type object"),
    ({"input_schema": {"type": "object", "properties": {"query": {"type": "strnig"}}, "required": ["query"]}},
     "input_schema", "input_schema is not a valid JSON Schema at properties/query/type"),
    ({"call": "nowhere"}, "call", "call 'nowhere' cannot be found: 'nowhere' is not defined in the kernel"),
    ({"call": "not_callable"}, "call", "call must be a function, or name one; its type is int"),
    ({"input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}, "input_schema",
     "input_schema has the field 'q', but the function takes limit, query"),
    ({"input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}, "input_schema",
     "the function needs 'query' but input_schema does not require it"),
    ({"shema": {}}, "shema", "unknown key 'shema'; the keys are name, description, input_schema, call"),
    ({"input_shema": {}}, "input_shema", "unknown key 'input_shema'; did you mean 'input_schema'?"),
])
def test_a_bad_mapping_names_the_key_at_fault(changes, param, words):
    error = refusal(mapping(**changes))
    assert error.param == param
    assert words in str(error)


def test_missing_keys_say_what_to_add():
    assert "the tool name is missing" in str(refusal({"input_schema": SCHEMA, "call": "search_corpus"}))
    assert "input_schema is missing" in str(refusal({"name": "s", "call": "search_corpus"}))
    assert "call is missing" in str(refusal({"name": "s", "input_schema": SCHEMA}))
    assert "a tool mapping must be a mapping" in str(refusal(["search_corpus"]))


def test_input_that_does_not_match_the_schema_names_each_field_and_why():
    tool = tool_from_mapping(mapping(), resolve)
    with pytest.raises(ToolInputError) as caught:
        tool.call({"limit": "ten"})
    assert str(caught.value) == ("input for tool 'search' does not match its schema: field 'limit': 'ten' is not of "
                                 "type 'integer'; 'query' is a required property")
    assert caught.value.tool == "search"


def test_an_unexpected_field_of_a_derived_tool_lists_the_fields_it_takes():
    def lookup(code: str, year: int = 2024): return code

    with pytest.raises(ToolInputError, match=r"\('colour' was unexpected\); the fields are: code, year$"):
        tool_from_function(lookup).call({"code": "x", "colour": "red"})


def test_input_that_is_not_an_object_is_refused():
    with pytest.raises(ToolInputError, match="must be a JSON object, got list"):
        tool_from_mapping(mapping(), resolve).call(["tides"])


def test_a_conversion_the_type_refuses_is_an_input_error_not_a_crash():
    def on(day: datetime.date): return day

    with pytest.raises(ToolInputError, match=r"input for tool 'on' was refused: ValueError: Invalid isoformat"):
        tool_from_function(on).call({"day": "next tuesday"})


def test_an_exception_the_function_raises_propagates_as_it_is():
    def boom(x: int): raise KeyError(x)

    with pytest.raises(KeyError):
        tool_from_function(boom).call({"x": 1})


def test_a_long_bad_value_is_not_quoted_in_full():
    def count(n: int): return n

    with pytest.raises(ToolInputError) as caught:
        tool_from_function(count).call({"n": "x" * 50_000})
    assert len(str(caught.value)) < 500
