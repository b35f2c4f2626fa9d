"""The final rendering's evaluation parts: a step's pass rates and failures, a matrix step's
comparison (one row per combination), and the run's verdict table.

Text and HTML say the same things in the same words. A latency reads ``in 1.23s``, the form the
nbval sanitize file masks; everything else here is stable when the replies and verdicts are.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from ._budget import usd
from ._check_results import CheckList, CheckResult, PassRate, verdict_html, verdict_text
from ._render import COLORS, seconds
from ._results import latency
from ._text import excerpt

if TYPE_CHECKING:
    from ._results import PipelineRun, StepResult

FAILURES_SHOWN = 3
"""Failed results listed under a check that failed; the rest are counted (``and 5 more``)."""
DETAIL_SHOWN = 200
"""Characters of why a check failed (a judge's reason may be long) that its line shows."""
VALUE_SHOWN = 40
"""Characters of a matrix value that a comparison cell shows."""
_CELL = "padding:1px 12px 1px 0;text-align:left;white-space:nowrap"
_GREEN, _RED = COLORS["ok"], COLORS["error"]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def check_facts(step: StepResult, checks: CheckList, note: str = "") -> list[str]:
    """Facts for a step's line: ``3 samples``, ``4 combinations`` (unless the ``note`` it shows
    says so), ``checks 5/6``."""
    facts = []
    if step.samples is not None and "sample" not in note:
        facts.append(_plural(len(step.samples), "sample"))
    if step.variants is not None and "combination" not in note:
        facts.append(_plural(len(step.variants), "combination"))
    if checks:
        facts.append(f"checks {len(checks.passed)}/{len(checks)}")
    return facts


def rate_line(rate: PassRate) -> str:
    """``✓ contains "Paris" 3/3``; a combination's ends with its values: ``[model=claude-haiku-5-5]``."""
    where = f" [{rate.variant}]" if rate.variant else ""
    return f"{'✓' if rate.ok else '✗'} {rate.name} {rate}{where}"


def _failures(checks: CheckList) -> dict[tuple[str, str, str], list[CheckResult]]:
    """The failed checks by (step, variant, name), in the order they were checked."""
    found: dict[tuple[str, str, str], list[CheckResult]] = {}
    for check in checks.failed:
        found.setdefault((check.step, check.variant, check.name), []).append(check)
    return found


def failure_lines(failed: Sequence[CheckResult], limit: int = FAILURES_SHOWN) -> list[str]:
    """``answer#2: the output does not contain "Paris"`` for the first ``limit``, then ``and N more``."""
    lines = [f"{check.step_id}: {excerpt(check.detail, DETAIL_SHOWN) or 'failed'}" for check in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"and {len(failed) - limit} more")
    return lines


def check_lines(step: StepResult, checks: CheckList, indent: str = "      ") -> list[str]:
    """The text under a step's line: its comparison table (a matrix step), a line per check's pass
    rate (a matrix step's: per combination, for those that failed) and, under a failed one, which
    results failed and why."""
    if not checks and step.variants is None:
        return []
    lines = []
    if step.variants is not None:
        lines += [indent + line for line in comparison_text(step).splitlines()]
    failures = _failures(checks)
    for rate in checks.rates():
        if step.variants is not None and rate.ok:  # the table says it
            continue
        lines.append(indent + rate_line(rate))
        lines += [f"{indent}    {line}" for line in failure_lines(failures.get(rate[:3], []))]
    return lines


def checks_html(step: StepResult, checks: CheckList) -> str:
    """A step's pass rates as HTML lines (green or red), each failed one with its failed results
    below it, after the comparison table of a matrix step."""
    parts = [comparison_html(step)] if step.variants is not None else []
    failures = _failures(checks)
    for rate in checks.rates():
        if step.variants is not None and rate.ok:
            continue
        color = _GREEN if rate.ok else _RED
        status = "pass" if rate.ok else "fail"
        shown = failure_lines(failures.get(rate[:3], []))
        details = "".join(f'<div class="pnb-check-failure" style="margin-left:1.4em;color:#555">{escape(line)}</div>'
                          for line in shown)
        parts.append(f'<div class="pnb-check pnb-check-{status}" data-check="{escape(rate.name)}" '
                     f'style="color:{color}">{escape(rate_line(rate))}</div>{details}')
    if not parts:
        return ""
    return f'<div class="pnb-step-checks" style="margin:0.3em 0 0.2em 0.9em">{"".join(parts)}</div>'


def verdict_lines(checks: CheckList) -> list[str]:
    """The run's verdict table, indented, when the run checked anything (``checks``: the run's)."""
    return ["  " + line for line in verdict_text(checks).splitlines()] if checks else []


def run_checks_html(run: PipelineRun) -> str:
    checks = run.checks
    return verdict_html(checks) if checks else ""


# -- a matrix step's comparison: one row per combination --

def comparison_rows(step: StepResult) -> tuple[list[str], list[list[str]]]:
    """``(heads, rows)`` of a matrix step's comparison: the combination's values (a column per
    matrix key), status, checks passed overall and per check, input and output tokens, cost, and
    latency (last: it varies, and nbval masks it)."""
    variants = step.variants or []
    keys = list(dict.fromkeys(key for variant in variants for key in (variant.matrix or {})))
    names = list(step.checks.by_name())
    heads = [*keys, "status", *(["checks"] if names else []), *names, "in", "out", "cost", "latency"]
    rows = []
    for variant in variants:
        checks = variant.checks
        rates = checks.by_name()
        values = [excerpt(str((variant.matrix or {}).get(key, "")), VALUE_SHOWN) for key in keys]
        passed = [f"{len(checks.passed)}/{len(checks)}" if checks else "–"] if names else []
        usage = variant.usage
        rows.append([*values, variant.status, *passed, *(str(rates[n]) if n in rates else "–" for n in names),
                     str(usage.input_tokens), str(usage.output_tokens),
                     usd(variant.cost) if variant.cost is not None else "–", seconds(latency(variant))])
    return heads, rows


def comparison_text(step: StepResult) -> str:
    """The comparison as aligned columns (numbers to the right)."""
    heads, rows = comparison_rows(step)
    right = {i for i, head in enumerate(heads) if head in ("in", "out", "cost")}
    widths = [max(len(row[i]) for row in (heads, *rows)) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join(line(cells) for cells in (heads, *rows))


def comparison_html(step: StepResult) -> str:
    """The comparison as a table: a row per combination (``tr.pnb-combo``, its ``data-status``)."""
    heads, rows = comparison_rows(step)
    status_at = heads.index("status")
    rates = range(status_at + 1, heads.index("in"))  # the columns of pass rates
    head = "".join(f'<th style="{_CELL}">{escape(h)}</th>' for h in heads)
    body = []
    for variant, cells in zip(step.variants or [], rows):
        tds = []
        for i, cell in enumerate(cells):
            color = _cell_color(cell, status=i == status_at, rate=i in rates)
            tds.append(f'<td style="{_CELL}{color}">{escape(cell)}</td>')
        body.append(f'<tr class="pnb-combo" data-status="{escape(variant.status)}" '
                    f'data-combo="{escape(variant.label)}">{"".join(tds)}</tr>')
    return (f'<table class="pnb-compare" style="border-collapse:collapse;margin:0.3em 0;font-size:0.92em">'
            f'<thead><tr style="color:#666">{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _cell_color(cell: str, *, status: bool, rate: bool) -> str:
    """A status in its colour; a pass rate green when full, red when not."""
    if status:
        return f";color:{COLORS.get(cell, '#777')}"
    if rate and "/" in cell:
        passed, _, total = cell.partition("/")
        return f";color:{_GREEN if passed == total else _RED}"
    return ""
