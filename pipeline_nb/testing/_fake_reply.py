"""What one reply of :mod:`pipeline_nb.testing._fake_anthropic` says, and how it is said:
its content blocks, stop reason and usage (:class:`Plan`), as a Message object or as
the SSE events of a stream.

Private. A reply's content is, in order:

- a ``thinking`` block, when the request enables thinking (``enabled`` or ``adaptive``)
  and the script has thinking (an unscripted reply thinks ``"Fake thinking about: " +
  prompt``). Streamed as ``thinking_delta``s (none with ``display: "omitted"``, whose
  block has empty thinking), one ``signature_delta``, then ``content_block_stop``;
  A reply that calls client tools thinks ``"Fake thinking before calling " + names`` when
  its script has no thinking, as the real API always thinks before a call;
- each server tool use and its result block (``_fake_tools``);
- text blocks: one, or, when the script cites documents, the cited sentences as blocks
  of their own (see ``_fake_citations``). A cited block starts with ``"citations": []``
  and streams a ``citations_delta`` per citation before its ``text_delta``s. A reply
  with tool use and no text has no text block;
- a ``tool_use`` block per client tool call, unless a stop sequence ended the text.

How each block streams is in ``_fake_blocks``. ``output_tokens`` counts the text deltas,
the thinking's words (omitted or not, which ``output_tokens_details.thinking_tokens``
reports too) and the ``input_json_delta`` pieces of the tool inputs. ``input_tokens``
(when no cache breakpoint is marked) is ``len(prompt) // 4 + 1``, plus the attachments'
estimate, plus ``len(text) // 4`` for each tool result of the last user turn.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ._fake_blocks import TOOL_USE_TYPES, Block, sse
from ._fake_cache import CacheUsage
from ._fake_citations import split
from ._fake_content import prompt_blocks, tool_result_text, words
from .._structured import schema_instance
from ._fake_scripts import RecordedRequest, Reply
from ._fake_tools import server_blocks, server_usage, tool_use_blocks

_WORDS = re.compile(r"\S+\s*|\s+")
#: Marks a message whose request sent no ``diagnostics`` (its reply has no such key).
NO_DIAGNOSTICS: Any = object()


def default_signature(thinking: str) -> str:
    """The signature the fake issues for ``thinking`` when the script gives none."""
    digest = hashlib.sha256(b"pipeline_nb fake thinking\0" + thinking.encode()).digest()
    return "fake_sig_" + base64.b64encode(digest).decode()


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
            "usage": self.usage if done else {
                **_without(self.usage, "output_tokens_details", "server_tool_use"), "output_tokens": 0},
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


def _without(usage: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if k not in names}


def thinking_wanted(body: dict[str, Any]) -> Optional[str]:
    """None when the request does not enable thinking, else its ``display`` (default
    ``"summarized"``)."""
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") not in ("enabled", "adaptive"):
        return None
    return config.get("display") or "summarized"


def default_text(req: RecordedRequest) -> str:
    """An unscripted reply: ``Fake reply to: <prompt>``, or a JSON value of the request's schema when it
    asks for structured output (``output_config.format``), so a structured step works unscripted."""
    fmt = (req.body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(schema_instance(fmt.get("schema"), "Fake reply to: " + req.prompt))
    return "Fake reply to: " + req.prompt


def plan_reply(reply: Optional[Reply], req: RecordedRequest, msg_id: str, cache: CacheUsage,
               diagnostics: Any = NO_DIAGNOSTICS) -> Plan:
    """Turn a script (or the default echo reply) into the :class:`Plan` for ``req``; the
    script's tool use must suit ``req`` (``_fake_tools.script_mismatch`` says when not)."""
    if reply is None:
        reply = Reply(default_text(req), thinking="Fake thinking about: " + req.prompt)
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
    calls = () if stop_seq else reply.tool_calls  # a stop sequence ends the reply before any call
    uses_tools = bool(reply.tool_calls or reply.server_tools)
    text_blocks = _text_blocks(deltas, reply, req) if deltas or not uses_tools else []
    blocks = server_blocks(reply.server_tools, req.body) + text_blocks + tool_use_blocks(calls, req.body)
    display = thinking_wanted(req.body)
    thought = reply.thinking if display is not None else None
    if thought is None and display is not None and calls:
        thought = "Fake thinking before calling " + ", ".join(c.name for c in calls)
    if thought is not None:
        signature = reply.signature or default_signature(thought)
        pieces = [] if display == "omitted" else _WORDS.findall(thought)
        blocks.insert(0, Block("thinking", pieces, signature))
    thinking_tokens = words(thought) if thought is not None else 0
    if reply.usage is not None:
        in_tok, out_tok = reply.usage
    else:
        in_tok = cache.uncached if cache.uncached is not None else _uncached_tokens(req)
        out_tok = len(deltas) + thinking_tokens + sum(len(b.pieces) for b in blocks if b.type in TOOL_USE_TYPES)
    usage: dict[str, Any] = {"input_tokens": in_tok, "output_tokens": out_tok, **cache.fields()}
    if thought is not None:
        usage["output_tokens_details"] = {"thinking_tokens": min(thinking_tokens, out_tok)}
    searches = server_usage(reply.server_tools)
    if searches is not None:
        usage["server_tool_use"] = searches
    model = reply.model or str(req.body.get("model") or "claude-fake")
    return Plan(msg_id, model, blocks, stop_reason, stop_seq, usage, reply.delay, diagnostics)


def input_tokens(req: RecordedRequest) -> int:
    """All of ``req``'s input tokens, as ``/v1/messages/count_tokens`` reports them: what a message's
    ``usage.input_tokens`` says for the same request with nothing cached, or, once the request marks
    a cache breakpoint, that plus its ``cache_creation_input_tokens`` and ``cache_read_input_tokens``."""
    blocks = prompt_blocks(req.body)
    if any(block.cache_control is not None for block in blocks):
        return sum(block.tokens for block in blocks)
    return _uncached_tokens(req)


def _uncached_tokens(req: RecordedRequest) -> int:
    """The estimate of a request without cache breakpoints (see the module doc)."""
    return len(req.prompt) // 4 + 1 + sum(a.tokens for a in req.documents + req.images) + sum(
        len(tool_result_text(b)) // 4 for b in req.tool_results)


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
