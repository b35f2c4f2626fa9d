"""One content block of a :mod:`pipeline_nb.testing._fake_anthropic` reply, as a Message holds
it and as the SSE events that stream it.

Private. How each kind streams, as the real API does:

- ``thinking``: ``content_block_start`` with empty thinking and signature, a
  ``thinking_delta`` per piece, one ``signature_delta``, ``content_block_stop``;
- ``text``: starts empty (with ``"citations": []`` when it cites), a ``citations_delta``
  per citation, then a ``text_delta`` per piece;
- ``tool_use`` and ``server_tool_use``: starts with ``id``, ``name`` and ``"input": {}``,
  then the input's JSON as ``input_json_delta`` pieces (``partial_json``);
- a server tool's result block (``web_search_tool_result``, ...): starts complete, no deltas.

Every block ends with ``content_block_stop``. The first block's start carries a ``ping``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

#: Block types whose input streams as ``input_json_delta``s.
TOOL_USE_TYPES = frozenset({"tool_use", "server_tool_use"})

_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
# A text delta is the hot path of a long stream: it is written from these two halves.
_TEXT_DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
               b'"delta":{"type":"text_delta","text":')
_DELTA_TAIL = b"}}\n\n"


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event, as the API writes it (compact JSON)."""
    return b"event: %b\ndata: %b\n\n" % (event.encode(), json.dumps(data, separators=(",", ":")).encode())


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


@dataclass
class Block:
    """One content block. ``pieces`` are its deltas (thinking, text, or a tool input's JSON);
    ``fields`` are the other keys of a tool block (``id``, ``name``, ``input``) or of a
    server tool's result block (``tool_use_id``, ``content``)."""

    type: str
    pieces: list[str]
    signature: Optional[str] = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> str:
        return "".join(self.pieces)

    def final(self) -> dict[str, Any]:
        """The block as a non-streamed Message holds it."""
        if self.type == "thinking":
            return {"type": "thinking", "thinking": self.body, "signature": self.signature}
        if self.type == "text":
            if self.citations:
                return {"type": "text", "text": self.body, "citations": self.citations}
            return {"type": "text", "text": self.body}
        return {"type": self.type, **self.fields}

    def _start(self) -> dict[str, Any]:
        if self.type == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if self.type == "text":
            return {"type": "text", "text": "", "citations": []} if self.citations else {"type": "text", "text": ""}
        if self.type in TOOL_USE_TYPES:
            return {"type": self.type, **self.fields, "input": {}}
        return self.final()

    def events(self, index: int) -> Iterator[tuple[bytes, bool]]:
        """Its SSE events, each with whether it is a delta that carries content (thinking,
        text or tool input): those are what a fault's ``after`` and a reply's ``delay`` count."""
        yield sse("content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": self._start()}) + (_PING if index == 0 else b""), False
        for citation in self.citations:
            yield _delta(index, {"type": "citations_delta", "citation": citation}), False
        if self.type == "thinking":
            for piece in self.pieces:
                yield _delta(index, {"type": "thinking_delta", "thinking": piece}), True
            yield _delta(index, {"type": "signature_delta", "signature": self.signature}), False
        elif self.type == "text":
            head, dumps = _TEXT_DELTA % index, json.dumps
            for piece in self.pieces:
                yield head + dumps(piece).encode() + _DELTA_TAIL, True
        else:
            for piece in self.pieces:
                yield _delta(index, {"type": "input_json_delta", "partial_json": piece}), True
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index}), False
