"""A function's JSON Schema is derived from its type hints, exactly; and on a call, the JSON the
model sends is built back into the annotated types. (No ``from __future__ import annotations``
here: the hints are real objects, and one test writes them as strings on purpose.)"""

import asyncio
import datetime
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypedDict

import jsonschema
import pytest
from pydantic import BaseModel, Field

from pipeline_nb.tools import ToolInputError, tool_from_function


def schema_of(fn) -> dict[str, Any]:
    tool = tool_from_function(fn)
    jsonschema.Draft202012Validator.check_schema(tool.input_schema)
    return tool.input_schema


def only(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Point:
    """A point on the plane.

    Attributes:
        x: Distance from the left edge.
    """

    x: float
    y: float = 0.0
    tags: list[str] = field(default_factory=list)


class Range(TypedDict, total=False):
    start: int
    end: int


class Window(BaseModel):
    """A time window."""

    days: int = Field(description="how many days")
    label: Optional[str] = None


def test_scalars_map_to_json_types_and_every_parameter_without_a_default_is_required():
    def f(text: str, count: int, share: float, flag: bool, nothing: None, anything: Any): ...

    assert schema_of(f) == only({"text": {"type": "string"}, "count": {"type": "integer"},
                                 "share": {"type": "number"}, "flag": {"type": "boolean"},
                                 "nothing": {"type": "null"}, "anything": {}},
                                ["text", "count", "share", "flag", "nothing", "anything"])


def test_containers_become_arrays_and_objects():
    def f(names: list[str], rows: list[list[int]], pair: tuple[int, str], many: tuple[float, ...],
          unique: set[str], scores: dict[str, float], loose: list, blob: dict): ...

    assert schema_of(f) == only({
        "names": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2,
                 "maxItems": 2},
        "many": {"type": "array", "items": {"type": "number"}},
        "unique": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "loose": {"type": "array"},
        "blob": {"type": "object"},
    }, ["names", "rows", "pair", "many", "unique", "scores", "loose", "blob"])


def test_optional_values_are_nullable_and_required_only_without_a_default():
    def f(a: int | None, b: Optional[str] = None, c: list[int] | None = None, d: int | str = 1): ...

    assert schema_of(f) == only({
        "a": {"type": ["integer", "null"]},
        "b": {"type": ["string", "null"], "default": None},
        "c": {"type": ["array", "null"], "items": {"type": "integer"}, "default": None},
        "d": {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 1},
    }, ["a"])


def test_literal_and_enum_become_enums_and_defaults_are_shown_as_json():
    def f(mode: Literal["fast", "exact"] = "fast", colour: Colour = Colour.BLUE, level: Level = Level.LOW,
          size: Literal[1, 2, 3] = 2, maybe: Optional[Literal["a", "b"]] = None, span: tuple[int, int] = (1, 2)): ...

    assert schema_of(f) == only({
        "mode": {"type": "string", "enum": ["fast", "exact"], "default": "fast"},
        "colour": {"type": "string", "enum": ["red", "blue"], "default": "blue"},
        "level": {"type": "integer", "enum": [1, 2], "default": 1},
        "size": {"type": "integer", "enum": [1, 2, 3], "default": 2},
        "maybe": {"type": ["string", "null"], "enum": ["a", "b", None], "default": None},
        "span": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}], "minItems": 2,
                 "maxItems": 2, "default": [1, 2]},
    })


def test_a_default_that_is_not_json_is_left_out_but_still_makes_the_parameter_optional():
    def f(when: Optional[datetime.date] = datetime.date(2024, 1, 1)): ...

    assert schema_of(f) == only({"when": {"type": ["string", "null"], "format": "date"}})


def test_annotated_text_describes_the_parameter_and_wins_over_the_docstring():
    def f(query: Annotated[str, "words to look for"], k: Annotated[int, Field(description="hits to return")] = 5,
          year: Annotated[Optional[int], "a calendar year"] = None):
        """Search.

        Args:
            query: not this one
        """

    assert schema_of(f)["properties"] == {
        "query": {"type": "string", "description": "words to look for"},
        "k": {"type": "integer", "description": "hits to return", "default": 5},
        "year": {"type": ["integer", "null"], "description": "a calendar year", "default": None},
    }


def test_dates_and_paths_are_strings_built_back_on_call():
    seen = {}

    def f(day: datetime.date, at: datetime.datetime, where: Path):
        seen.update(day=day, at=at, where=where)

    tool = tool_from_function(f)
    assert tool.input_schema["properties"] == {"day": {"type": "string", "format": "date"},
                                               "at": {"type": "string", "format": "date-time"},
                                               "where": {"type": "string"}}
    tool.call({"day": "2024-03-01", "at": "2024-03-01T12:30:00", "where": "data/a.csv"})
    assert seen == {"day": datetime.date(2024, 3, 1), "at": datetime.datetime(2024, 3, 1, 12, 30),
                    "where": Path("data/a.csv")}


def test_a_dataclass_is_a_nested_object_with_its_docstring_and_is_built_back_on_call():
    def plot(point: Point, others: list[Point] = ()) -> tuple[Point, list[Point]]:
        return point, others

    tool = tool_from_function(plot)
    assert tool.input_schema["properties"]["point"] == {
        "description": "A point on the plane.",
        "type": "object",
        "properties": {"x": {"type": "number", "description": "Distance from the left edge."},
                       "y": {"type": "number", "default": 0.0},
                       "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["x"],
        "additionalProperties": False,
    }
    point, others = tool.call({"point": {"x": 1, "tags": ["a"]}, "others": [{"x": 2.5, "y": 1}]})
    assert point == Point(1.0, 0.0, ["a"]) and isinstance(point.x, float)
    assert others == [Point(2.5, 1.0)]


def test_a_typeddict_is_an_object_whose_keys_are_required_as_declared():
    def f(span: Range): return span

    tool = tool_from_function(f)
    assert tool.input_schema["properties"]["span"] == {
        "type": "object", "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
        "additionalProperties": False}
    assert tool.call({"span": {"end": 3}}) == {"end": 3}


def test_a_pydantic_model_uses_its_own_schema_and_is_validated_into_the_model_on_call():
    def f(window: Window, previous: Optional[Window] = None):
        return window, previous

    tool = tool_from_function(f)
    assert tool.input_schema["properties"]["window"] == Window.model_json_schema()
    assert tool.input_schema["properties"]["previous"] == {**Window.model_json_schema(), "type": ["object", "null"],
                                                           "default": None}
    window, previous = tool.call({"window": {"days": 7}, "previous": {"days": 1, "label": "x"}})
    assert window == Window(days=7) and previous == Window(days=1, label="x")
    assert tool.call({"window": {"days": 7}, "previous": None}) == (Window(days=7), None)


def test_nested_pydantic_definitions_are_kept_at_the_root_where_their_refs_point():
    class Node(BaseModel):
        name: str
        children: list["Node"] = []

    Node.model_rebuild()

    def f(tree: Node):
        return tree

    tool = tool_from_function(f)
    assert tool.input_schema["properties"]["tree"] == {"$ref": "#/$defs/Node"}
    assert set(tool.input_schema["$defs"]) == {"Node"}
    jsonschema.Draft202012Validator.check_schema(tool.input_schema)
    tree = tool.call({"tree": {"name": "a", "children": [{"name": "b"}]}})
    assert tree.children[0].name == "b"
    with pytest.raises(ToolInputError, match=r"field 'tree\.children\[0\]\.name': 3 is not of type 'string'"):
        tool.call({"tree": {"name": "a", "children": [{"name": 3}]}})


def test_enums_tuples_and_sets_are_built_back_from_their_json():
    def f(colour: Colour, pair: tuple[int, Colour], spans: list[tuple[int, int]], tags: frozenset[str],
          by_name: dict[str, Colour], maybe: Colour | None = None):
        return colour, pair, spans, tags, by_name, maybe

    tool = tool_from_function(f)
    result = tool.call({"colour": "red", "pair": [1, "blue"], "spans": [[1, 2]], "tags": ["a", "b"],
                        "by_name": {"x": "blue"}, "maybe": None})
    assert result == (Colour.RED, (1, Colour.BLUE), [(1, 2)], frozenset({"a", "b"}), {"x": Colour.BLUE}, None)


def test_string_annotations_are_resolved_in_the_functions_module():
    def f(points: "list[Point]", colour: "Colour | None" = None): return points

    assert schema_of(f)["properties"]["colour"] == {"type": ["string", "null"], "enum": ["red", "blue", None],
                                                    "default": None}
    assert tool_from_function(f).call({"points": [{"x": 1}]}) == [Point(1.0)]


def test_a_function_without_parameters_takes_an_empty_object():
    def now() -> str:
        """The time."""
        return "noon"

    tool = tool_from_function(now)
    assert tool.to_api() == {"name": "now", "description": "The time.", "input_schema": only({})}
    assert tool.call({}) == "noon"


def test_name_and_description_can_be_given_and_a_partial_or_a_bound_method_works():
    import functools

    class Corpus:
        def search(self, query: str, limit: int = 3) -> list[str]:
            """Search the corpus."""
            return [query] * limit

    bound = tool_from_function(Corpus().search)
    assert bound.name == "search" and bound.description == "Search the corpus."
    assert bound.call({"query": "q", "limit": 2}) == ["q", "q"]
    partial = tool_from_function(functools.partial(Corpus.search, Corpus()), name="find", description="Find.")
    assert (partial.name, partial.description) == ("find", "Find.")
    assert list(partial.input_schema["properties"]) == ["query", "limit"]


def test_an_async_function_is_run_to_completion_off_the_event_loop():
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return f"page {url}"

    assert tool_from_function(fetch).call({"url": "u"}) == "page u"


def test_to_api_returns_a_copy_that_cannot_change_the_tool():
    def f(x: int): ...

    tool = tool_from_function(f)
    tool.to_api()["input_schema"]["properties"]["x"]["type"] = "string"
    assert tool.input_schema["properties"]["x"] == {"type": "integer"}


def test_the_packages_docstring_example_runs():
    import doctest

    import pipeline_nb.tools

    assert doctest.testmod(pipeline_nb.tools).failed == 0
