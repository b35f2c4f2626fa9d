"""FakeAnthropic's tool use (client tool calls, server tools) and the checks the real API
makes on tools and tool turns, proven through the real anthropic SDK (max_retries=0)."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx2
import pytest

from pipeline_nb.testing._fake_anthropic import FakeAnthropic
from tests._sdk import MODEL
from tests._sdk import call as sdk_call

THINK = {"type": "enabled", "budget_tokens": 2048}
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
CLOCK = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
PARIS = {"city": "Paris, France", "unit": "celsius", "days": [1, 2, 3]}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40


def ask(text: str = "Weather in Paris?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def call(client: anthropic.Anthropic, streamed: bool, **kw: Any) -> tuple[anthropic.types.Message, list[Any]]:
    """One request, streamed or not (``messages`` defaults to ``ask()``)."""
    return sdk_call(client, streamed, kw.pop("messages", None) or ask(), **kw)


def as_param(msg: anthropic.types.Message) -> dict[str, Any]:
    """The assistant turn that sends ``msg`` back, blocks unchanged."""
    return {"role": "assistant", "content": [b.model_dump(exclude_none=True, exclude={"parsed_output"})
                                             for b in msg.content]}


def answer(*pairs: tuple[str, Any]) -> dict[str, Any]:
    """A user turn of ``tool_result`` blocks: ``(tool_use_id, content)`` each."""
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": c} for i, c in pairs]}


def refused(client: anthropic.Anthropic, **kw: Any) -> str:
    """The message of the 400 the request gets."""
    with pytest.raises(anthropic.BadRequestError) as info:
        call(client, False, **kw)
    assert info.value.status_code == 400 and info.value.body["error"]["type"] == "invalid_request_error"
    return info.value.body["error"]["message"]


# -- client tool calls -------------------------------------------------------------------------

def test_streamed_tool_call_input_grows_as_it_streams(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Let me check.", tool_calls=[{"name": "get_weather", "input": PARIS}])
    msg, events = call(client, True, tools=[WEATHER])
    snapshots = [e.snapshot for e in events if e.type == "input_json"]
    pieces = [e.partial_json for e in events if e.type == "input_json"]
    assert len(pieces) >= 4 and all(len(p) <= 12 for p in pieces)
    assert snapshots[-1] == PARIS and {} != snapshots[1] != PARIS  # partial parses on the way
    assert [len(str(s)) for s in snapshots] == sorted(len(str(s)) for s in snapshots)
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert [b.type for b in starts] == ["text", "tool_use"] and starts[1].input == {}
    stops = [e.content_block for e in events if e.type == "content_block_stop"]
    assert stops[1].type == "tool_use" and stops[1].input == PARIS
    text, use = msg.content
    assert (text.text, use.name, use.input, msg.stop_reason) == ("Let me check.", "get_weather", PARIS, "tool_use")
    assert use.id.startswith("toolu_")
    assert msg.usage.output_tokens == 3 + len(pieces)  # three words, then the input's JSON pieces


@pytest.mark.parametrize("streamed", [True, False])
def test_several_calls_in_one_turn_without_text(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                 streamed: bool) -> None:
    fake.reply(tool_calls=[("get_weather", {"city": "Oslo"}), {"name": "get_time"},
                           {"name": "get_weather", "input": {"city": "Rome"}, "id": "toolu_mine"}])
    msg, _ = call(client, streamed, tools=[WEATHER, CLOCK])
    assert [(b.type, b.name, b.input) for b in msg.content] == [
        ("tool_use", "get_weather", {"city": "Oslo"}), ("tool_use", "get_time", {}),
        ("tool_use", "get_weather", {"city": "Rome"})]
    ids = [b.id for b in msg.content]
    assert ids[2] == "toolu_mine" and len(set(ids)) == 3 and msg.stop_reason == "tool_use"


def test_default_ids_are_the_same_for_the_same_conversation_on_every_run(client: anthropic.Anthropic) -> None:
    ids = []
    for earlier in range(2):  # two fakes: two runs, as a re-recorded cassette sees them
        with FakeAnthropic() as fake:
            fake.reply("x", when="other")
            fake.reply(tool_calls=[("get_time", {})])
            sdk = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
            for _ in range(earlier):  # requests arriving in another order shift no id
                call(sdk, False, messages=ask("other"))
            ids.append(call(sdk, False, tools=[CLOCK])[0].content[0].id)
    assert ids[0] == ids[1]


def test_two_rounds_answer_the_tool_result(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Checking.", tool_calls=[("get_weather", {"city": "Paris"})], times=1)
    fake.reply("It is 21C in Paris.", when="21")
    messages = ask()
    first, _ = call(client, True, tools=[WEATHER], messages=messages)
    messages += [as_param(first), answer((first.content[1].id, [{"type": "text", "text": "21C, sunny"}]))]
    final, _ = call(client, True, tools=[WEATHER], messages=messages)
    assert (final.content[0].text, final.stop_reason) == ("It is 21C in Paris.", "end_turn")
    second = fake.requests[1]
    assert second.prompt == "" and second.tools == [WEATHER]
    assert second.tool_results == [{"type": "tool_result", "tool_use_id": first.content[1].id,
                                    "content": [{"type": "text", "text": "21C, sunny"}]}]
    assert final.usage.input_tokens == 1 + len("21C, sunny") // 4


def test_a_tool_result_may_return_an_image(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(tool_calls=[("get_weather", {})], times=1)
    first, _ = call(client, False, tools=[WEATHER])
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(PNG).decode()}}
    turns = [*ask(), as_param(first), answer((first.content[0].id, [{"type": "text", "text": "map:"}, image]))]
    call(client, False, tools=[WEATHER], messages=turns)
    assert [(a.kind, a.media_type, a.size) for a in fake.requests[-1].images] == [("image", "image/png", len(PNG))]
    image["source"]["media_type"] = "image/jpeg"
    assert refused(client, tools=[WEATHER], messages=turns) == (
        "messages.2.content.0.tool_result.content.1.image.source.base64.data: "
        "Image does not match the provided media type image/jpeg")


def test_a_fault_counts_tool_input_pieces(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(tool_calls=[("get_weather", PARIS)])
    fake.fault("cut", after=2)
    seen: list[Any] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with client.messages.stream(model=MODEL, max_tokens=100, messages=ask(), tools=[WEATHER]) as stream:
            for event in stream:
                if event.type == "input_json":
                    seen.append(event.snapshot)
    assert seen == [{}, {"city": "Paris, France"}]


# -- scripts the request cannot get: a loud 400 ------------------------------------------------

@pytest.mark.parametrize(("script", "request_kw", "says"), [
    ({"tool_calls": [("get_time", {})]}, {"tools": [WEATHER]},
     "calls the tool 'get_time', but the request's tools are ['get_weather']"),
    ({"tool_calls": [("get_time", {})]}, {}, "the request sends no client tools"),
    ({"tool_calls": [("web_search", {"query": "x"})]}, {"tools": [WEB_SEARCH]}, "script it with server_tool="),
    ({"tool_calls": [("get_weather", {})]}, {"tools": [WEATHER], "tool_choice": {"type": "none"}},
     "tool_choice is 'none'"),
    ({"tool_calls": [("get_weather", {})]}, {"tools": [WEATHER, CLOCK],
                                             "tool_choice": {"type": "tool", "name": "get_time"}}, "forces 'get_time'"),
    ({}, {"tools": [WEATHER], "tool_choice": {"type": "any"}}, "calls no tool"),
    ({"server_tool": {"name": "web_search", "input": {"query": "q"}}}, {"tools": [WEATHER]},
     "does not enable it: its tools hold no web_search_* tool"),
])
def test_a_script_the_request_cannot_get_is_a_400_naming_it(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                             script: dict[str, Any], request_kw: dict[str, Any],
                                                             says: str) -> None:
    fake.reply("hi", when="Paris", **script)
    assert says in refused(client, **request_kw)


def test_a_refused_script_is_not_used_up(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(tool_calls=[("get_time", {})], times=1)
    refused(client, tools=[WEATHER])
    assert call(client, False, tools=[CLOCK])[0].content[0].name == "get_time"


@pytest.mark.parametrize(("kw", "says"), [
    ({"tool_calls": "get_time"}, "tool_calls= takes a list"),
    ({"tool_calls": [{"name": "t", "args": {}}]}, "unknown keys ['args']"),
    ({"tool_calls": [("t", [1])]}, "must be a mapping"),
    ({"tool_calls": [{"name": "t", "id": "no spaces"}]}, "id must be a string of letters"),
    ({"server_tool": {"name": "web_browse", "input": {}}}, "name must be one of"),
    ({"server_tool": {"name": "web_search", "input": {}}}, "a string 'query'"),
    ({"server_tool": {"name": "web_search", "input": {"query": "q"}, "results": [{"url": "u"}]}},
     "needs a string 'url' and 'title'"),
    ({"server_tool": {"name": "code_execution", "input": {"code": "1"}, "result": {"out": ""}}}, "a result is"),
])
def test_a_malformed_tool_script_raises_in_the_test(fake: FakeAnthropic, kw: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("(", r"\(")):
        fake.reply("x", **kw)


# -- the checks the real API makes --------------------------------------------------------------

USE = {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
                                        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}]}
BOTH = answer(("toolu_a", "21C"), ("toolu_b", "noon"))


@pytest.mark.parametrize(("kw", "message"), [
    ({"messages": [*ask(), USE, answer(("toolu_a", "21C"))]},
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_b. "
     "Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
    ({"messages": [*ask(), USE, *ask("go on")]},
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_a, toolu_b."),
    ({"messages": [*ask(), USE, answer(("toolu_a", "21C"), ("toolu_b", "noon"), ("toolu_c", "?"))]},
     "messages.2.content.2: unexpected `tool_use_id` found in `tool_result` blocks: toolu_c. Each `tool_result` "
     "block must have a corresponding `tool_use` block in the previous message."),
    ({"messages": [*ask(), answer(("toolu_a", "21C"))]},
     "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_a."),
    ({"messages": [*ask(), USE, {"role": "user", "content": [{"type": "text", "text": "here:"}, *BOTH["content"]]}]},
     "messages.2.content.1: `tool_result` blocks must come first"),
    ({"messages": [*ask(), USE, answer(("toolu_a", 21), ("toolu_b", "noon"))]},
     "messages.2.content.0.tool_result.content: Input should be a valid string or a valid list"),
    ({"messages": [*ask(), USE, answer(("toolu_a", [{"type": "audio"}]), ("toolu_b", "noon"))]},
     "messages.2.content.0.tool_result.content.0: Input tag 'audio' found using 'type' does not match any of the "
     "expected tags: 'text', 'image', 'search_result' or 'document'"),
    ({"tools": [{**WEATHER, "name": "get weather"}]},
     "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ({"tools": [{"name": "get_weather"}]}, "tools.0.custom.input_schema: Field required"),
    ({"tools": [{**WEATHER, "input_schema": {"type": "array"}}]},
     "tools.0.custom.input_schema.type: Input should be 'object'"),
    ({"tools": [WEATHER, {**CLOCK, "name": "get_weather"}]},
     "tools: Tool names must be unique. Found duplicate name: 'get_weather'"),
    ({"tools": [{**WEATHER, "call": "module:function"}]}, "tools.0.custom.call: Extra inputs are not permitted"),
    ({"tools": [{"type": "web_search_2025", "name": "web_search"}]},
     "tools.0: Input tag 'web_search_2025' found using 'type' does not match any of the expected tags: 'custom', "),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_time"}},
     "tool_choice.tool.name: Tool 'get_time' was not found in `tools`."),
    ({"tools": [], "tool_choice": {"type": "any"}},
     "tool_choice: `tool_choice` may only be specified while providing `tools`."),
    ({"tools": [WEATHER], "tool_choice": {"type": "any"}, "thinking": THINK},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}, "thinking": {"type": "adaptive"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({"tool_choice": {"type": "sometimes"}},
     "tool_choice: Input tag 'sometimes' found using 'type' does not match any of the expected tags: "
     "'auto', 'any', 'tool' or 'none'"),
])
def test_what_the_api_refuses_is_a_400_in_its_words(client: anthropic.Anthropic, kw: dict[str, Any],
                                                    message: str) -> None:
    assert refused(client, **{"tools": [WEATHER, CLOCK], **kw}).startswith(message)


def test_every_call_answered_first_in_the_next_turn_is_accepted(fake: FakeAnthropic,
                                                                 client: anthropic.Anthropic) -> None:
    after = {"role": "user", "content": [*BOTH["content"], {"type": "text", "text": "and tomorrow?"}]}
    msg, _ = call(client, False, tools=[WEATHER, CLOCK], messages=[*ask(), USE, after])
    assert msg.content[0].text == "Fake reply to: and tomorrow?"
    assert [r["tool_use_id"] for r in fake.requests[0].tool_results] == ["toolu_a", "toolu_b"]


# -- thinking with tools ------------------------------------------------------------------------

def test_thinking_then_tool_use_round_trip(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(tool_calls=[("get_weather", {"city": "Paris"})], times=1)
    fake.reply("Sunny.", when="21C")
    first, events = call(client, True, tools=[WEATHER], thinking=THINK)
    thinking, use = first.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Fake thinking before calling get_weather")
    assert thinking.signature and use.type == "tool_use" and first.stop_reason == "tool_use"
    turns = [*ask(), as_param(first), answer((use.id, "21C"))]
    final, _ = call(client, True, tools=[WEATHER], thinking=THINK, messages=turns)
    assert final.content[-1].text == "Sunny."

    dropped = [*ask(), {"role": "assistant", "content": as_param(first)["content"][1:]}, answer((use.id, "21C"))]
    assert refused(client, tools=[WEATHER], thinking=THINK, messages=dropped).startswith(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When "
        "`thinking` is enabled, a final `assistant` message must start with a thinking block")
    call(client, False, tools=[WEATHER], messages=dropped)  # thinking off: no such rule
    changed = as_param(first)
    changed["content"][0]["signature"] = "forged"
    assert refused(client, tools=[WEATHER], thinking=THINK, messages=[*ask(), changed, answer((use.id, "21C"))]) == (
        "messages.1.content.0: Invalid `signature` in `thinking` block")


# -- server tools -------------------------------------------------------------------------------

def test_web_search_streams_typed_blocks_and_counts_its_use(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    results = [{"url": "https://tides.example/a", "title": "Tide tables", "page_age": "2 days"},
               {"url": "https://tides.example/b", "title": "Moon"}]
    fake.reply("High tide is at noon.", server_tool={"name": "web_search", "input": {"query": "tide times"},
                                                     "results": results})
    msg, events = call(client, True, tools=[WEB_SEARCH])
    assert [e.snapshot for e in events if e.type == "input_json"][-1] == {"query": "tide times"}
    use, found, text = msg.content
    assert isinstance(use, anthropic.types.ServerToolUseBlock) and use.id.startswith("srvtoolu_")
    assert (use.name, use.input) == ("web_search", {"query": "tide times"})
    assert isinstance(found, anthropic.types.WebSearchToolResultBlock) and found.tool_use_id == use.id
    assert [(r.url, r.title, r.page_age) for r in found.content] == [
        ("https://tides.example/a", "Tide tables", "2 days"), ("https://tides.example/b", "Moon", None)]
    assert all(isinstance(r, anthropic.types.WebSearchResultBlock) and r.encrypted_content for r in found.content)
    assert (text.text, msg.stop_reason) == ("High tide is at noon.", "end_turn")
    usage = msg.usage.server_tool_use
    assert isinstance(usage, anthropic.types.ServerToolUsage)
    assert (usage.web_search_requests, usage.web_fetch_requests) == (1, 0)


def test_web_fetch_and_code_execution_parse_as_typed_blocks(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Done.", server_tool=[
        {"name": "web_fetch", "input": {"url": "https://tides.example"}, "result": {"text": "Noon.", "title": "T"}},
        {"name": "code_execution", "input": {"code": "print(6*7)"}, "result": {"stdout": "42\n"}},
        {"name": "bash_code_execution", "input": {"command": "ls"}, "error": "unavailable"},
        {"name": "web_search", "input": {"query": "q"}, "error": "max_uses_exceeded"},
    ])
    tools = [{"type": "web_fetch_20250910", "name": "web_fetch"}, WEB_SEARCH,
             {"type": "code_execution_20250825", "name": "code_execution"}]
    msg, _ = call(client, False, tools=tools)
    types = anthropic.types
    fetched, ran, bash, search = msg.content[1], msg.content[3], msg.content[5], msg.content[7]
    assert isinstance(fetched, types.WebFetchToolResultBlock) and isinstance(fetched.content, types.WebFetchBlock)
    assert (fetched.content.url, fetched.content.content.source.data, fetched.content.content.title) == (
        "https://tides.example", "Noon.", "T")
    assert isinstance(ran, types.CodeExecutionToolResultBlock)
    assert (ran.content.stdout, ran.content.return_code) == ("42\n", 0)
    assert isinstance(bash, types.BashCodeExecutionToolResultBlock) and bash.content.error_code == "unavailable"
    assert search.content.type == "web_search_tool_result_error"
    assert [b.type for b in msg.content[::2]] == ["server_tool_use"] * 4 + ["text"]
    assert (msg.usage.server_tool_use.web_search_requests, msg.usage.server_tool_use.web_fetch_requests) == (0, 1)
