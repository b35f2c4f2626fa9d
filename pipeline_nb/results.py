"""What a run leaves behind: PipelineRun and its StepResults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .content import Block, Citation, Usage, citations_of, thinking_of

__all__ = ["ErrorInfo", "PipelineRun", "StepResult", "Usage"]

StepStatus = Literal["pending", "running", "ok", "error", "skipped", "interrupted"]
RunStatus = Literal["pending", "running", "ok", "error", "interrupted"]


@dataclass(frozen=True)
class ErrorInfo:
    """Why a step failed: the error type (the API's when it gave one), message and request id."""

    type: str
    message: str
    request_id: str | None = None

    def __str__(self) -> str:
        rid = f" (request {self.request_id})" if self.request_id else ""
        if self.message == self.type or self.message.startswith(f"{self.type} "):  # the API gave no other words
            return f"{self.message}{rid}"
        return f"{self.type}: {self.message}{rid}"


@dataclass(eq=False)
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
    child: PipelineRun | None = field(default=None, repr=False)
    """The run of a pipeline step's child pipeline."""
    messages: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """The conversation sent (for ``continue:``)."""
    content: tuple[Block, ...] = field(default=(), repr=False)
    """The reply's content blocks (thinking, text with citations, ...); ``text`` is their text."""

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

    @property
    def outputs(self) -> dict[str, Any]:
        return {sid: step.output for sid, step in self.steps.items() if step.status == "ok"}

    @property
    def usage(self) -> Usage:
        return sum((s.usage for s in self.steps.values()), Usage())

    @property
    def cost(self) -> float | None:
        """USD for the priced steps, or None when nothing is priced."""
        costs = [s.cost for s in self.steps.values() if s.cost is not None]
        return sum(costs) if costs else None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps.values() if s.status in ("error", "interrupted")]

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.status] = counts.get(step.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"PipelineRun(name={self.name!r}, status={self.status!r}, steps: {summary})"


