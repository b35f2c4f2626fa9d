"""What expectations found: one CheckResult per check of each result checked, and CheckList, a
list of them that knows its pass rates and renders as a verdict table.

A verdict table says, per step (per matrix combination) and check, how many results passed: no
text of a reply, no judge's reason, no time or cost. Two runs whose verdicts are the same give the
same bytes, so a notebook that shows only it is an nbval regression test against a live model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any, NamedTuple

from .content import Usage

__all__ = ["CheckList", "CheckResult", "PassRate"]


@dataclass(frozen=True)
class CheckResult:
    """One expectation checked on one result (a step, an item, a sample, a combination)."""

    step_id: str
    """The result it checked: ``answer``, ``answer[2]``, ``answer#3``, ``answer@1``."""
    name: str
    """The check's ``name:``, or one made from what it checks (``contains "Paris"``)."""
    kind: str
    """contains, not_contains, equals, regex, json_schema, python, judge, tokens, cost or seconds."""
    passed: bool
    detail: str = ""
    """Why it failed (or, for a judge, its reason; for a limit, what was measured)."""
    step: str = ""
    """The pipeline step it belongs to (``answer`` for every one of its items and samples)."""
    variant: str = ""
    """The matrix combination it belongs to, as ``model=claude-haiku-5-5 · style=terse`` ('' outside a matrix)."""
    usage: Usage = field(default_factory=Usage)
    """Tokens the check spent (a judge's call)."""
    cost: float | None = None
    """USD the check spent (a judge's call, when its model is priced)."""

    @property
    def symbol(self) -> str:
        return "✓" if self.passed else "✗"

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail and not self.passed else ""
        return f"{self.symbol} {self.step_id}: {self.name}{detail}"


class PassRate(NamedTuple):
    """How many results passed one check (of one step, or one combination of a matrix)."""

    step: str
    variant: str
    name: str
    passed: int
    total: int

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return self.passed == self.total

    def __str__(self) -> str:
        return f"{self.passed}/{self.total}"


class CheckList(list[CheckResult]):
    """Check results in the order they were made, with their pass rates.

    ``str()`` is the verdict table (byte-stable when the verdicts are); in a notebook it renders
    as the same table in HTML."""

    @property
    def passed(self) -> list[CheckResult]:
        return [c for c in self if c.passed]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self if not c.passed]

    @property
    def ok(self) -> bool:
        """Every check passed (True when there are none)."""
        return all(c.passed for c in self)

    @property
    def pass_rate(self) -> float | None:
        """The share of checks that passed, from 0 to 1; None when nothing was checked."""
        return len(self.passed) / len(self) if self else None

    @property
    def cost(self) -> float | None:
        """USD spent by judges, when priced."""
        costs = [c.cost for c in self if c.cost is not None]
        return sum(costs) if costs else None

    @property
    def usage(self) -> Usage:
        return sum((c.usage for c in self), Usage())

    def rates(self) -> list[PassRate]:
        """One PassRate per step, combination and check, in the order they were first checked."""
        counts: dict[tuple[str, str, str], list[int]] = {}
        for check in self:
            passed_total = counts.setdefault((check.step, check.variant, check.name), [0, 0])
            passed_total[0] += check.passed
            passed_total[1] += 1
        return [PassRate(step, variant, name, passed, total)
                for (step, variant, name), (passed, total) in counts.items()]

    def by_name(self) -> dict[str, PassRate]:
        """Pass rates by check name, over every step and combination of this list."""
        merged: dict[str, list[int]] = {}
        for rate in self.rates():
            passed_total = merged.setdefault(rate.name, [0, 0])
            passed_total[0] += rate.passed
            passed_total[1] += rate.total
        return {name: PassRate("", "", name, passed, total) for name, (passed, total) in merged.items()}

    def summary(self) -> str:
        """``checks: 7 of 8 passed`` (or ``no checks``)."""
        if not self:
            return "no checks"
        return f"checks: {len(self.passed)} of {len(self)} passed"

    def __str__(self) -> str:
        return verdict_text(self)

    def _repr_html_(self) -> str:
        return verdict_html(self)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per check result: step, result, variant, check, kind, passed, detail, cost."""
        return [{"step": c.step, "result": str(c.step_id), "variant": c.variant, "check": c.name, "kind": c.kind,
                 "passed": c.passed, "detail": c.detail, "cost": c.cost} for c in self]

    def to_pandas(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas is the optional ``pipeline_nb[pandas]`` extra)."""
        from ._tables import records_frame

        return records_frame(self.to_records())


def verdict_rows(checks: Iterable[CheckResult]) -> list[tuple[str, str, str]]:
    """(step, check, verdict) per pass rate: ``answer``, ``contains "Paris"``, ``✓ 3/3``; a
    combination of a matrix is named after its step: ``answer [model=claude-haiku-5-5]``."""
    rows = []
    for rate in CheckList(checks).rates():
        where = f"{rate.step} [{rate.variant}]" if rate.variant else rate.step
        rows.append((where, rate.name, f"{'✓' if rate.ok else '✗'} {rate}"))
    return rows


def verdict_text(checks: CheckList) -> str:
    """The verdict table as aligned text, its summary line first."""
    rows = verdict_rows(checks)
    if not rows:
        return checks.summary()
    head = ("step", "check", "result")
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(2)]
    lines = [checks.summary()]
    lines += [f"  {a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in (head, *rows)]
    return "\n".join(lines)


def verdict_html(checks: CheckList) -> str:
    """The verdict table as HTML: the same rows and words as :func:`verdict_text`."""
    rows = verdict_rows(checks)
    cell = "padding:1px 14px 1px 0;text-align:left"
    body = "".join(
        f'<tr class="pnb-verdict pnb-verdict-{"pass" if verdict.startswith("✓") else "fail"}">'
        f'<td style="{cell}">{escape(where)}</td><td style="{cell}">{escape(name)}</td>'
        f'<td style="{cell};color:{"#188038" if verdict.startswith("✓") else "#d93025"}">{escape(verdict)}</td></tr>'
        for where, name, verdict in rows)
    table = (f'<table class="pnb-checks" style="border-collapse:collapse;margin:0.3em 0">'
             f'<thead><tr style="color:#666"><th style="{cell}">step</th><th style="{cell}">check</th>'
             f'<th style="{cell}">result</th></tr></thead><tbody>{body}</tbody></table>') if rows else ""
    return f'<div class="pnb-verdicts"><div><b>{escape(checks.summary())}</b></div>{table}</div>'


def check_rates(checks: Iterable[CheckResult]) -> Mapping[str, PassRate]:
    """Pass rates by check name (for a table's ``check: <name>`` columns)."""
    return CheckList(checks).by_name()
