"""Streaming events: ``("delta", chunk)``, ``("done", response)`` and the run's lifecycle.

Every event is a two-item NamedTuple, so handlers can ``match`` on it::

    match event:
        case ("delta", chunk):
            print(chunk.content, end="")
        case ("done", response):
            print(f"\\n[{response.step_id}: {response.usage.output_tokens} tokens]")

Kinds, in the order a run produces them: ``run_start`` (PipelineRun; only plain callables
get it as an event, handler objects get ``init(run)``), then per step ``step_start``
(StepResult), ``thinking`` (Chunk of Claude's thinking, when the step asked for it),
``delta`` (Chunk of the answer's text) and ``citation`` (CitationChunk)..., for a step
with tools ``tool_call`` (ToolCallChunk, as a call's input streams) and ``tool_result``
(ToolCall, when the tool returned) before the next call's events, ``retry``
(RetryInfo), ``rate_limit`` (RateLimitInfo, a pause of every call to the API), ``done`` (Response, with the reply's content blocks), ``check`` (CheckResult, one per expectation, as each resolves), ``step_end``
(StepResult), and finally ``run_end`` (PipelineRun). A chunk names its block (``block``:
the reply's content block it extends), and ``seq`` counts every piece of an attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..content import Block, Citation, Usage, citations_of, thinking_of


class Chunk(NamedTuple):
    """New text of a streamed step (of its answer, or of its thinking). ``(step_id, round, attempt,
    seq)`` identifies it; ``block`` is the index of the reply's content block it extends, ``round``
    the step's call (1 unless the step has tools: each call of its tool loop is a round)."""

    step_id: str
    attempt: int
    seq: int
    content: str
    block: int = 0
    round: int = 1


class CitationChunk(NamedTuple):
    """A citation that arrived for text block ``block`` of a streamed step."""

    step_id: str
    attempt: int
    seq: int
    citation: Citation
    block: int = 0
    round: int = 1


class ToolCallChunk(NamedTuple):
    """A tool call of a step as the model writes it: ``partial_json`` is the new piece of its input,
    ``input`` all of it parsed so far. The first chunk of a call has no input yet; the call's
    ``tool_result`` event follows once it ran (or, for a server tool, once the API sent its result)."""

    step_id: str
    attempt: int
    seq: int
    round: int
    """The step's call (1-based) that asked for the tool."""
    id: str
    name: str
    input: Mapping[str, Any]
    partial_json: str = ""
    block: int = 0
    server: bool = False


class Response(NamedTuple):
    """A finished LLM call."""

    step_id: str
    attempt: int
    text: str
    usage: Usage
    stop_reason: str | None
    model: str | None
    request_id: str | None = None
    output: Any = None
    content: tuple[Block, ...] = ()
    """The reply's content blocks: thinking, text (with its citations), ..."""
    round: int = 1
    """The step's call this reply answers (a step with tools makes one per round)."""

    @property
    def thinking(self) -> str:
        return thinking_of(self.content)

    @property
    def citations(self) -> tuple[Citation, ...]:
        return citations_of(self.content)


class RetryInfo(NamedTuple):
    """A failed attempt about to be retried after ``delay`` seconds."""

    step_id: str
    attempt: int
    """The attempt that failed (1-based)."""
    retries: int
    """How many retries the step allows."""
    reason: str
    delay: float
    round: int = 1


class RateLimitInfo(NamedTuple):
    """The API's rate limit paused every call to it: ``paused_until`` (epoch seconds, for a
    countdown), the limiter's ``concurrency`` now, and ``waited``: 0 as the pause starts, its
    seconds once it ended (one event of each per pause, from the first call that waited)."""

    step_id: str
    paused_until: float
    concurrency: int
    waited: float


class Event(NamedTuple):
    """One streaming event: a kind and its payload."""

    kind: str
    data: Any


RUN_START = "run_start"
STEP_START = "step_start"
DELTA = "delta"
THINKING = "thinking"
CITATION = "citation"
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"
"""A tool returned (data: results.ToolCall, with its output, error and duration)."""
RETRY = "retry"
RATE_LIMIT = "rate_limit"
"""The rate limiter paused every call to the API (data: RateLimitInfo)."""
DONE = "done"
CHECK = "check"
"""An expectation was checked on a result (data: CheckResult), after its reply and before its step ends."""
PROGRESS = "progress"
"""A for_each step finished an item; its ``note`` says how far it is (data: StepResult)."""
STEP_END = "step_end"
RUN_END = "run_end"
