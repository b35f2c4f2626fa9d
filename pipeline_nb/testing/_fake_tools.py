"""Tool use in a scripted reply of :mod:`pipeline_nb.testing._fake_anthropic`, in the shapes
of the real Messages API (anthropic SDK 2.14's types).

Private. Two kinds of tool use:

- client tool calls (``reply(tool_calls=...)``): one ``tool_use`` block (``id``, ``name``,
  ``input``) per call, after the text; the reply stops with ``"tool_use"`` and the caller
  answers each call with a ``tool_result`` in its next user turn;
- server tools (``reply(server_tool=...)``), which the API runs itself: a
  ``server_tool_use`` block and its result block (``web_search_tool_result``,
  ``web_fetch_tool_result``, ``code_execution_tool_result`` or
  ``bash_code_execution_tool_result``) before the text; successful web searches and
  fetches are counted in ``usage.server_tool_use``.

An id the script does not give is ``toolu_`` (``srvtoolu_`` for a server tool) plus a hash
of the request's messages and the call's place in the reply: a conversation gets the same
ids on every run, whatever order concurrent requests arrive in, so a cassette re-records
byte-identically. A tool's input streams as its JSON (``json.dumps``) cut every
``JSON_PIECE`` characters, so a client sees partial parses.

A script that the request cannot get (a tool it does not send, a server tool it does not
enable, a call its ``tool_choice`` forbids, no call where it forces one) is a test's
mistake: :func:`script_mismatch` says what is wrong, and the fake answers with that 400.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Optional, Union

from ._fake_blocks import Block

#: Characters of a tool input's JSON per ``input_json_delta``.
JSON_PIECE = 12
#: ``retrieved_at`` of a fetched page when the script gives none (fixed, so re-records match).
FETCHED_AT = "2026-01-01T00:00:00Z"

#: What ``reply(tool_calls=...)`` takes: ``{"name", "input", "id"?}`` mappings or ``(name, input)`` pairs.
ToolCallArg = Optional[Sequence[Union[Mapping[str, Any], tuple[str, Mapping[str, Any]]]]]
#: What ``reply(server_tool=...)`` takes: one mapping or a list of them.
ServerToolArg = Union[None, Mapping[str, Any], Sequence[Mapping[str, Any]]]

_ID = re.compile(r"[a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class _ServerTool:
    type_prefix: str  # the request's ``tools`` must hold a tool whose type starts with it
    input_key: str  # the input a call must give
    result_keys: frozenset[str]  # what a script's ``result`` may hold (web_search: each of ``results``)
    usage_key: Optional[str]  # its counter in ``usage.server_tool_use``


_SERVER_TOOLS = {
    "web_search": _ServerTool("web_search_", "query", frozenset({"url", "title", "page_age"}), "web_search_requests"),
    "web_fetch": _ServerTool("web_fetch_", "url", frozenset({"text", "title", "retrieved_at"}), "web_fetch_requests"),
    "code_execution": _ServerTool("code_execution_", "code", frozenset({"stdout", "stderr", "return_code"}), None),
    "bash_code_execution": _ServerTool("code_execution_", "command",
                                       frozenset({"stdout", "stderr", "return_code"}), None),
}


@dataclass(frozen=True)
class ToolCall:
    """A scripted client tool call; ``id`` None means the fake derives one."""

    name: str
    input: dict[str, Any]
    id: Optional[str] = None


@dataclass(frozen=True)
class ServerCall:
    """A scripted server tool use: its input and what the API found (``results`` for a
    web search, ``result`` otherwise), or the ``error`` code it failed with."""

    name: str
    input: dict[str, Any]
    id: Optional[str] = None
    results: tuple[dict[str, Any], ...] = ()
    result: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None


def _fail(msg: str) -> NoReturn:
    raise ValueError(msg)


def _check_id(value: Any, what: str) -> Optional[str]:
    if value is not None and not (isinstance(value, str) and _ID.fullmatch(value)):
        _fail(f"{what}: id must be a string of letters, digits, '_' and '-', got {value!r}")
    return value


def make_tool_calls(arg: ToolCallArg) -> tuple[ToolCall, ...]:
    """``reply(tool_calls=...)`` checked and normalised; ValueError names what is wrong."""
    if arg is None:
        return ()
    if isinstance(arg, (str, Mapping)) or not isinstance(arg, Sequence):
        _fail(f"tool_calls= takes a list of {{'name', 'input'}} mappings or (name, input) pairs, got {arg!r}")
    calls: list[ToolCall] = []
    for item in arg:
        if isinstance(item, tuple) and len(item) == 2:
            name, tool_input, call_id = item[0], item[1], None
        elif isinstance(item, Mapping):
            extra = set(item) - {"name", "input", "id"}
            if extra:
                _fail(f"tool_calls: unknown keys {sorted(extra)} in {item!r}; a call has 'name', 'input' and 'id'")
            name, tool_input, call_id = item.get("name"), item.get("input", {}), item.get("id")
        else:
            _fail(f"tool_calls: each call is a {{'name', 'input'}} mapping or a (name, input) pair, got {item!r}")
        if not isinstance(name, str) or not name:
            _fail(f"tool_calls: a call needs a tool name (a non-empty string), got {name!r}")
        if not isinstance(tool_input, Mapping):
            _fail(f"tool_calls: the input of {name!r} must be a mapping (a JSON object), got {tool_input!r}")
        calls.append(ToolCall(name, dict(tool_input), _check_id(call_id, f"tool_calls: {name!r}")))
    return tuple(calls)


def make_server_calls(arg: ServerToolArg) -> tuple[ServerCall, ...]:
    """``reply(server_tool=...)`` checked and normalised; ValueError names what is wrong."""
    if arg is None:
        return ()
    items = [arg] if isinstance(arg, Mapping) else list(arg)
    return tuple(_server_call(item) for item in items)


def _server_call(item: Any) -> ServerCall:
    if not isinstance(item, Mapping):
        _fail(f"server_tool= takes a mapping (or a list of them), got {item!r}")
    name = item.get("name")
    spec = _SERVER_TOOLS.get(name) if isinstance(name, str) else None
    if spec is None:
        _fail(f"server_tool: name must be one of {sorted(_SERVER_TOOLS)}, got {name!r}")
    allowed = {"name", "input", "id", "error", "results" if name == "web_search" else "result"}
    if set(item) - allowed:
        _fail(f"server_tool {name!r}: unknown keys {sorted(set(item) - allowed)}; it takes {sorted(allowed)}")
    tool_input = item.get("input")
    if not isinstance(tool_input, Mapping) or not isinstance(tool_input.get(spec.input_key), str):
        _fail(f"server_tool {name!r}: input must be a mapping with a string {spec.input_key!r}, got {tool_input!r}")
    error = item.get("error")
    if error is not None and not isinstance(error, str):
        _fail(f"server_tool {name!r}: error must be an error code string, e.g. 'unavailable', got {error!r}")
    found = item.get("results", []) if name == "web_search" else [item.get("result", {})]
    if not isinstance(found, list):
        _fail(f"server_tool 'web_search': results must be a list of {{'url', 'title'}} mappings, got {found!r}")
    for r in found:
        if not isinstance(r, Mapping) or set(r) - spec.result_keys:
            _fail(f"server_tool {name!r}: a result is a mapping of {sorted(spec.result_keys)}, got {r!r}")
        if name == "web_search" and not all(isinstance(r.get(k), str) for k in ("url", "title")):
            _fail(f"server_tool 'web_search': each result needs a string 'url' and 'title', got {dict(r)!r}")
    call_id = _check_id(item.get("id"), f"server_tool {name!r}")
    results = tuple(dict(r) for r in found) if name == "web_search" else ()
    return ServerCall(name, dict(tool_input), call_id, results, {} if name == "web_search" else dict(found[0]), error)


# -- what a request allows -------------------------------------------------------------------

def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def script_mismatch(calls: tuple[ToolCall, ...], server_calls: tuple[ServerCall, ...], body: dict[str, Any],
                    when: Any) -> Optional[str]:
    """Why a reply scripted with ``calls`` and ``server_calls`` cannot answer ``body``, or None."""
    if not calls and not server_calls:
        return _forced_without_call(body, when)
    head = f"FakeAnthropic: the reply scripted with when={when!r}"
    tools = _tools(body)
    client = [t.get("name") for t in tools if t.get("type") in (None, "custom")]
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    for call in calls:
        if call.name not in client:
            hint = (" It is a server tool: script it with server_tool=." if call.name in _SERVER_TOOLS
                    else " Script a tool the request sends, or send that tool.")
            sent = f"the request's tools are {client}" if client else "the request sends no client tools"
            return f"{head} calls the tool {call.name!r}, but {sent}.{hint}"
    for server in server_calls:
        prefix = _SERVER_TOOLS[server.name].type_prefix
        if not any(str(t.get("type", "")).startswith(prefix) for t in tools):
            return (f"{head} uses the server tool {server.name!r}, but the request does not enable it: "
                    f"its tools hold no {prefix}* tool.")
    kind = choice.get("type")
    if kind == "none":
        return f"{head} uses tools, but the request's tool_choice is 'none'."
    if kind == "tool" and any(c.name != choice.get("name") for c in calls):
        return f"{head} calls {[c.name for c in calls]}, but the request's tool_choice forces {choice.get('name')!r}."
    if choice.get("disable_parallel_tool_use") is True and len(calls) > 1:
        return f"{head} makes {len(calls)} tool calls, but the request sets disable_parallel_tool_use."
    return None


def _forced_without_call(body: dict[str, Any], when: Any) -> Optional[str]:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return (f"FakeAnthropic: the reply scripted with when={when!r} calls no tool, but the request's "
                f"tool_choice {choice!r} forces tool use. Script tool_calls= for it.")
    return None


# -- the blocks ------------------------------------------------------------------------------

def _call_id(prefix: str, body: dict[str, Any], index: int) -> str:
    conversation = json.dumps(body.get("messages"), sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{prefix}\0{index}\0{conversation}".encode()).hexdigest()
    return prefix + digest[:24]


def json_pieces(tool_input: dict[str, Any]) -> list[str]:
    """The ``partial_json`` of each ``input_json_delta`` that streams ``tool_input``."""
    text = json.dumps(tool_input, ensure_ascii=False)
    return [text[i:i + JSON_PIECE] for i in range(0, len(text), JSON_PIECE)]


def tool_use_blocks(calls: tuple[ToolCall, ...], body: dict[str, Any]) -> list[Block]:
    """One ``tool_use`` block per call."""
    return [Block("tool_use", json_pieces(c.input), fields={
        "id": c.id or _call_id("toolu_", body, i), "name": c.name, "input": c.input}) for i, c in enumerate(calls)]


def server_blocks(calls: tuple[ServerCall, ...], body: dict[str, Any]) -> list[Block]:
    """A ``server_tool_use`` block and its result block per call."""
    blocks: list[Block] = []
    for i, call in enumerate(calls):
        call_id = call.id or _call_id("srvtoolu_", body, i)
        blocks.append(Block("server_tool_use", json_pieces(call.input),
                            fields={"id": call_id, "name": call.name, "input": call.input}))
        blocks.append(Block(f"{call.name}_tool_result", [],
                            fields={"tool_use_id": call_id, "content": _result_content(call)}))
    return blocks


def _result_content(call: ServerCall) -> Any:
    if call.error is not None:
        return {"type": f"{call.name}_tool_result_error", "error_code": call.error}
    if call.name == "web_search":
        return [{"type": "web_search_result", "url": r["url"], "title": r["title"],
                 "encrypted_content": _opaque(r["url"]), "page_age": r.get("page_age")} for r in call.results]
    if call.name == "web_fetch":
        page = call.result
        document = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                   "data": page.get("text", "")}, "title": page.get("title")}
        return {"type": "web_fetch_result", "url": call.input["url"],
                "retrieved_at": page.get("retrieved_at", FETCHED_AT), "content": document}
    out = call.result
    return {"type": f"{call.name}_result", "stdout": out.get("stdout", ""), "stderr": out.get("stderr", ""),
            "return_code": out.get("return_code", 0), "content": []}


def _opaque(url: str) -> str:
    """A stand-in for the API's encrypted page content: opaque, and the same for one url."""
    return "fake_enc_" + base64.b64encode(hashlib.sha256(b"fake page\0" + url.encode()).digest()).decode()


def server_usage(calls: tuple[ServerCall, ...]) -> Optional[dict[str, int]]:
    """``usage.server_tool_use`` for ``calls`` (successful searches and fetches), or None
    when the reply uses no server tool."""
    if not calls:
        return None
    counts = {"web_search_requests": 0, "web_fetch_requests": 0}
    for call in calls:
        key = _SERVER_TOOLS[call.name].usage_key
        if key is not None and call.error is None:
            counts[key] += 1
    return counts
