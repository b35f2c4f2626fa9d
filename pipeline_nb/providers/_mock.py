"""The mock provider: offline, deterministic, and marked as mock in its text."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..content import Block, Citation, Reply, Text, Thinking, ToolUse, Usage
from .._rough_tokens import block_tokens, text_tokens
from .._llm import CITATION, TEXT, THINKING, TOOL_INPUT, TOOL_USE, BatchOutcome, BatchStatus, Cancelled, CancelToken, Emit, LLMRequest, no_emit

DEFAULT_DELAY = 0.02
"""Seconds between deltas, so streaming is visible."""

_TOKENS = re.compile(r"\S+\s*|\s+")


def mock_reply(request: LLMRequest) -> str:
    """The reply: ``mock_response`` if set, else a fixed text built from the prompt."""
    scripted = request.options.get("mock_response")
    if scripted is not None:
        return scripted
    prompt = " ".join(request.prompt.split())
    if len(prompt) > 160:
        prompt = prompt[:157] + "..."
    return (
        f"[mock {request.model}] You asked: {prompt}\n\n"
        "This reply comes from the offline mock provider, so it costs nothing and is the same "
        "every time. Set provider: claude and ANTHROPIC_API_KEY to ask Claude instead."
    )


def mock_thinking(request: LLMRequest) -> str:
    """The thinking a request that asks for it gets (none otherwise); ``display: omitted`` hides it."""
    thinking = request.params.get("thinking") or {}
    if thinking.get("type") not in ("enabled", "adaptive"):
        return ""
    if thinking.get("display") == "omitted":
        return ""
    return f"[mock thinking] The question is: {' '.join(request.prompt.split())[:80]}. I answer it plainly."


def _signature(thought: list[str]) -> str:
    return "mock-signature-" + hashlib.sha256("".join(thought).encode()).hexdigest()[:16]


def mock_tool_call(request: LLMRequest) -> ToolUse | None:
    """The tool call the mock makes: with tools and no tool result yet, it calls the first tool that
    runs in the kernel (or the one ``tool_choice`` names) once, its input made from the schema and
    the prompt's last word; once results came back it answers with them."""
    tools = [t for t in request.params.get("tools") or () if "input_schema" in t]
    choice = request.params.get("tool_choice") or {}
    if not tools or choice.get("type") == "none" or _tool_results(request):
        return None
    tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    words = re.findall(r"[\w.-]+", request.prompt)
    word = words[-1] if words else "example"
    schema = tool["input_schema"]
    required = schema.get("required", ())
    arguments = {name: _sample(prop, word) for name, prop in (schema.get("properties") or {}).items()
                 if name in required}
    digest = hashlib.sha256(json.dumps([tool["name"], arguments], sort_keys=True).encode()).hexdigest()[:12]
    return ToolUse(f"toolu_mock_{digest}", tool["name"], arguments)


def _sample(schema: Mapping[str, Any], word: str) -> Any:
    """A value of ``schema``: its default, first enum value, or a plain one of its type."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    plain = {"integer": schema.get("minimum", 1), "number": float(schema.get("minimum", 1)), "boolean": True,
             "array": [], "object": {}, "null": None}
    return plain.get(kind, word) if kind != "string" else word


def _tool_results(request: LLMRequest) -> list[Mapping[str, Any]]:
    content = request.messages[-1]["content"]
    return [b for b in content if isinstance(b, Mapping) and b.get("type") == "tool_result"] if isinstance(
        content, list) else []


def _answer_with_results(request: LLMRequest) -> str:
    """The final reply after tools ran: what each returned."""
    parts = []
    for block in _tool_results(request):
        content = block.get("content")
        if isinstance(content, list):
            content = " ".join(b.get("text", f"[{b.get('type')}]") for b in content)
        content = " ".join(str(content).split())
        parts.append(f"{'an error' if block.get('is_error') else 'this'}: {content[:157] + '...' if len(content) > 160 else content}")
    return f"[mock {request.model}] The tools returned " + "; ".join(parts) + "."


def mock_citation(request: LLMRequest) -> Citation | None:
    """The passage the mock cites: the first sentence of the first attached document that allows
    citations (a text document), or its first page (a PDF)."""
    content = request.messages[-1]["content"]
    documents = [b for b in content if isinstance(b, dict) and b.get("type") == "document"] if isinstance(
        content, list) else []
    for index, document in enumerate(documents):
        if not (document.get("citations") or {}).get("enabled"):
            continue
        title, source = document.get("title"), document.get("source") or {}
        if source.get("type") == "text":
            text = source.get("data", "")
            end = next((i + 1 for i, c in enumerate(text) if c in ".!?\n"), len(text))
            return Citation(text[:end].strip(), index, title, "char_location", 0, end)
        return Citation("(page 1)", index, title, "page_location", 1, 2)
    return None


def _words(text: str) -> int:
    """The mock's tokens: words with their trailing space, as it streams and counts them."""
    return len(_TOKENS.findall(text))


def _other_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks of a message that are not text (``LLMRequest.prompt`` holds its text)."""
    return [] if isinstance(content, str) else [b for b in content if b.get("type") != "text"]


def _quoted(citation: Citation) -> str:
    return f" The attached {citation.document_title or 'document'} says: {citation.cited_text}"


class MockProvider:
    """Streams :func:`mock_reply` word by word, ``mock_delay`` seconds apart."""

    name = "mock"
    counts_exactly = False
    """``count_tokens`` is the mock's own estimate, not a tokenizer's."""

    def check(self, request: LLMRequest) -> None:
        """The mock needs nothing."""

    def count_tokens(self, request: LLMRequest) -> int:
        """An offline estimate, the same every time: a token a word of the last user message's text (what
        the mock's replies report as ``input_tokens``), of the system prompt and of earlier turns; other
        blocks (attachments, tool calls and results) and tool definitions as ``_rough_tokens`` counts them."""
        system = request.system
        tokens = _words(system) if isinstance(system, str) else sum(_words(b.get("text", "")) for b in system or ())
        tokens += text_tokens(json.dumps(request.params["tools"], default=str)) if request.params.get("tools") else 0
        *earlier, last = request.messages
        for content in [m["content"] for m in earlier] + [_other_blocks(last["content"])]:
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            tokens += sum(_words(b.get("text", "")) if b.get("type") == "text" else block_tokens(b) for b in blocks)
        return tokens + _words(request.prompt)

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        tool_use = mock_tool_call(request)
        text = f"[mock {request.model}] Calling {tool_use.name}." if tool_use else (
            _answer_with_results(request) if _tool_results(request) and request.options.get("mock_response") is None
            else mock_reply(request))
        for stop in request.stop_sequences:
            if stop in text:
                text, stop_reason = text[: text.index(stop)], "stop_sequence"
                break
        else:
            stop_reason = "end_turn"
        pieces = _TOKENS.findall(text)
        if len(pieces) > request.max_tokens:
            pieces, stop_reason = pieces[: request.max_tokens], "max_tokens"
            text = "".join(pieces)
        thought = _TOKENS.findall(mock_thinking(request))
        cited = mock_citation(request)
        answer = int(bool(thought))  # the answer's block follows the thinking's
        if request.stream:
            delay = request.options.get("mock_delay")
            delay = DEFAULT_DELAY if delay is None else delay
            streamed = [(piece, THINKING, 0) for piece in thought] + [(piece, TEXT, answer) for piece in pieces]
            if cited is not None:  # as the API does: a cited block's citation, then its text
                streamed += [(cited, CITATION, answer + 1)] + [(piece, TEXT, answer + 1)
                                                               for piece in _TOKENS.findall(_quoted(cited))]
            if tool_use is not None:  # its input as the API streams it: a block start, then JSON pieces
                arguments = json.dumps(dict(tool_use.input))
                block = answer + 1 + (cited is not None)
                streamed += [(replace(tool_use, input={}), TOOL_USE, block)] + [
                    (arguments[i:i + 8], TOOL_INPUT, block) for i in range(0, len(arguments), 8)]
            for piece, kind, index in streamed:
                if cancel.wait(delay) if delay else cancel.cancelled:
                    raise Cancelled()
                emit(piece, kind, index)
        elif cancel.cancelled:
            raise Cancelled()
        content: list[Block] = [Thinking("".join(thought), _signature(thought))] if thought else []
        content += [Text(text)] if text else []
        content += [Text(_quoted(cited), (cited,))] if cited is not None else []
        if tool_use is not None:
            content.append(tool_use)
            stop_reason = "tool_use"
        usage = Usage(len(_TOKENS.findall(request.prompt)), len(pieces) + len(thought))
        return Reply(tuple(content), usage, stop_reason, request.model, None)

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[BatchOutcome]:
        """Answers every request at once, as a batch that ends on its first poll."""
        on_status(BatchStatus(processing=len(requests), batch_ids=("mock_batch",)))
        outcomes: list[BatchOutcome] = [self.complete(replace(r, stream=False), no_emit, cancel) for r in requests]
        on_status(BatchStatus(processing=0, succeeded=len(requests), batch_ids=("mock_batch",)))
        return outcomes
