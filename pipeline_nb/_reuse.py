"""Resume and rerun: take a call's reply from an earlier run when the very same request succeeded
there, instead of paying for it again.

The earlier run's replies are keyed like cassette entries (``request_key``: the request as sent),
so only what failed, was interrupted, or changed is called. A reused reply streams into the
view at once, block by block, and its step's note says where it came from. Steps named
``fresh`` (a rerun's step and the steps that read it) always call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

from ._cassette import request_key
from ._llm import (CALLING_STEP, CITATION, SERVER_RESULT, TEXT, THINKING, TOOL_INPUT, TOOL_USE, BatchProvider,
                   BatchStatus, Cancelled, CancelToken, Emit, LLMRequest, Provider, ProviderError)
from ._journal_read import Earlier
from ._spec import PipelineSpec
from ._step_ids import owner_of
from .content import Reply, ServerToolResult, ServerToolUse, Text, Thinking, ToolUse


class ReusingProvider:
    """``inner``, except for requests whose reply the earlier run already holds (by request key),
    and batches the earlier run sent and did not see end, which it attaches to again."""

    def __init__(self, inner: Provider, earlier: Earlier, fresh: Collection[str] = ()) -> None:
        self.inner, self.earlier, self.fresh = inner, earlier, set(fresh)
        self.replies, self.run_id = earlier.replies, earlier.run_id
        self.name = getattr(inner, "name", "provider")

    def check(self, request: LLMRequest) -> None:
        self.inner.check(request)

    def _earlier(self, request: LLMRequest) -> Reply | None:
        if self.fresh and owner_of(CALLING_STEP.get() or "") in self.fresh:
            return None
        entry = self.replies.get(request_key(request))  # a Reply (from memory) or its dict (from the journal)
        if entry is None:
            return None
        return replace(entry if isinstance(entry, Reply) else Reply.from_api(entry), reused_from=self.run_id)

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        reply = self._earlier(request)
        if reply is None:
            return self.inner.complete(request, emit, cancel)
        if cancel.cancelled:
            raise Cancelled()
        if request.stream:
            stream_blocks(reply, emit)
        return reply

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[Any]:
        """Reused replies at once; the rest from the earlier run's batch still in flight when it
        holds them all (attached to, not sent again), else as a new batch."""
        outcomes: list[Any] = [self._earlier(request) for request in requests]
        missing = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not missing:
            on_status(BatchStatus(processing=0, succeeded=len(requests), batch_ids=(f"reused:{self.run_id}",)))
            return outcomes
        if not isinstance(self.inner, BatchProvider):
            raise ProviderError("batch_unsupported", f"provider {self.name!r} cannot send batches", retryable=False)
        keys = {request_key(requests[i]): i for i in missing}
        for batch_ids, sent_keys in self.earlier.batches:
            attach = getattr(self.inner, "attach", None)
            if attach is not None and set(keys) <= set(sent_keys):
                sent = [requests[keys[key]] if key in keys else requests[missing[0]] for key in sent_keys]
                on_status(BatchStatus(processing=len(sent_keys), batch_ids=tuple(batch_ids)))
                for key, outcome in zip(sent_keys, attach(sent, batch_ids, on_status, cancel, poll_interval)):
                    if key in keys:
                        outcomes[keys[key]] = outcome
                return outcomes
        for index, outcome in zip(missing, self.inner.batch([requests[i] for i in missing], on_status, cancel,
                                                            poll_interval)):
            outcomes[index] = outcome
        return outcomes


def stream_blocks(reply: Reply, emit: Emit) -> None:
    """A finished reply streamed at once: each block as one piece (its citations first)."""
    for index, block in enumerate(reply.content):
        if isinstance(block, Thinking):
            emit(block.thinking, THINKING, index)
        elif isinstance(block, Text):
            for citation in block.citations:
                emit(citation, CITATION, index)
            emit(block.text, TEXT, index)
        elif isinstance(block, (ToolUse, ServerToolUse)):
            emit(replace(block, input={}), TOOL_USE, index)
            emit(json.dumps(dict(block.input)), TOOL_INPUT, index)
        elif isinstance(block, ServerToolResult):
            emit(block, SERVER_RESULT, index)


def readers_of(spec: PipelineSpec, step_ids: Collection[str]) -> set[str]:
    """``step_ids`` and every step after them that reads one of them (``steps.<id>``, ``continue:``),
    transitively: what a rerun of ``step_ids`` must run again for real."""
    fresh = set(step_ids)
    for step in spec.all_steps():
        if set(step.step_refs()) & fresh:
            fresh.add(step.id)
    return fresh
