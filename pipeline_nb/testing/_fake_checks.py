"""What the real Messages API refuses with a 400 ``invalid_request_error``, and how it says it.

Private to :mod:`pipeline_nb.testing._fake_anthropic`. :func:`request_problem` returns the
message of the first problem found, or None. It checks the required fields, ``thinking``
(``budget_tokens`` >= 1,024 and below ``max_tokens``), ``output_config.effort``, documents
and images (source, media type, base64 data that is what its media type says), the
``thinking`` blocks sent back in assistant turns (each must carry a signature the fake
issued for that very thinking text), ``cache_control`` (type, ttl, at most 4),
``diagnostics``, and tools:

- ``tools``: a client tool has a ``name`` matching ``^[a-zA-Z0-9_-]{1,64}$``, an
  ``input_schema`` whose ``type`` is ``"object"`` and no unknown keys; a typed tool has a
  known ``type``; names are unique;
- ``tool_choice``: ``auto | any | tool | none``; ``tool`` names a tool of ``tools``; ``any``
  and ``tool`` need tools and are refused with thinking on;
- tool turns: every ``tool_use`` of an assistant turn is answered by a ``tool_result`` in
  the next (user) turn, which answers nothing else and puts them before any other block;
  a ``tool_result``'s ``content`` is a string or a list of text, image, document and
  search_result blocks (images and documents checked as above); with thinking on, the
  assistant turn whose tool calls the last user turn answers starts with its thinking.

:func:`count_tokens_problem` checks a ``/v1/messages/count_tokens`` body the same way, but it
needs no ``max_tokens`` and refuses any field that endpoint does not take (``max_tokens:
Extra inputs are not permitted``).

Messages follow the real API's wording where it is known.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional

from ._fake_content import decode_base64, prompt_blocks

#: Is ``(thinking, signature)`` a pair the fake issued?
Issued = Callable[[str, str], bool]

REQUIRED = ("model", "max_tokens", "messages")
#: What ``/v1/messages/count_tokens`` takes (``MessageCountTokensParams`` in SDK 2.14).
COUNT_TOKENS_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control",
                                 "output_config", "speed"})
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: The keys of a client tool (``ToolParam`` in SDK 2.14).
_CLIENT_TOOL_KEYS = frozenset({"name", "input_schema", "type", "description", "cache_control", "strict",
                               "eager_input_streaming", "defer_loading", "allowed_callers", "input_examples"})
#: The typed (server and Anthropic-defined) tools of SDK 2.14's ``ToolUnionParam``.
TYPED_TOOLS = ("bash_20250124", "code_execution_20250522", "code_execution_20250825", "code_execution_20260120",
               "code_execution_20260521", "browser_toolset_20260801", "memory_20250818", "computer_toolset_20260801",
               "text_editor_20250124", "text_editor_20250429", "text_editor_20250728", "web_search_20250305",
               "web_fetch_20250910", "web_search_20260209", "web_fetch_20260209", "web_fetch_20260309",
               "web_search_20260318", "web_fetch_20260318", "tool_search_tool_bm25_20251119",
               "tool_search_tool_regex_20251119")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_TOOL_RESULT_CONTENT = ("text", "image", "search_result", "document")
MIN_BUDGET = 1024
EFFORTS = ("low", "medium", "high", "xhigh", "max")
MAX_CACHE_BREAKPOINTS = 4
_THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
_DISPLAYS = (None, "summarized", "omitted")
_IMAGE_TYPES = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",),
                "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",)}
_DOCUMENT_SOURCES = ("base64", "text", "content", "url", "file")
_IMAGE_SOURCES = ("base64", "url", "file")
_TTLS = ("5m", "1h")
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"


def _tags(values: tuple[Any, ...]) -> str:
    quoted = [repr(v) for v in values if v is not None]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def request_problem(body: dict[str, Any], issued: Issued) -> Optional[str]:
    """Why the real API would refuse ``body``, or None."""
    for name in REQUIRED:
        if name not in body:
            return f"{name}: Field required"
    if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    return _prompt_problem(body, issued)


def count_tokens_problem(body: dict[str, Any], issued: Issued) -> Optional[str]:
    """Why the real API would refuse ``body`` at ``/v1/messages/count_tokens``, or None: a field it
    does not take (``max_tokens``, ``stop_sequences``, ``stream``, ...), else what a message is
    refused for, but for ``max_tokens``."""
    for name in ("model", "messages"):
        if name not in body:
            return f"{name}: Field required"
    extra = sorted(set(body) - COUNT_TOKENS_FIELDS)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    return _prompt_problem(body, issued)


def _prompt_problem(body: dict[str, Any], issued: Issued) -> Optional[str]:
    """The checks a message and a token count share."""
    if not isinstance(body["messages"], list):
        return "messages: Input should be a valid list"
    for check in (_thinking_problem, _effort_problem, _tools_problem, _tool_choice_problem, _cache_problem,
                  _diagnostics_problem):
        problem = check(body)
        if problem:
            return problem
    return _content_problem(body, issued) or _tool_turns_problem(body)


def _thinking_problem(body: dict[str, Any]) -> Optional[str]:
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in _THINKING_TYPES:
        return (f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
                f"{_tags(_THINKING_TYPES)}")
    if thinking.get("display") not in _DISPLAYS:
        return f"thinking.{kind}.display: Input should be {_tags(_DISPLAYS)}"
    if kind != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if budget is None:
        return "thinking.enabled.budget_tokens: Field required"
    if not _is_int(budget):
        return "thinking.enabled.budget_tokens: Input should be a valid integer"
    if budget < MIN_BUDGET:
        return f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
    if "max_tokens" in body and budget >= body["max_tokens"]:  # count_tokens takes no max_tokens
        return ("`max_tokens` must be greater than `thinking.budget_tokens`. "
                f"Please consult our documentation at {_DOCS}")
    return None


def _effort_problem(body: dict[str, Any]) -> Optional[str]:
    config = body.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return "output_config: Input should be a valid dictionary"
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        return f"output_config.effort: Input should be {_tags(EFFORTS)}"
    return None


def _cache_problem(body: dict[str, Any]) -> Optional[str]:
    marks = [b.cache_control for b in prompt_blocks(body) if b.cache_control is not None]
    for cc in marks:
        if cc.get("type") != "ephemeral":
            return f"cache_control.type: Input should be 'ephemeral', not {cc.get('type')!r}"
        if cc.get("ttl", "5m") not in _TTLS:
            return f"cache_control.ttl: Input should be {_tags(_TTLS)}"
    if len(marks) > MAX_CACHE_BREAKPOINTS:
        return f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}."
    return None


def _diagnostics_problem(body: dict[str, Any]) -> Optional[str]:
    if "diagnostics" not in body or body["diagnostics"] is None:
        return None
    diagnostics = body["diagnostics"]
    if not isinstance(diagnostics, dict):
        return "diagnostics: Input should be a valid dictionary"
    previous = diagnostics.get("previous_message_id")
    if previous is not None and not isinstance(previous, str):
        return "diagnostics.previous_message_id: Input should be a valid string"
    return None


def _blocks(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for i, msg in enumerate(body["messages"]):
        content = msg.get("content") if isinstance(msg, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict):
                yield f"messages.{i}.content.{j}", str(msg.get("role")), block


def _content_problem(body: dict[str, Any], issued: Issued) -> Optional[str]:
    for where, role, block in _blocks(body):
        kind = block.get("type")
        if kind == "thinking" and role == "assistant":
            problem = _signature_problem(where, block, issued)
        elif kind == "document":
            problem = _source_problem(f"{where}.document", block, _DOCUMENT_SOURCES)
        elif kind == "image":
            problem = _source_problem(f"{where}.image", block, _IMAGE_SOURCES)
        elif kind == "tool_result":
            problem = _tool_result_problem(f"{where}.tool_result", block)
        else:
            problem = None
        if problem:
            return problem
    return None


def _signature_problem(where: str, block: dict[str, Any], issued: Issued) -> Optional[str]:
    thinking, signature = block.get("thinking"), block.get("signature")
    if not isinstance(signature, str):
        return f"{where}.thinking.signature: Field required"
    if not isinstance(thinking, str) or not issued(thinking, signature):
        return f"{where}: Invalid `signature` in `thinking` block"
    return None


def _source_problem(where: str, block: dict[str, Any], sources: tuple[str, ...]) -> Optional[str]:
    source = block.get("source")
    if not isinstance(source, dict):
        return f"{where}.source: Field required"
    stype = source.get("type")
    if stype not in sources:
        return (f"{where}.source: Input tag {stype!r} found using 'type' does not match any of the "
                f"expected tags: {_tags(sources)}")
    media = source.get("media_type")
    if stype == "text":
        if media != "text/plain":
            return f"{where}.source.text.media_type: Input should be 'text/plain'"
        if not isinstance(source.get("data"), str):
            return f"{where}.source.text.data: Input should be a valid string"
    if stype != "base64":
        return None
    image = where.endswith(".image")
    allowed = tuple(_IMAGE_TYPES) if image else ("application/pdf",)
    if media not in allowed:
        return f"{where}.source.base64.media_type: Input should be {_tags(allowed)}"
    data = decode_base64(source.get("data"))
    if data is None:
        return f"{where}.source.base64.data: Input should be valid base64 data"
    if not image and not data.startswith(b"%PDF-"):
        return f"{where}.source.base64.data: The PDF specified was not valid."
    if image and not (data.startswith(_IMAGE_TYPES[media]) and (media != "image/webp" or data[8:12] == b"WEBP")):
        return f"{where}.source.base64.data: Image does not match the provided media type {media}"
    return None


# -- tools -----------------------------------------------------------------------------------

def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _tools_problem(body: dict[str, Any]) -> Optional[str]:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"tools.{i}: Input should be a valid dictionary"
        kind = tool.get("type")
        if kind in (None, "custom"):
            problem = _client_tool_problem(f"tools.{i}.custom", tool)
            if problem:
                return problem
        elif kind not in TYPED_TOOLS:
            return (f"tools.{i}: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
                    f"{_tags(('custom',) + TYPED_TOOLS)}")
        elif not isinstance(tool.get("name"), str):
            return f"tools.{i}.{kind}.name: Field required"
        if tool["name"] in names:
            return f"tools: Tool names must be unique. Found duplicate name: {tool['name']!r}"
        names.add(tool["name"])
    return None


def _client_tool_problem(where: str, tool: dict[str, Any]) -> Optional[str]:
    for key in tool:
        if key not in _CLIENT_TOOL_KEYS:
            return f"{where}.{key}: Extra inputs are not permitted"
    name = tool.get("name")
    if name is None:
        return f"{where}.name: Field required"
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        return f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
    if "description" in tool and not isinstance(tool["description"], str):
        return f"{where}.description: Input should be a valid string"
    schema = tool.get("input_schema")
    if schema is None:
        return f"{where}.input_schema: Field required"
    if not isinstance(schema, dict):
        return f"{where}.input_schema: Input should be a valid dictionary"
    if schema.get("type") != "object":
        return f"{where}.input_schema.type: Input should be 'object'"
    return None


def _tool_choice_problem(body: dict[str, Any]) -> Optional[str]:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _TOOL_CHOICES:
        return (f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
                f"{_tags(_TOOL_CHOICES)}")
    if kind not in ("any", "tool"):
        return None
    tools = body.get("tools") or []
    if not tools:
        return "tool_choice: `tool_choice` may only be specified while providing `tools`."
    if _thinking_on(body):
        return "Thinking may not be enabled when tool_choice forces tool use."
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            return "tool_choice.tool.name: Field required"
        if name not in {t.get("name") for t in tools if isinstance(t, dict)}:
            return f"tool_choice.tool.name: Tool {name!r} was not found in `tools`."
    return None


def _tool_result_problem(where: str, block: dict[str, Any]) -> Optional[str]:
    if not isinstance(block.get("tool_use_id"), str):
        return f"{where}.tool_use_id: Field required"
    if "is_error" in block and not isinstance(block["is_error"], bool):
        return f"{where}.is_error: Input should be a valid boolean"
    content = block.get("content")
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}.content: Input should be a valid string or a valid list"
    for k, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        here = f"{where}.content.{k}"
        if kind not in _TOOL_RESULT_CONTENT:
            return (f"{here}: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
                    f"{_tags(_TOOL_RESULT_CONTENT)}")
        assert isinstance(item, dict)
        if kind == "text" and not isinstance(item.get("text"), str):
            return f"{here}.text.text: Field required"
        if kind in ("image", "document"):
            sources = _IMAGE_SOURCES if kind == "image" else _DOCUMENT_SOURCES
            problem = _source_problem(f"{here}.{kind}", item, sources)
            if problem:
                return problem
    return None


def _of_type(content: Any, kind: str) -> list[tuple[int, dict[str, Any]]]:
    """``(index, block)`` for each block of ``content`` whose type is ``kind``."""
    if not isinstance(content, list):
        return []
    return [(j, b) for j, b in enumerate(content) if isinstance(b, dict) and b.get("type") == kind]


def _tool_turns_problem(body: dict[str, Any]) -> Optional[str]:
    messages = [m if isinstance(m, dict) else {} for m in body["messages"]]
    for i, msg in enumerate(messages):
        uses = _of_type(msg.get("content"), "tool_use")
        results = _of_type(msg.get("content"), "tool_result")
        if msg.get("role") == "assistant":
            if results:
                return f"messages.{i}.content.{results[0][0]}: `tool_result` blocks can only be in `user` messages"
            nxt = messages[i + 1] if i + 1 < len(messages) else {}
            answered = {b.get("tool_use_id") for _, b in _of_type(nxt.get("content"), "tool_result")}
            missing = [b.get("id") for _, b in uses if b.get("id") not in answered]
            if missing:
                return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                        f"{', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                        f"`tool_result` block in the next message.")
            continue
        if not results:
            continue
        if uses:
            return f"messages.{i}.content.{uses[0][0]}: `tool_use` blocks can only be in `assistant` messages"
        if [j for j, _ in results] != list(range(len(results))):
            late = next(j for n, (j, _) in enumerate(results) if j != n)
            return (f"messages.{i}.content.{late}: `tool_result` blocks must come first in the `content` of a "
                    f"`user` message, before any other block")
        previous = messages[i - 1] if i > 0 and messages[i - 1].get("role") == "assistant" else {}
        asked = {b.get("id") for _, b in _of_type(previous.get("content"), "tool_use")}
        for j, block in results:
            if block.get("tool_use_id") not in asked:
                return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        f"`tool_use` block in the previous message.")
    return _thinking_first_problem(body, messages)


def _thinking_first_problem(body: dict[str, Any], messages: list[dict[str, Any]]) -> Optional[str]:
    """With thinking on, the assistant turn the last user turn's tool results answer must
    open with its thinking block."""
    if not _thinking_on(body) or len(messages) < 2 or not _of_type(messages[-1].get("content"), "tool_result"):
        return None
    i = len(messages) - 2
    content = messages[i].get("content")
    first = content[0].get("type") if isinstance(content, list) and content and isinstance(content[0], dict) \
        else "text"
    if first in ("thinking", "redacted_thinking"):
        return None
    return (f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
            "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
            "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
            "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
            "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
