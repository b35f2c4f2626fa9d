"""A streamed reply read at the level of the API's own events (``messages.create(stream=True)``).

The SDK's ``MessageStream`` also rebuilds a snapshot of the whole message on every delta and
yields a second, derived event for each, neither of which a step uses: reading the raw events
costs 18 µs a delta here against 44. The reply is assembled as the events come: text, thinking
and its signature, citations, tool input (parsed once, when its block ends), server tool
results, usage (a ``message_delta`` carries cumulative counts), the stop reason, and the
diagnostics of ``message_start``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .._llm import CITATION, SERVER_RESULT, TEXT, THINKING, TOOL_INPUT, TOOL_USE, Emit
from ..content import SERVER_RESULT_TYPES, Citation, Reply, Usage, block_from_api

_USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
          "server_tool_use")


def read_reply(events: Iterable[Any], emit: Emit, request_id: str | None) -> tuple[Reply, Any]:
    """Emit every block delta as it arrives; return the assembled reply, and the message of
    ``message_start`` (its diagnostics) — None when the stream never started."""
    blocks: dict[int, dict[str, Any]] = {}
    parts: dict[int, _Pieces] = {}
    message: Any = None
    usage: dict[str, Any] = {}
    stop_reason = None
    for event in events:
        kind = event.type
        if kind == "content_block_delta":  # the hot path: one per delta, one comparison to its kind
            delta, index = event.delta, event.index
            dtype = delta.type
            if dtype == "text_delta":
                emit(delta.text, TEXT, index)
                parts[index].append(delta.text)
            elif dtype == "thinking_delta":
                emit(delta.thinking, THINKING, index)
                parts[index].append(delta.thinking)
            elif dtype == "input_json_delta":
                emit(delta.partial_json, TOOL_INPUT, index)
                parts[index].append(delta.partial_json)
            else:
                _other(delta, dtype, index, blocks, emit)
            continue
        if kind == "content_block_start":
            block = event.content_block.to_dict()
            blocks[event.index], parts[event.index] = block, _Pieces()
            _announce(block, event.index, emit)
        elif kind == "content_block_stop":
            _finish(blocks[event.index], parts.pop(event.index, []))
        elif kind == "message_start":
            message = event.message
            usage = {name: value for name in _USAGE if (value := getattr(message.usage, name, None)) is not None}
        elif kind == "message_delta":
            stop_reason = event.delta.stop_reason
            usage.update((name, value) for name in _USAGE if (value := getattr(event.usage, name, None)) is not None)
    for index, pieces in parts.items():  # blocks the stream cut off before their stop
        _finish(blocks[index], pieces)
    content = tuple(block_from_api(blocks[index]) for index in sorted(blocks))
    reply = Reply(content, Usage.from_api(usage), stop_reason, getattr(message, "model", None), request_id,
                  None, getattr(message, "id", None))
    return reply, message


def _other(delta: Any, dtype: str, index: int, blocks: dict[int, dict[str, Any]], emit: Emit) -> None:
    """A citation for a text block, or a thinking block's signature."""
    if dtype == "citations_delta":
        citation = Citation.from_api(delta.citation)
        emit(citation, CITATION, index)
        blocks[index].setdefault("citations", []).append(citation.to_api())
    elif dtype == "signature_delta":
        blocks[index]["signature"] = delta.signature


class _Pieces:
    """A block's streamed pieces, joined every ``BLOCK`` appends: a list of small strings costs
    about 60 bytes a delta, so a long reply would otherwise be held three times over."""

    BLOCK = 256
    __slots__ = ("joined", "tail")

    def __init__(self) -> None:
        self.joined: list[str] = []
        self.tail: list[str] = []

    def append(self, piece: str) -> None:
        tail = self.tail
        tail.append(piece)
        if len(tail) >= self.BLOCK:
            self.joined.append("".join(tail))
            tail.clear()

    def __iter__(self) -> Iterator[str]:
        yield from self.joined
        yield from self.tail

    def __bool__(self) -> bool:
        return bool(self.joined or self.tail)


def _announce(block: dict[str, Any], index: int, emit: Emit) -> None:
    """A tool call starts (its input follows as deltas), or a server tool's result arrives whole."""
    if block["type"] in ("tool_use", "server_tool_use"):
        emit(block_from_api({**block, "input": {}}), TOOL_USE, index)
    elif block["type"] in SERVER_RESULT_TYPES:
        emit(block_from_api(block), SERVER_RESULT, index)


def _finish(block: dict[str, Any], pieces: Iterable[str]) -> None:
    """Put a block's streamed pieces in place: its text or thinking, or its input, parsed."""
    kind = block["type"]
    if kind == "text":
        block["text"] = block.get("text", "") + "".join(pieces)
    elif kind == "thinking":
        block["thinking"] = block.get("thinking", "") + "".join(pieces)
    elif kind in ("tool_use", "server_tool_use") and pieces:
        block["input"] = json.loads("".join(pieces))
