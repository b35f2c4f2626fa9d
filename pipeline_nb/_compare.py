"""Two runs side by side: ``compare(run_a, run_b)``, from memory or from the journal.

A comparison has a row per step present in either run, in the runs' order (a matrix step has a
row per combination instead, matched by its values, not by its position): both statuses, how the
text changed, each check's pass rate in both runs (a check that passed every time in run A and
not in run B is flagged), cost, latency and tokens. Above the rows, the runs themselves: status,
pass rate, total cost (judges included), tokens and duration. ``str()`` is the text form (the
CLI's ``compare``), ``_repr_html_`` a table with an inline word diff, ``to_records()`` /
``to_pandas()`` one row per step.

>>> comparison = compare(yesterday, today)        # doctest: +SKIP
>>> comparison.regressions                        # doctest: +SKIP
['answer: contains "Paris"']
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ._check_results import PassRate
from ._journal_read import RunSummary, load_run
from ._results import PipelineRun, StepResult

__all__ = ["CheckChange", "RunComparison", "StepComparison", "compare"]

SAME = "same text"
DIFF_LINES = 12
"""Lines of a text diff that the text form shows; the rest are counted."""
LINE_CHARS = 100
"""Characters shown of one line of a text diff."""
BEFORE_CHANGE = 30
"""Characters of a long changed line shown before its first change (the rest before it is cut)."""
WORD_DIFF_CHARS = 4000
"""Characters of each text the HTML word diff compares: beyond that it is slow and unreadable."""
COLUMNS = ("step", "variant", "status_a", "status_b", "diff", "checks_a", "checks_b", "regressed", "cost_a",
           "cost_b", "duration_a", "duration_b", "tokens_a", "tokens_b", "text_a", "text_b")
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class CheckChange:
    """One check's pass rate in run A and in run B (None where that run did not check it)."""

    name: str
    a: PassRate | None
    b: PassRate | None

    @property
    def regressed(self) -> bool:
        """It passed every time in run A, and not in run B."""
        return self.a is not None and self.a.ok and self.b is not None and not self.b.ok

    def __str__(self) -> str:
        return f"{self.name} {_rate(self.a)} → {_rate(self.b)}" + (" ✗ was passing" if self.regressed else "")


@dataclass(frozen=True)
class StepComparison:
    """One step (or one combination of a matrix step) in run A and in run B (None where absent)."""

    step: str
    variant: str
    """The combination's values (``model=claude-haiku-5-5 · style=terse``); '' outside a matrix."""
    a: StepResult | None
    b: StepResult | None
    checks: tuple[CheckChange, ...]

    @property
    def where(self) -> str:
        return f"{self.step} [{self.variant}]" if self.variant else self.step

    @property
    def only_in(self) -> str | None:
        """``"A"`` or ``"B"`` for a step only one run has, else None."""
        return "A" if self.b is None else "B" if self.a is None else None

    @property
    def same_text(self) -> bool | None:
        return None if self.only_in else self.a.text == self.b.text

    @property
    def regressed(self) -> list[CheckChange]:
        return [change for change in self.checks if change.regressed]

    def diff(self) -> str:
        """How the text changed, as a compact unified diff (``same text`` when it did not)."""
        if self.only_in:
            return f"only in run {self.only_in}"
        return text_diff(self.a.text, self.b.text)

    def to_record(self) -> dict[str, Any]:
        record = {"step": self.step, "variant": self.variant, "diff": self.diff(),
                  "regressed": ", ".join(change.name for change in self.regressed)}
        for side, result in (("a", self.a), ("b", self.b)):
            present = result is not None
            record |= {f"status_{side}": result.status if present else None,
                       f"checks_{side}": result.checks.pass_rate if present else None,
                       f"cost_{side}": result.cost if present else None,
                       f"duration_{side}": result.duration if present else None,
                       f"tokens_{side}": result.usage.total if present else None,
                       f"text_{side}": result.text if present else None}
        return {column: record[column] for column in COLUMNS}


@dataclass(frozen=True, eq=False)
class RunComparison:
    """Run A and run B side by side: ``steps`` holds a StepComparison per step (per combination)."""

    a: PipelineRun
    b: PipelineRun
    steps: tuple[StepComparison, ...]

    @property
    def regressions(self) -> list[str]:
        """``step: check`` for every check that passed every time in run A and not in run B."""
        return [f"{row.where}: {change.name}" for row in self.steps for change in row.regressed]

    def __str__(self) -> str:
        lines = [_run_line("A", self.a), _run_line("B", self.b)]
        for row in self.steps:
            lines += ["", *_row_lines(row)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's text/plain: the text form
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return comparison_html(self)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per step (per combination of a matrix step): the ``COLUMNS``, ``_a`` for run A
        and ``_b`` for run B (None where the run has no such step; ``checks_`` are pass rates, 0 to 1)."""
        return [row.to_record() for row in self.steps]

    def to_pandas(self) -> Any:
        """``to_records()`` as a pandas DataFrame (pandas is the optional ``pipeline_nb[pandas]`` extra)."""
        from ._tables import records_frame

        return records_frame(self.to_records(), columns=COLUMNS)


def compare(a: PipelineRun | RunSummary | str, b: PipelineRun | RunSummary | str, *,
            journal: str | Path | None = None) -> RunComparison:
    """Compare two runs, each a PipelineRun (from memory), a run id or a ``history()`` entry (read
    from ``journal``, default as ``load_run`` finds it). An id the journal lacks raises JournalError."""
    run_a, run_b = _the_run(a, journal, "a"), _the_run(b, journal, "b")
    return RunComparison(run_a, run_b, tuple(_rows(run_a, run_b)))


def _the_run(run: Any, journal: str | Path | None, which: str) -> PipelineRun:
    if isinstance(run, PipelineRun):
        return run
    if isinstance(run, RunSummary):
        run = run.id
    if isinstance(run, str):
        return load_run(run, journal=journal)
    msg = f"compare({which}=...) takes a PipelineRun or a run id (as history() lists them), got {type(run).__name__}"
    raise TypeError(msg)


def _rows(a: PipelineRun, b: PipelineRun) -> Iterator[StepComparison]:
    for step_id in merged(list(a.steps), list(b.steps)):
        step_a, step_b = a.steps.get(step_id), b.steps.get(step_id)
        if all(step is None or step.variants is None for step in (step_a, step_b)):
            yield _row(step_id, "", step_a, step_b)
            continue
        parts_a, parts_b = _combinations(step_a), _combinations(step_b)
        for key in merged(list(parts_a), list(parts_b)):
            part_a, part_b = parts_a.get(key), parts_b.get(key)
            yield _row(step_id, (part_a or part_b).label, part_a, part_b)


def _combinations(step: StepResult | None) -> dict[str, StepResult]:
    """A matrix step's combinations by their values (not their place, which a changed matrix
    moves); a step that has none (it is no longer a matrix, or failed first) stands as itself."""
    if step is None:
        return {}
    return {json.dumps(part.matrix, sort_keys=True, default=str): part for part in step.variants or (step,)}


def _row(step: str, variant: str, a: StepResult | None, b: StepResult | None) -> StepComparison:
    rates_a = a.checks.by_name() if a is not None else {}
    rates_b = b.checks.by_name() if b is not None else {}
    names = merged(list(rates_a), list(rates_b))
    return StepComparison(step, variant, a, b, tuple(CheckChange(n, rates_a.get(n), rates_b.get(n)) for n in names))


def merged(a: list[str], b: list[str]) -> list[str]:
    """Every name of ``a`` and ``b`` once: ``a``'s in their order, and each of ``b``'s others right
    after the name ``b`` has before it; those ``b`` has first go before its first name that ``a``
    has too (at the end when there is none)."""
    order, placed, previous = list(a), set(a), None
    for number, name in enumerate(b):
        if name not in placed:
            if previous is not None:
                at = order.index(previous) + 1
            else:
                at = next((order.index(later) for later in b[number + 1:] if later in placed), len(order))
            order.insert(at, name)
            placed.add(name)
        previous = name
    return order


# -- the text form --

def text_diff(a: str, b: str) -> str:
    """A compact unified diff of two texts: the changed lines with one line of context, each
    removed line followed by the line that replaced it, a long line shown from just before its
    first change, at most DIFF_LINES lines and a count of the rest."""
    if a == b:
        return SAME
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=1))[2:]
    if not lines:
        return "the texts differ only in their line endings"
    shown = [line for line in _focused(lines) if line is not None][:DIFF_LINES]
    rest = len([line for line in lines if not line.startswith("@@")]) - len([s for s in shown if s != "…"])
    return "\n".join(shown + ([f"… {rest} more line{'' if rest == 1 else 's'} of diff"] if rest > 0 else []))


def _focused(lines: list[str]) -> Iterator[str | None]:
    """The diff's lines, hunk headers as ``…`` (None for the first), each removed line followed by
    the added line in its place, both shown from just before where they first differ."""
    removed: list[str] = []
    added: list[str] = []

    def flush() -> Iterator[str]:  # a removed line, then the added line in its place: the change reads at once
        for number in range(max(len(removed), len(added))):
            if number < len(removed):
                yield _clipped("-", removed[number], added[number] if number < len(added) else removed[number])
            if number < len(added):
                yield _clipped("+", added[number], removed[number] if number < len(removed) else added[number])
        removed.clear()
        added.clear()

    for number, line in enumerate(lines):
        if line.startswith("-"):
            if added:
                yield from flush()
            removed.append(line[1:])
        elif line.startswith("+"):
            added.append(line[1:])
        else:
            yield from flush()
            if line.startswith("@@"):
                yield "…" if number else None
            else:
                yield _clipped(" ", line[1:], line[1:])
    yield from flush()


def _clipped(mark: str, line: str, other: str) -> str:
    if len(line) <= LINE_CHARS or line == other:  # it fits, or there is no change to bring into view
        start = 0
    else:
        start = min(max(0, len(os.path.commonprefix([line, other])) - BEFORE_CHANGE), len(line) - LINE_CHARS + 1)
    shown = ("…" if start else "") + line[start:]
    return (mark + " " + (shown if len(shown) <= LINE_CHARS else shown[:LINE_CHARS - 1] + "…")).rstrip()


def _run_line(which: str, run: PipelineRun) -> str:
    return f"{which}  run {run.id}  {run.name}: " + " · ".join(_run_facts(run))


def _run_facts(run: PipelineRun) -> list[str]:
    checks = run.checks
    rate = f"checks {len(checks.passed)} of {len(checks)} passed ({checks.pass_rate:.0%})" if checks else "no checks"
    cost = [_money(run.cost)] if run.cost is not None else []
    return [run.status, rate, *cost, f"{run.usage.total} tokens", _took(run.duration)]


def _row_lines(row: StepComparison) -> list[str]:
    a, b = row.a, row.b
    if row.only_in:
        there = a or b
        facts = [there.status, *([_money(there.cost)] if there.cost is not None else []), _took(there.duration),
                 f"{there.usage.total} tokens"]
        lines = [f"{row.where}: only in run {row.only_in} ({' · '.join(facts)})"]
        rates = there.checks.by_name().values()
        return lines + ([f"  checks: {' · '.join(f'{rate.name} {rate}' for rate in rates)}"] if rates else [])
    cost = [f"{_money(a.cost)} → {_money(b.cost)}"] if (a.cost, b.cost) != (None, None) else []  # not priced
    lines = [f"{row.where}: " + " · ".join((f"{a.status} → {b.status}", *cost,
                                            f"{_took(a.duration)} → {_took(b.duration)}",
                                            f"{a.usage.total} → {b.usage.total} tokens"))]
    if row.checks:
        lines.append("  checks: " + " · ".join(map(str, row.checks)))
    return lines + [f"  {line}".rstrip() for line in row.diff().splitlines()]


def _rate(rate: PassRate | None) -> str:
    return "–" if rate is None else str(rate)


def _money(cost: float | None) -> str:
    return "–" if cost is None else f"${cost:.4f}"


def _took(duration: float | None) -> str:
    return "–s" if duration is None else f"{duration:.2f}s"


# -- the HTML form --

def comparison_html(comparison: RunComparison) -> str:
    """A table: the runs, then a row per step (per combination) with an inline word diff of its text."""
    a, b = comparison.a, comparison.b
    head = "".join(f'<th style="{_CELL}">{name}</th>'
                   for name in ("", "status", "checks", "cost", "latency", "tokens", "text"))
    runs = _html_row("runs", f"{a.status} → {b.status}", escape(f"{_run_rate(a)} → {_run_rate(b)}"),
                     f"{_money(a.cost)} → {_money(b.cost)}", f"{_took(a.duration)} → {_took(b.duration)}",
                     f"{a.usage.total} → {b.usage.total}", f"A: run {escape(a.id)}<br>B: run {escape(b.id)}")
    rows = "".join(map(_step_html, comparison.steps))
    return (f'<div class="pnb-compare"><b>{escape(a.name)}</b>: run A {escape(a.id)} → run B {escape(b.id)}'
            f'<table style="border-collapse:collapse;margin:0.3em 0"><thead><tr style="color:#666">{head}</tr>'
            f'</thead><tbody>{runs}{rows}</tbody></table></div>')


_CELL = "padding:2px 12px 2px 0;text-align:left;vertical-align:top"


def _step_html(row: StepComparison) -> str:
    a, b = row.a, row.b
    if row.only_in:
        there = a or b
        return _html_row(row.where, there.status, escape(there.checks.summary()), _money(there.cost),
                         _took(there.duration), str(there.usage.total), f"<i>only in run {row.only_in}</i>")
    checks = "<br>".join(f'<span style="color:#d93025">{escape(str(change))}</span>' if change.regressed
                         else escape(str(change)) for change in row.checks)
    return _html_row(row.where, f"{a.status} → {b.status}", checks, f"{_money(a.cost)} → {_money(b.cost)}",
                     f"{_took(a.duration)} → {_took(b.duration)}", f"{a.usage.total} → {b.usage.total}",
                     word_diff_html(a.text, b.text))


def _html_row(where: str, status: str, checks_html: str, cost: str, took: str, tokens: str, text_html: str) -> str:
    """A table row; ``checks_html`` and ``text_html`` are HTML already, the rest plain text."""
    values = [escape(where), escape(status), checks_html, escape(cost), escape(took), escape(tokens), text_html]
    return "<tr>" + "".join(f'<td style="{_CELL}">{value}</td>' for value in values) + "</tr>"


def _run_rate(run: PipelineRun) -> str:
    rate = run.checks.pass_rate
    return "no checks" if rate is None else f"{rate:.0%}"


def word_diff_html(a: str, b: str) -> str:
    """The change from ``a`` to ``b`` inline: removed words in ``<del>``, added ones in ``<ins>``;
    texts longer than WORD_DIFF_CHARS are compared on their start, with a note saying so."""
    if a == b:
        return f'<span style="color:#666">{SAME}</span>'
    words_a, words_b = _WORDS.findall(a[:WORD_DIFF_CHARS]), _WORDS.findall(b[:WORD_DIFF_CHARS])
    pieces = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, words_a, words_b, autojunk=False).get_opcodes():
        if tag == "equal":
            pieces.append(escape("".join(words_a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(f'<del style="background:#fce8e6">{escape("".join(words_a[i1:i2]))}</del>')
        if j2 > j1:
            pieces.append(f'<ins style="background:#e6f4ea;text-decoration:none">'
                          f'{escape("".join(words_b[j1:j2]))}</ins>')
    cut = max(len(a), len(b)) > WORD_DIFF_CHARS
    note = (f'<div style="color:#666">(texts cut: the diff compares their first {WORD_DIFF_CHARS:,} characters; '
            f'<code>.a</code> and <code>.b</code> hold all of them)</div>') if cut else ""
    return f'<div style="white-space:pre-wrap;max-width:60em">{"".join(pieces)}</div>{note}'
