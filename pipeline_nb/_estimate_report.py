"""What an estimate says: a row per step (:class:`StepEstimate`), totals, a plain-text table and records.

Made by :func:`pipeline_nb._estimate.estimate`; see there for how each figure is found.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ._budget import usd


@dataclass(frozen=True)
class StepEstimate:
    """What one step would cost. ``output_tokens`` and ``cost_max`` are the worst case (every call
    uses all of ``max_tokens``); ``cost_min`` prices the input alone. Costs are USD, None when
    ``defaults.pricing`` does not price the model.

    ``exact``: every input figure is the provider's own count (claude's count_tokens), not an
    estimate. ``bound``: the input reads earlier replies, so it is an upper bound made from their
    worst case. ``partial``: something could not be estimated (see ``note``), so the figures may be
    below what the run costs."""

    step_id: str
    type: str
    model: str | None = None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_min: float | None = None
    cost_max: float | None = None
    batch: bool = False
    exact: bool = True
    bound: bool = False
    partial: bool = False
    note: str = ""

    def times(self, count: int) -> StepEstimate:
        """This row for ``count`` runs of the step (a for_each of a pipeline or parallel step)."""
        return replace(self, calls=self.calls * count, input_tokens=self.input_tokens * count,
                       output_tokens=self.output_tokens * count,
                       cost_min=None if self.cost_min is None else self.cost_min * count,
                       cost_max=None if self.cost_max is None else self.cost_max * count)


@dataclass
class Estimate:
    """A pipeline's estimate: ``steps`` in run order (nested pipelines' steps as ``parent/child``),
    the totals, and ``warnings`` (what the whole estimate could not do, e.g. reach count_tokens)."""

    name: str
    steps: list[StepEstimate]
    warnings: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(row.calls for row in self.steps)

    @property
    def input_tokens(self) -> int:
        return sum(row.input_tokens for row in self.steps)

    @property
    def output_tokens(self) -> int:
        return sum(row.output_tokens for row in self.steps)

    @property
    def cost_min(self) -> float | None:
        """USD of the priced steps' input alone (None when nothing is priced)."""
        costs = [row.cost_min for row in self.steps if row.cost_min is not None]
        return sum(costs) if costs else None

    @property
    def cost_max(self) -> float | None:
        """USD of the priced steps' worst case (None when nothing is priced)."""
        costs = [row.cost_max for row in self.steps if row.cost_max is not None]
        return sum(costs) if costs else None

    @property
    def unpriced(self) -> list[str]:
        """Models that make calls but have no price in ``defaults.pricing``."""
        return list(dict.fromkeys(row.model for row in self.steps if row.calls and row.cost_max is None and row.model))

    @property
    def exact(self) -> bool:
        return all(row.exact for row in self.steps)

    @property
    def bound(self) -> bool:
        return any(row.bound for row in self.steps)

    @property
    def partial(self) -> bool:
        return any(row.partial for row in self.steps)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per step, the fields of :class:`StepEstimate` (for pandas, JSON or a CSV)."""
        return [asdict(row) for row in self.steps]

    def describe(self) -> str:
        """The estimate as a plain-text table, for a terminal or a notebook cell's text."""
        header = ("step", "calls", "input tokens", "output ≤", "cost (USD)", "")
        lines = [_cells(row) for row in self.steps]
        total = ("total", f"{self.calls:,}", _tokens(self.input_tokens, self.bound, self.partial),
                 f"{self.output_tokens:,}", _cost_range(self.cost_min, self.cost_max), "")
        widths = [max(len(r[i]) for r in (header, *lines, total)) for i in range(5)]
        rule = "  ".join("-" * w for w in widths)

        def text(cells: tuple[str, ...]) -> str:
            aligned = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:5], widths[1:])]
            return "  ".join(aligned + [cells[5]]).rstrip()

        out = [f"Estimate of {self.name!r} (no model was called)", text(header), rule,
               *map(text, lines), rule, text(total)]
        out += [f"  {line}" for line in self._legend()]
        return "\n".join(out)

    def _legend(self) -> list[str]:
        legend = ["input: counted by the API's count_tokens" if self.exact else
                  "~ input estimated, not counted by the API: the mock's own guess, or 4 characters a token",
                  "output ≤ and the higher cost assume every call uses all of its max_tokens; "
                  "the lower cost is the input alone (a cache read costs less still)"]
        if self.bound:
            legend.append("≤ a bound: the step reads earlier replies, counted at their worst case")
        if self.partial:
            legend.append("+ partial: part of the cost cannot be known before the run (see the note)")
        if self.unpriced:
            legend.append(f"no price for {', '.join(self.unpriced)}: add defaults.pricing to see their cost")
        return legend + [f"warning: {w}" for w in self.warnings]

    def __repr__(self) -> str:
        return (f"Estimate(name={self.name!r}, calls={self.calls}, input_tokens={self.input_tokens}, "
                f"output_tokens={self.output_tokens}, cost={_cost_range(self.cost_min, self.cost_max) or None})")


def _cells(row: StepEstimate) -> tuple[str, ...]:
    notes = [note for note in (("batch: half price" if row.batch else ""), row.note) if note]
    return (row.step_id, f"{row.calls:,}" if row.calls or row.type == "llm" else "",
            _tokens(row.input_tokens, row.bound, row.partial, row.exact) if row.calls else "",
            f"{row.output_tokens:,}" if row.calls else "", _cost_range(row.cost_min, row.cost_max),
            "; ".join(notes))


def _tokens(count: int, bound: bool, partial: bool, exact: bool = True) -> str:
    return f"{'≤ ' if bound else ''}{'' if exact else '~'}{count:,}{'+' if partial else ''}"


def _cost_range(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{usd(low)} – {usd(high)}"
