"""Server tools are sent as the API's versioned tool dicts, with options checked against the
anthropic SDK's own typed params."""

from __future__ import annotations

import typing

import anthropic.types
import pytest
from pydantic import TypeAdapter

from pipeline_nb.tools import SERVER_TOOLS, ToolDefinitionError, server_tool
from pipeline_nb.tools._server import VERSIONS


def sdk_param(version: str) -> type:
    """The SDK's TypedDict for a tool version: ``web_search_20250305`` -> ``WebSearchTool20250305Param``."""
    name, _, date = version.rpartition("_")
    return getattr(anthropic.types, "".join(part.title() for part in name.split("_")) + f"Tool{date}Param")


def test_the_server_tools_are_web_search_web_fetch_and_code_execution():
    assert SERVER_TOOLS == {"web_search", "web_fetch", "code_execution"}


def test_each_defaults_to_its_newest_version_in_the_sdk():
    assert [server_tool(name).to_api() for name in ("web_search", "web_fetch", "code_execution")] == [
        {"type": "web_search_20260318", "name": "web_search"},
        {"type": "web_fetch_20260318", "name": "web_fetch"},
        {"type": "code_execution_20260521", "name": "code_execution"},
    ]
    for name in SERVER_TOOLS:
        newest = max((t for t in typing.get_args(anthropic.types.ToolUnionParam)
                      if typing.get_type_hints(t).get("name") == typing.Literal[name]),
                     key=lambda t: typing.get_args(typing.get_type_hints(t)["type"])[0])
        assert server_tool(name).to_api()["type"] == typing.get_args(typing.get_type_hints(newest)["type"])[0]


@pytest.mark.parametrize("name, version", [(n, v) for n in VERSIONS for v in VERSIONS[n]])
def test_the_options_of_each_version_are_the_keys_of_the_sdks_typed_param(name, version):
    param = sdk_param(version)
    assert VERSIONS[name][version] == (param.__required_keys__ | param.__optional_keys__) - {"name", "type"}


def test_options_pass_through_and_the_dict_is_a_valid_sdk_param():
    tool = server_tool("web_search", {"max_uses": 3, "allowed_domains": ["arxiv.org"],
                                      "user_location": {"type": "approximate", "country": "FR"}})
    sent = tool.to_api()
    assert sent == {"type": "web_search_20260318", "name": "web_search", "max_uses": 3,
                    "allowed_domains": ["arxiv.org"], "user_location": {"type": "approximate", "country": "FR"}}
    TypeAdapter(sdk_param(sent["type"])).validate_python(sent)
    assert tool.is_server_tool and tool.function is None


def test_an_older_version_is_chosen_with_type_and_takes_only_its_own_options():
    assert server_tool("web_fetch", {"type": "web_fetch_20250910", "max_uses": 2}).to_api() == {
        "type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}
    with pytest.raises(ToolDefinitionError, match="unknown option 'use_cache' for web_fetch_20250910"):
        server_tool("web_fetch", {"type": "web_fetch_20250910", "use_cache": False})


def test_an_unknown_option_lists_the_allowed_ones_and_suggests_the_closest():
    with pytest.raises(ToolDefinitionError) as caught:
        server_tool("web_search", {"max_use": 3})
    assert str(caught.value) == (
        "tool 'web_search': unknown option 'max_use' for web_search_20260318; did you mean 'max_uses'? the options "
        "are allowed_callers, allowed_domains, blocked_domains, cache_control, defer_loading, max_uses, "
        "response_inclusion, strict, user_location (and type, to pick a version)")
    assert caught.value.param == "max_use"


def test_an_unknown_tool_or_version_is_refused_with_the_choices():
    with pytest.raises(ToolDefinitionError, match="'bash' is not a server tool; they are code_execution, web_fetch"):
        server_tool("bash", {})
    with pytest.raises(ToolDefinitionError, match="the versions are web_search_20260318, web_search_20260209"):
        server_tool("web_search", {"type": "web_search_2024"})
    with pytest.raises(ToolDefinitionError, match="options of web_search must be a mapping"):
        server_tool("web_search", ["max_uses"])  # type: ignore[arg-type]


def test_a_server_tool_is_not_called_here():
    with pytest.raises(TypeError, match="the API runs it"):
        server_tool("web_search").call({"query": "x"})
