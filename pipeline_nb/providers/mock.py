"""The mock provider: offline, deterministic, and marked as mock in its text."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..content import Block, Citation, Reply, Text, Thinking, Usage
from ..llm import CITATION, TEXT, THINKING, BatchOutcome, BatchStatus, Cancelled, CancelToken, Emit, LLMRequest, no_emit

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


def _quoted(citation: Citation) -> str:
    return f" The attached {citation.document_title or 'document'} says: {citation.cited_text}"


class MockProvider:
    """Streams :func:`mock_reply` word by word, ``mock_delay`` seconds apart."""

    name = "mock"

    def check(self, request: LLMRequest) -> None:
        """The mock needs nothing."""

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        text = mock_reply(request)
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
            for piece, kind, index in streamed:
                if cancel.wait(delay) if delay else cancel.cancelled:
                    raise Cancelled()
                emit(piece, kind, index)
        elif cancel.cancelled:
            raise Cancelled()
        content: list[Block] = [Thinking("".join(thought), _signature(thought))] if thought else []
        content += [Text(text)] if text else []
        content += [Text(_quoted(cited), (cited,))] if cited is not None else []
        usage = Usage(len(_TOKENS.findall(request.prompt)), len(pieces) + len(thought))
        return Reply(tuple(content), usage, stop_reason, request.model, None)

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[BatchOutcome]:
        """Answers every request at once, as a batch that ends on its first poll."""
        on_status(BatchStatus(processing=len(requests), batch_ids=("mock_batch",)))
        outcomes: list[BatchOutcome] = [self.complete(replace(r, stream=False), no_emit, cancel) for r in requests]
        on_status(BatchStatus(processing=0, succeeded=len(requests), batch_ids=("mock_batch",)))
        return outcomes
