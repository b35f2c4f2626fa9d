"""A function that cannot become a tool is refused up front, by a ToolDefinitionError whose
message names the function and the parameter, and says how to fix it."""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from typing import Optional

import pytest

from pipeline_nb.tools import ToolDefinitionError, tool_from_function

HOW = "or use an explicit {name, description, input_schema, call} mapping"


def refusal(fn, **kwargs) -> ToolDefinitionError:
    with pytest.raises(ToolDefinitionError) as caught:
        tool_from_function(fn, **kwargs)
    return caught.value


@dataclass
class Chain:
    value: int
    next: Optional[Chain] = None


def star_args(*values: int): ...
def star_kwargs(**options: str): ...
def positional(x: int, /, y: int): ...
def unannotated(table: str, rows): ...
def opaque(conn: socket.socket): ...
def int_keys(counts: dict[int, str]): ...
def unresolved(frame: DataFrameNotImported): ...  # noqa: F821 - the point of the test
def recursive(chain: Chain): ...
def not_a_type(xs: [int]): ...  # type: ignore[valid-type]


@pytest.mark.parametrize("fn, param, words", [
    (star_args, "values", "star_args() takes *values, which the model cannot fill"),
    (star_kwargs, "options", "star_kwargs() takes **options, which has no schema"),
    (positional, "x", "parameter 'x' of positional() is positional-only"),
    (unannotated, "rows", "parameter 'rows' of unannotated() has no type annotation"),
    (opaque, "conn", "parameter 'conn' of opaque(): its type socket.socket cannot be described as JSON"),
    (int_keys, "counts", "parameter 'counts' of int_keys(): its keys are int, but JSON object keys are strings"),
    (unresolved, "frame", "the annotation 'DataFrameNotImported' of parameter 'frame' of unresolved() cannot be"),
    (recursive, "chain", "parameter 'chain' of recursive(): field 'next' of Chain: Chain contains itself"),
    (not_a_type, "xs", "parameter 'xs' of not_a_type(): its annotation [<class 'int'>] is not a type"),
])
def test_a_parameter_that_cannot_be_described_is_named_with_its_function(fn, param, words):
    error = refusal(fn)
    assert (error.tool, error.param) == (fn.__name__, param)
    assert str(error).startswith(f"tool {fn.__name__!r}: {words}")


@pytest.mark.parametrize("fn", [star_args, star_kwargs, unannotated, opaque])
def test_the_message_says_how_to_fix_it(fn):
    assert HOW in str(refusal(fn))


def test_an_unannotated_parameter_is_told_to_be_annotated():
    assert "annotate it (e.g. rows: str)" in str(refusal(unannotated))


def test_a_lambda_or_a_partial_needs_a_name_and_a_lambda_with_parameters_needs_a_def():
    assert "a lambda has no name to give the model; pass name=" in str(refusal(lambda: 1))
    assert "has no name to give the model; pass name=" in str(refusal(functools.partial(unannotated, "t")))
    error = refusal(lambda x: x, name="twice")
    assert (error.tool, error.param) == ("twice", "x")
    assert "a lambda cannot have one; define the function with def" in str(error)
    assert tool_from_function(lambda: 1, name="one").call({}) == 1


def test_a_name_the_api_would_refuse_is_refused():
    def données(x: int): ...

    assert "'données' is not a valid tool name" in str(refusal(données))
    assert "'has space' is not a valid tool name" in str(refusal(star_args, name="has space"))


def test_something_not_callable_is_refused():
    assert "is not a function" in str(refusal(42, name="answer"))
