"""Streaming events: ``("delta", chunk)``, ``("done", response)`` and the run's lifecycle.

Every event is a two-item NamedTuple, so handlers can ``match`` on it::

    match event:
        case ("delta", chunk):
            print(chunk.content, end="")
        case ("done", response):
            print(f"\\n[{response.step_id}: {response.usage.output_tokens} tokens]")

Kinds, in the order a run produces them: ``run_start`` (PipelineRun; only plain callables
get it as an event, handler objects get ``init(run)``), then per step ``step_start``
(StepResult), ``delta`` (Chunk)..., ``retry`` (RetryInfo), ``done`` (Response),
``step_end`` (StepResult), and finally ``run_end`` (PipelineRun).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..results import Usage


class Chunk(NamedTuple):
    """New text of a streamed step. ``(step_id, attempt, seq)`` identifies it."""

    step_id: str
    attempt: int
    seq: int
    content: str


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


class RetryInfo(NamedTuple):
    """A failed attempt about to be retried after ``delay`` seconds."""

    step_id: str
    attempt: int
    """The attempt that failed (1-based)."""
    retries: int
    """How many retries the step allows."""
    reason: str
    delay: float


class Event(NamedTuple):
    """One streaming event: a kind and its payload."""

    kind: str
    data: Any


RUN_START = "run_start"
STEP_START = "step_start"
DELTA = "delta"
RETRY = "retry"
DONE = "done"
PROGRESS = "progress"
"""A for_each step finished an item; its ``note`` says how far it is (data: StepResult)."""
STEP_END = "step_end"
RUN_END = "run_end"
