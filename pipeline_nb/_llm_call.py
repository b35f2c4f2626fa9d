"""One llm step's call: build the request, stream it, retry it, parse structured output.

Runs on a worker thread. Events go to ``emit``; the outcome is left on the StepResult.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .content import Citation, Reply, Text, Thinking
from ._llm import CALLING_STEP, CITATION, TEXT, THINKING, Cancelled, CancelToken, LLMRequest, Provider, ProviderError
from ._redact import redact
from ._results import ERROR_TYPES, ErrorInfo, StepResult, Usage
from ._spec import StepSpec
from .streaming._events import CITATION as CITATION_EVENT
from .streaming._events import DELTA, DONE, RETRY, Chunk, CitationChunk, Event, Response, RetryInfo
from .streaming._events import THINKING as THINKING_EVENT
from ._structured import StructuredOutputError, parse_reply
from ._templates import RenderInterrupted, TemplateProblem

EmitEvent = Callable[[Event], None]
ToolPieces = Callable[[Any, str, int, int, int], None]
"""``on_tool(piece, kind, index, attempt, seq)``: a streamed piece of a tool call (kinds ``tool_use``,
``tool_input``, ``server_result`` of the provider's :data:`~pipeline_nb._llm.Emit`)."""


class Received:
    """The text of one attempt so far, appended to by the worker, readable from any thread.

    Deltas are joined into blocks every ``BLOCK`` appends, so memory stays about one copy
    of the text (a list of small strings costs ~60 bytes a delta) and nothing keeps every
    delta object. ``count`` is the number of deltas; ``str()`` (or ``"".join``) is the text.
    """

    BLOCK = 256
    __slots__ = ("count", "_blocks", "_tail", "_lock")

    def __init__(self) -> None:
        self.count = 0
        self._blocks: list[str] = []
        self._tail: list[str] = []
        self._lock = threading.Lock()

    def append(self, text: str) -> None:
        tail = self._tail
        tail.append(text)
        self.count += 1
        if len(tail) >= self.BLOCK:
            with self._lock:
                self._blocks.append("".join(tail))
                tail.clear()

    def __str__(self) -> str:
        with self._lock:
            return "".join(self._blocks) + "".join(self._tail)

    def __iter__(self) -> Iterator[str]:
        yield str(self)


@dataclass(frozen=True)
class ResolvedStep:
    """A step with its provider, model and stream flag settled."""

    spec: StepSpec
    provider: Provider
    provider_name: str
    model: str
    max_tokens: int
    stream: bool


class StepProblem(Exception):
    """A step fails because of what step key ``key`` gave (at its ``line``, when known)."""

    def __init__(self, kind: str, message: str, key: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.key, self.line = kind, message, key, line

    def fail(self, step: StepSpec, result: StepResult) -> None:
        """Fail ``result`` with this problem and where in the YAML it comes from."""
        where = step.where(self.key, self.line)
        fail(result, self.kind, self.message + (f" (at {where})" if where else ""))


def render(step: StepSpec, key: str, context: Mapping[str, Any]) -> str:
    try:
        return getattr(step, key).render(context)
    except RenderInterrupted:
        raise
    except TemplateProblem as exc:
        raise StepProblem("template_error", str(exc), key, exc.line) from None


def call(
    resolved: ResolvedStep,
    request: LLMRequest,
    result: StepResult,
    token: CancelToken,
    run_cancel: CancelToken,
    emit: EmitEvent,
    received: dict[str, Received],
    on_tool: ToolPieces | None = None,
    round_: int = 1,
) -> Reply | None:
    """Run ``request`` with the step's retry policy; leave text, output and status on ``result``.
    Returns the reply, or None when there is none (the call failed or was stopped). Pieces of
    tool calls (see :data:`ToolPieces`) go to ``on_tool``; ``round_`` is the call's round of a tool loop."""
    step, step_id, started = resolved.spec, result.id, time.monotonic()
    for attempt in range(1, step.retries + 2):
        result.attempts = attempt
        parts = received[step_id] = Received()
        append, thought, cited = parts.append, Received(), []

        def on_piece(piece: Any, kind: str = TEXT, index: int = 0, _attempt: int = attempt, _round: int = round_,
                     _next: Callable[[], int] = itertools.count(1).__next__,
                     _new: Callable[..., Any] = tuple.__new__) -> None:
            if kind == TEXT:  # the hot path: tuple.__new__ skips the NamedTuples' Python-level __new__
                append(piece)
                emit(_new(Event, (DELTA, _new(Chunk, (step_id, _attempt, _next(), piece, index, _round)))))
            elif kind == THINKING:
                thought.append(piece)
                emit(_new(Event, (THINKING_EVENT, _new(Chunk, (step_id, _attempt, _next(), piece, index, _round)))))
            elif kind == CITATION:
                cited.append(piece)
                emit(Event(CITATION_EVENT, CitationChunk(step_id, _attempt, _next(), piece, index, _round)))
            elif on_tool is not None:
                on_tool(piece, kind, index, _attempt, _next())

        calling = CALLING_STEP.set(step_id)
        try:
            answer = resolved.provider.complete(request, on_piece, token)
        except Cancelled:
            _keep_received(result, parts, thought, cited)
            stopped(step, result, run_cancel)
            return
        except ProviderError as exc:
            _keep_received(result, parts, thought, cited)
            if not exc.retryable or attempt > step.retries:
                gave_up = f"; gave up after {attempt} attempts" if attempt > 1 else ""
                fail(result, exc.type, exc.message + gave_up, exc.request_id)
                return
            delay = backoff(step, exc, attempt)
            if step.timeout and time.monotonic() + delay - started > step.timeout:
                fail(result, exc.type, f"{exc.message}; not retried: the step's timeout of "
                     f"{step.timeout:g} s would pass first", exc.request_id)
                return
            result.text, result.content = "", ()
            result.note = f"retry {attempt}/{step.retries} after {exc.type}"
            emit(Event(RETRY, RetryInfo(step_id, attempt, step.retries, exc.type, delay, round_)))
            if token.wait(delay):
                stopped(step, result, run_cancel)
                return
            continue
        finally:
            CALLING_STEP.reset(calling)
        del received[step_id]  # the reply holds the text now: no second copy for the rest of the run
        succeed(result, answer, attempt, request)
        emit(Event(DONE, Response(step_id, attempt, answer.text, answer.usage, answer.stop_reason,
                                  answer.model, answer.request_id, result.output, answer.content, round_)))
        return answer
    return None


def _keep_received(result: StepResult, text: Received, thinking: Received, cited: list[Citation]) -> None:
    """A call that stopped: keep what arrived, the answer's text with its citations, and any thinking."""
    result.text = str(text)
    thought = str(thinking)
    answer = (Text(result.text, tuple(cited)),) if result.text or cited else ()
    result.content = ((Thinking(thought),) if thought else ()) + answer


def succeed(result: StepResult, answer: Reply, attempt: int, request: LLMRequest) -> None:
    result.text = answer.text
    result.content = answer.content
    result.usage = result.usage + answer.usage if result.type == "python" else answer.usage
    result.stop_reason = answer.stop_reason
    result.model = answer.model or result.model
    result.messages = request.messages
    result.note = f"ok after {attempt} attempts" if attempt > 1 else ""
    if answer.reused_from:
        result.note = f"reused from run {answer.reused_from}"
    if answer.cache_miss_reason and not answer.usage.cache_read_tokens:
        result.note = ", ".join(filter(None, (result.note, f"cache not read: {answer.cache_miss_reason}")))
    if request.output_schema is not None:
        try:
            result.output = parse_reply(answer.text, request.output_schema)
        except StructuredOutputError as exc:
            fail(result, "invalid_output", str(exc), answer.request_id)
            return
    else:
        result.output = answer.text
    result.status = "ok"


def stopped(step: StepSpec, result: StepResult, run_cancel: CancelToken) -> None:
    """The step's token fired: the run was interrupted, or the step timed out."""
    if run_cancel.cancelled:
        interrupted(result)
    else:
        fail(result, "timeout", f"the step took longer than its timeout of {step.timeout:g} s")


def interrupted(result: StepResult) -> None:
    """Mark ``result`` interrupted; its text so far is kept."""
    result.status = "interrupted"
    result.note = f"interrupted: the {len(result.text)} characters received before it are kept"


def backoff(step: StepSpec, exc: ProviderError, attempt: int) -> float:
    """Seconds before the next attempt: the server's ``retry-after`` (capped), else exponential backoff."""
    if exc.retry_after is not None:
        return min(exc.retry_after, step.retry_after_cap)
    base, cap = step.retry_backoff
    return min(cap, base * 2 ** (attempt - 1))


def fail(result: StepResult, kind: str, message: str, request_id: str | None = None) -> None:
    """Mark ``result`` failed; keys in ``message`` (an echoed header, say) are redacted. A kind
    outside ERROR_TYPES becomes ``unexpected_error``, the kind first in its message."""
    if kind not in ERROR_TYPES:
        kind, message = "unexpected_error", f"{kind}: {message}"
    result.status = "error"
    result.error = ErrorInfo(kind, redact(message), request_id)


CACHE_WRITE = {"5m": 1.25, "1h": 2.0}
"""The API's price of a cache write, as a multiple of the input price, by TTL."""
CACHE_READ = 0.1
"""The API's price of a cache read, as a multiple of the input price."""
WEB_SEARCH = 10.0
"""The API's price of 1,000 web searches, in USD (web fetches cost only their tokens)."""


def cost(usage: Usage, model: str | None, pricing: Mapping[str, Mapping[str, float]],
         discount: float = 1.0, cache_ttl: str | None = None) -> float | None:
    """USD for ``usage`` at ``pricing[model]`` (per million tokens) times ``discount``, or None if unpriced.
    Cache writes and reads cost their own rates when given, else the API's multiples of ``input``;
    web searches cost ``web_search`` per 1,000."""
    price = pricing.get(model or "")
    if price is None:
        return None
    write = price.get("cache_write", price["input"] * CACHE_WRITE.get(cache_ttl or "5m", 1.25))
    read = price.get("cache_read", price["input"] * CACHE_READ)
    return (usage.input_tokens * price["input"] + usage.output_tokens * price["output"]
            + usage.cache_write_tokens * write + usage.cache_read_tokens * read) / 1e6 * discount + (
        usage.web_search_requests * price.get("web_search", WEB_SEARCH) / 1000)
