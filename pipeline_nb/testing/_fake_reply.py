"""What one reply of :mod:`pipeline_nb.testing.fake_anthropic` says, and how it is said:
its content blocks, stop reason and usage (:class:`Plan`), as a Message object or as
the SSE events of a stream.

Private. A reply's content is, in order:

- a ``thinking`` block, when the request enables thinking (``enabled`` or ``adaptive``)
  and the script has thinking (an unscripted reply thinks ``"Fake thinking about: " +
  prompt``). Streamed as ``thinking_delta``s (none with ``display: "omitted"``, whose
  block has empty thinking), one ``signature_delta``, then ``content_block_stop``;
- text blocks: one, or, when the script cites documents, the cited sentences as blocks
  of their own (see ``_fake_citations``). A cited block starts with ``"citations": []``
  and streams a ``citations_delta`` per citation before its ``text_delta``s.

``output_tokens`` counts the text deltas plus the thinking's words (omitted or not),
which ``output_tokens_details.thinking_tokens`` reports too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from ._fake_cache import CacheUsage
from ._fake_citations import split
from ._fake_content import words
from ._fake_scripts import RecordedRequest, Reply

_WORDS = re.compile(r"\S+\s*|\s+")
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_TEXT_DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
               b'"delta":{"type":"text_delta","text":')
_DELTA_TAIL = b"}}\n\n"
#: Marks a message whose request sent no ``diagnostics`` (its reply has no such key).
NO_DIAGNOSTICS: Any = object()


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event, as the API writes it (compact JSON)."""
    return b"event: %b\ndata: %b\n\n" % (event.encode(), json.dumps(data, separators=(",", ":")).encode())


def default_signature(thinking: str) -> str:
    """The signature the fake issues for ``thinking`` when the script gives none."""
    digest = hashlib.sha256(b"pipeline_nb fake thinking\0" + thinking.encode()).digest()
    return "fake_sig_" + base64.b64encode(digest).decode()


@dataclass
class Block:
    """One content block: ``pieces`` are its deltas (thinking or text)."""

    type: str
    pieces: list[str]
    signature: Optional[str] = None
    citations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def body(self) -> str:
        return "".join(self.pieces)

    def final(self) -> dict[str, Any]:
        """The block as a non-streamed Message holds it."""
        if self.type == "thinking":
            return {"type": "thinking", "thinking": self.body, "signature": self.signature}
        if self.citations:
            return {"type": "text", "text": self.body, "citations": self.citations}
        return {"type": "text", "text": self.body}

    def events(self, index: int) -> Iterator[tuple[bytes, bool]]:
        """Its SSE events, each with whether it is a delta that carries text."""
        if self.type == "thinking":
            start: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            start = {"type": "text", "text": "", "citations": []} if self.citations else {"type": "text", "text": ""}
        yield sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}) + (
            _PING if index == 0 else b""), False
        for citation in self.citations:
            yield _delta(index, {"type": "citations_delta", "citation": citation}), False
        if self.type == "thinking":
            for piece in self.pieces:
                yield _delta(index, {"type": "thinking_delta", "thinking": piece}), True
            yield _delta(index, {"type": "signature_delta", "signature": self.signature}), False
        else:
            head, dumps = _TEXT_DELTA % index, json.dumps
            for piece in self.pieces:
                yield head + dumps(piece).encode() + _DELTA_TAIL, True
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index}), False


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


@dataclass
class Plan:
    """What one response will say."""

    msg_id: str
    model: str
    blocks: list[Block]
    stop_reason: Optional[str]
    stop_sequence: Optional[str]
    usage: dict[str, Any]
    delay: float = 0.0
    diagnostics: Any = NO_DIAGNOSTICS

    @property
    def text(self) -> str:
        return "".join(b.body for b in self.blocks if b.type == "text")

    @property
    def deltas(self) -> int:
        return sum(len(b.pieces) for b in self.blocks)

    def issued(self) -> list[tuple[str, str]]:
        """The ``(thinking, signature)`` pairs this reply hands out."""
        return [(b.body, b.signature) for b in self.blocks if b.type == "thinking" and b.signature is not None]

    def message(self, *, done: bool = True) -> dict[str, Any]:
        """The Message object; with ``done=False``, the empty one a stream opens with."""
        msg: dict[str, Any] = {
            "id": self.msg_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [b.final() for b in self.blocks] if done else [],
            "stop_reason": self.stop_reason if done else None,
            "stop_sequence": self.stop_sequence if done else None,
            "usage": self.usage if done else {**_without(self.usage, "output_tokens_details"), "output_tokens": 0},
        }
        if self.diagnostics is not NO_DIAGNOSTICS:
            msg["diagnostics"] = self.diagnostics
        return msg

    def events(self) -> Iterator[tuple[bytes, bool]]:
        """Every content block's SSE events, each with whether it is a delta carrying text."""
        for index, block in enumerate(self.blocks):
            yield from block.events(index)

    def closing(self) -> bytes:
        """``message_delta`` (stop reason, cumulative usage) and ``message_stop``."""
        usage = _without(self.usage, "cache_creation")  # not a field of a message_delta's usage
        return sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": usage,
        }) + sse("message_stop", {"type": "message_stop"})


def _without(usage: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if k != name}


def thinking_wanted(body: dict[str, Any]) -> Optional[str]:
    """None when the request does not enable thinking, else its ``display`` (default
    ``"summarized"``)."""
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") not in ("enabled", "adaptive"):
        return None
    return config.get("display") or "summarized"


def plan_reply(reply: Optional[Reply], req: RecordedRequest, msg_id: str, cache: CacheUsage,
               diagnostics: Any = NO_DIAGNOSTICS) -> Plan:
    """Turn a script (or the default echo reply) into the :class:`Plan` for ``req``."""
    if reply is None:
        reply = Reply("Fake reply to: " + req.prompt, thinking="Fake thinking about: " + req.prompt)
    deltas = list(reply.chunks) if reply.chunks is not None else _WORDS.findall(reply.text)
    stop_reason: Optional[str] = reply.stop_reason
    stop_seq = None
    seqs = req.body.get("stop_sequences")
    if isinstance(seqs, list):
        text = "".join(deltas)
        hits = [(text.find(s), s) for s in seqs if isinstance(s, str) and s and s in text]
        if hits:
            cut, stop_seq = min(hits)
            deltas, stop_reason = _truncate(deltas, cut), "stop_sequence"
    blocks = _text_blocks(deltas, reply, req)
    display = thinking_wanted(req.body)
    thought = reply.thinking if display is not None else None
    if thought is not None:
        signature = reply.signature or default_signature(thought)
        pieces = [] if display == "omitted" else _WORDS.findall(thought)
        blocks.insert(0, Block("thinking", pieces, signature))
    thinking_tokens = words(thought) if thought is not None else 0
    if reply.usage is not None:
        in_tok, out_tok = reply.usage
    else:
        in_tok = cache.uncached if cache.uncached is not None else len(req.prompt) // 4 + 1 + sum(
            a.tokens for a in req.documents + req.images)
        out_tok = len(deltas) + thinking_tokens
    usage: dict[str, Any] = {"input_tokens": in_tok, "output_tokens": out_tok, **cache.fields()}
    if thought is not None:
        usage["output_tokens_details"] = {"thinking_tokens": min(thinking_tokens, out_tok)}
    model = reply.model or str(req.body.get("model") or "claude-fake")
    return Plan(msg_id, model, blocks, stop_reason, stop_seq, usage, reply.delay, diagnostics)


def _text_blocks(deltas: list[str], reply: Reply, req: RecordedRequest) -> list[Block]:
    """The text blocks: ``deltas`` cut where a cited sentence starts or ends."""
    if not reply.cite:
        return [Block("text", deltas)]
    spans = split("".join(deltas), list(reply.cite), req.documents)
    blocks = [Block("text", [], citations=found) for _, _, found in spans]
    ends = [end for _, end, _ in spans]
    pos, k = 0, 0
    for d in deltas:
        while d:
            while k < len(ends) - 1 and pos >= ends[k]:
                k += 1
            take = d if k == len(ends) - 1 else d[: ends[k] - pos]
            blocks[k].pieces.append(take)
            pos, d = pos + len(take), d[len(take):]
    return blocks


def _truncate(deltas: list[str], n: int) -> list[str]:
    out: list[str] = []
    for d in deltas:
        if n <= 0:
            break
        out.append(d[:n])
        n -= len(d)
    return out
