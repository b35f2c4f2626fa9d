"""What a run leaves behind: PipelineRun and its StepResults."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ._check_results import CheckList, CheckResult
from .content import Block, Citation, Usage, citations_of, thinking_of

__all__ = ["ErrorInfo", "PipelineRun", "StepResult", "ToolCall", "Usage"]

StepStatus = Literal["pending", "running", "ok", "error", "skipped", "interrupted"]
RunStatus = Literal["pending", "running", "ok", "error", "interrupted"]


API_ERROR_TYPES = {
    "invalid_request_error": "the API refused the request as invalid (HTTP 400)",
    "authentication_error": "the API key was not accepted (401)",
    "billing_error": "the account cannot pay for the request",
    "permission_error": "the key may not use this model or feature (403)",
    "not_found_error": "no such model or endpoint (404)",
    "request_too_large": "the request is too large (413)",
    "rate_limit_error": "too many requests or tokens for now (429), after every retry",
    "timeout_error": "the API timed out while answering",
    "api_error": "the API failed (500 and the rest of 5xx), or sent an error type not listed here",
    "overloaded_error": "the API is overloaded (529, or an error event mid-stream), after every retry",
}
"""The Messages API's own error types, kept as the API names them."""

ERROR_TYPES = {
    **API_ERROR_TYPES,
    "missing_api_key": "no API key (ANTHROPIC_API_KEY, GEMINI_API_KEY) for a call that must go out",
    "missing_package": "the provider's SDK is not installed (the error names the extra to install)",
    "provider_unavailable": "a provider registered by an entry point failed to load",
    "connection_error": "the API could not be reached",
    "connection_lost": "the stream broke off mid-reply",
    "incomplete_stream": "the stream ended before its message_stop",
    "malformed_stream": "the stream sent data that is not valid",
    "read_timeout": "the stream was silent past read_timeout",
    "timeout": "the request timed out, or the step passed its own timeout",
    "streaming_required": "the SDK refused a long non-streamed call before sending it",
    "cassette_miss": "replaying, and the cassette has no recording of this request",
    "budget_exceeded": "the call could take the run past max_cost (or its model has no price), so it was not sent",
    "batch_unsupported": "the provider cannot send Message Batches",
    "expired": "a Message Batch item expired before it ran",
    "canceled": "a Message Batch item was canceled before it ran",
    "missing_result": "a Message Batch ended without a result for the item",
    "invalid_output": "the reply is not valid JSON for output_schema",
    "tool_rounds_exceeded": "the model still asked for tools after the step's max_tool_rounds",
    "tool_error": "a tool raised and the step says tool_errors: raise; the message names the tool",
    "invalid_for_each": "for_each gave something that is not a list",
    "invalid_attachment": "an attachment known only at run time cannot be sent",
    "template_error": "a template failed to render, or the sandbox refused it",
    "unsafe_path": "output_to_file names a path outside the working directory, or a folder",
    "write_error": "the step's output could not be written to its file",
    "python_error": "a python step's function (or a Step's run) raised; the message names the exception",
    "child_failed": "a child of a parallel step failed (the child's own error is on the child)",
    "item_failed": "an item of a for_each step failed (each item's error is on the item)",
    "sample_failed": "a sample of a repeat step failed (each sample's error is on the sample)",
    "combination_failed": "a combination of a matrix step failed (each combination's error is on it)",
    "iteration_failed": "an iteration of a while step failed (its error is on the iteration)",
    "check_failed": "an expectation failed and the step says on_fail: error (the output is kept)",
    "step_failed": "a step of a nested pipeline failed",
    "mcp_server_failed": "an MCP server a step uses (not optional) did not start, or lacks a tool the step names; "
                         "the message names it, its command or URL and its stderr's last lines",
    "unexpected_error": "anything else, from a custom provider say; the message starts with what it was",
}
"""Every ``ErrorInfo.type``, with what it means: a closed vocabulary, so a type is something to
test for (``step.error.type == "rate_limit_error"``)."""


@dataclass(frozen=True)
class ErrorInfo:
    """Why a step failed: its type (one of ERROR_TYPES), the message and the request id."""

    type: str
    message: str
    request_id: str | None = None

    def __str__(self) -> str:
        rid = f" (request {self.request_id})" if self.request_id else ""
        if self.message == self.type or self.message.startswith(f"{self.type} "):  # the API gave no other words
            return f"{self.message}{rid}"
        return f"{self.type}: {self.message}{rid}"


@dataclass
class ToolCall:
    """One tool call of an llm step: what the model asked for, what came back, and how long it took.

    ``output`` is what the function returned (or, for a server tool, the result the API sent);
    ``is_error`` says whether the model was told it failed, ``error`` why."""

    step_id: str
    round: int
    """The step's call (1-based) whose reply asked for this tool."""
    id: str
    name: str
    input: Any = field(default_factory=dict)
    output: Any = None
    is_error: bool = False
    error: str | None = None
    duration: float | None = None
    server: bool = False
    """Run by the API (web search, web fetch, code execution), not in the kernel."""
    note: str = ""
    """What happened to the output on its way back (truncated, sent as an image, ...)."""


@dataclass(eq=False, slots=True)
class StepResult:
    """The result of one step. ``text`` is the final attempt's text only."""

    id: str
    type: str = "llm"
    status: StepStatus = "pending"
    text: str = ""
    output: Any = None
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0
    duration: float | None = None
    error: ErrorInfo | None = None
    model: str | None = None
    stop_reason: str | None = None
    note: str = ""
    cost: float | None = None
    """USD, when ``defaults.pricing`` prices the model."""
    items: list[StepResult] | None = None
    """Per-item results of a for_each step, in input order."""
    item: Any = field(default=None, repr=False)
    """For one item of a for_each step: its loop value (``as:``)."""
    index: int | None = None
    """For one item of a for_each step: its 0-based position in the list."""
    loop_var: str | None = None
    """For one item of a for_each step: the name of its loop value (``as:``, default ``item``)."""
    child: PipelineRun | None = field(default=None, repr=False)
    """The run of a pipeline step's child pipeline."""
    messages: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """The conversation sent (for ``continue:``)."""
    content: tuple[Block, ...] = field(default=(), repr=False)
    """The reply's content blocks (thinking, text with citations, ...); ``text`` is their text."""
    tool_calls: list[ToolCall] = field(default_factory=list, repr=False)
    """Every tool call of the step's tool loop, in the order they were asked for."""
    own_checks: list[CheckResult] = field(default_factory=list, repr=False)
    """The expectations checked on this result itself (``checks`` adds its items', samples' and
    combinations')."""
    samples: list[StepResult] | None = field(default=None, repr=False)
    """Each sample of a step with ``repeat: N``, in order (``answer#1`` ... ``answer#N``)."""
    sample: int | None = None
    """For one sample of a ``repeat`` step: its 1-based number."""
    variants: list[StepResult] | None = field(default=None, repr=False)
    """Each combination of a ``matrix`` step, in order (``answer@1`` ...)."""
    matrix: dict[str, Any] | None = field(default=None, repr=False)
    """For one combination of a ``matrix`` step: its values, by matrix key."""

    @property
    def thinking(self) -> str:
        """Claude's thinking before its answer (empty unless the step asked for thinking)."""
        return thinking_of(self.content)

    @property
    def citations(self) -> tuple[Citation, ...]:
        """The passages of attached documents that back the answer, in order."""
        return citations_of(self.content)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def checks(self) -> CheckList:
        """Every expectation checked on this step: its own, then its combinations', items' and
        samples', then those of the pipeline it ran."""
        found = CheckList(self.own_checks)
        for parts in (self.variants, self.items, self.samples):
            for part in parts or ():
                if part.own_checks or part.samples or part.items or part.child:  # no list built for the rest
                    found += part.checks
        if self.child is not None:
            found += self.child.checks
        return found

    @property
    def label(self) -> str:
        """A combination's values as ``model=claude-haiku-5-5 · style=terse`` ('' for other results)."""
        return variant_label(self.matrix) if self.matrix else ""

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per item of a for_each step (one for any other step): the loop value and
        mapping outputs spread into dotted columns. Needs no pandas (docs: Results as tables)."""
        from ._tables import step_records  # _tables imports this module

        return step_records(self)

    def to_pandas(self) -> Any:
        """``to_records()`` as a pandas DataFrame; without pandas, an ImportError says how to install it."""
        from ._tables import step_frame

        return step_frame(self)

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        error = f", error={str(self.error)!r}" if self.error else ""
        return f"StepResult(id={self.id!r}, status={self.status!r}, text={text!r}{error})"




@dataclass(eq=False)
class PipelineRun:
    """A pipeline run: its steps by id, in order, and what they produced."""

    name: str
    steps: dict[str, StepResult]
    description: str = ""
    status: RunStatus = "pending"
    duration: float | None = None
    saved: dict[str, str] = field(default_factory=dict)
    """Kernel names (``save_as``) → step ids."""
    handler_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What went wrong beside the steps without failing them (e.g. a cassette that could not be written)."""
    id: str = field(default_factory=lambda: new_run_id())
    """Unique and sortable by start time (``20261129-191600-3f9a2c``): the run's key in the journal."""
    reused_from: str | None = None
    """The id of the run whose replies this one reused (``--resume``)."""
    rate_limit_wait: float = 0.0
    """Seconds the run's calls spent paused by the API's rate limit (each pause counted once)."""
    _replies: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Its successful replies by request key, kept for a resume of it from memory."""
    budget: Any = field(default=None, repr=False, compare=False)
    """The run's budget (``max_cost``): ``.spent``, ``.max_cost``, ``describe()``; None without one."""
    _again: Any = field(default=None, repr=False, compare=False)
    """How to run its pipeline again as it was (set by ``run()`` and ``%%pipeline``)."""

    def rerun(self, *steps: str) -> PipelineRun:
        """Run the pipeline again, calling ``steps`` (and every step that reads them) for real and
        reusing this run's replies for the rest. Returns the new run."""
        from ._errors import PipelineError

        unknown = [s for s in steps if s not in self.steps]
        if unknown:
            raise PipelineError(f"no step {unknown[0]!r} in run {self.name!r}; its steps: {', '.join(self.steps)}")
        if self._again is None:
            raise PipelineError(f"run {self.id} was loaded from the journal: run its pipeline again with "
                                f"pipeline_nb.run(..., resume={self.id!r}, rerun={list(steps)!r})")
        return self._again(steps)

    @property
    def outputs(self) -> dict[str, Any]:
        return {sid: step.output for sid, step in self.steps.items() if step.status == "ok"}

    @property
    def usage(self) -> Usage:
        """Tokens of every step, and of the judges that checked them."""
        return sum((s.usage for s in self.steps.values()), Usage()) + sum(
            (c.usage for s in self.steps.values() for c in _checks_here(s)), Usage())

    @property
    def cost(self) -> float | None:
        """USD for the priced steps and judges, or None when nothing is priced."""
        costs = [s.cost for s in self.steps.values() if s.cost is not None]
        costs += [c.cost for s in self.steps.values() for c in _checks_here(s) if c.cost is not None]
        return sum(costs) if costs else None

    @property
    def checks(self) -> CheckList:
        """Every expectation checked in the run, step by step (``.pass_rate``, ``.failed``; its
        ``str()`` is the verdict table)."""
        found = CheckList()
        for step in self.steps.values():
            found += step.checks
        return found

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call of the run, step by step (items and children included)."""
        return [call for step in self.steps.values() for call in tool_calls_of(step)]

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps.values() if s.status in ("error", "interrupted")]

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per step, per for_each item and per nested pipeline's step (a parallel step's
        children are steps themselves). Needs no pandas (docs: Results as tables)."""
        from ._tables import run_records  # _tables imports this module

        return run_records(self)

    def to_pandas(self) -> Any:
        """``to_records()`` as a pandas DataFrame; without pandas, an ImportError says how to install it."""
        from ._tables import run_frame

        return run_frame(self)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.status] = counts.get(step.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"PipelineRun(name={self.name!r}, status={self.status!r}, steps: {summary})"


def _checks_here(step: StepResult) -> list[CheckResult]:
    """The step's checks outside the pipeline it ran (that run's cost is already the step's)."""
    return [c for part in (step, *(step.variants or ()), *(step.items or ()), *(step.samples or ()))
            for c in (part.own_checks if part is step else _checks_here(part))]


def variant_label(values: dict[str, Any]) -> str:
    """A matrix combination as ``model=claude-haiku-5-5 · style=terse`` (long values cut short)."""
    def short(value: Any) -> str:
        text = " ".join(str(value).split())
        return text if len(text) <= 40 else text[:39] + "…"

    return " · ".join(f"{key}={short(value)}" for key, value in values.items())


def leaves(result: StepResult) -> list[StepResult]:
    """The results one call each produced under ``result``: its samples', items' or combinations' (or itself)."""
    parts = result.samples or result.items or result.variants
    if not parts:
        return [result]
    return [leaf for part in parts for leaf in leaves(part)]


def latency(result: StepResult) -> float | None:
    """Mean seconds per call under ``result`` (its leaves' durations over their count; None before any ended)."""
    durations = [leaf.duration for leaf in leaves(result) if leaf.duration is not None]
    return sum(durations) / len(durations) if durations else None


def tool_calls_of(step: StepResult) -> list[ToolCall]:
    """The step's tool calls, then its items' and its nested pipeline's, in order."""
    calls = list(step.tool_calls)
    for item in (*(step.variants or ()), *(step.items or ()), *(step.samples or ())):
        calls += tool_calls_of(item)
    if step.child is not None:
        calls += step.child.tool_calls
    return calls


def new_run_id() -> str:
    """A run id: its start time (UTC), then six random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
