"""What the terminal view says in words: the run summary, citation notes, waits."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from ..content import Citation
from .._render import ICONS, citation_place, citation_title, content_facts, run_facts, step_facts
from .._text import excerpt

if TYPE_CHECKING:
    from .._results import PipelineRun

CITED_EXCERPT = 60
"""Characters of a cited passage that its note shows."""


def run_summary(run: PipelineRun) -> str:
    """The run's status, tokens and time, then one line per step (its error below it), then the
    verdict table when the run checked anything."""
    from .._render_checks import check_facts, verdict_lines  # it imports _render, as this module does

    lines = [f"{run.name}: {' · '.join(run_facts(run))}"]
    for step in run.steps.values():
        facts = step_facts(step) + content_facts(step) + check_facts(step, step.checks)
        line = f"  {ICONS[step.status]} {step.id}: {' · '.join(facts)}"
        if step.error:
            line += f"\n      {step.error}"
        elif step.note and (step.status != "ok" or step.note.startswith("reused from run")):
            line += f"\n      {step.note}"
        lines.append(line)
    lines += [f"  handler error: {e}" for e in run.handler_errors]
    lines += [f"  warning: {w}" for w in run.warnings]
    return "\n".join(lines + verdict_lines(run.checks))


def cites_note(step_id: str, citation: Citation) -> str:
    """``[a: cites "The Moon pulls…" (Tides, p. 3)]``"""
    place = citation_place(citation)
    where = f"{citation_title(citation)}{f', {place}' if place else ''}"
    return f'[{step_id}: cites "{excerpt(citation.cited_text, CITED_EXCERPT)}" ({where})]'


def is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def spoken_seconds(delay: float) -> str:
    """``30``, ``0.5``: a wait as a reader says it."""
    return f"{delay:.1f}".rstrip("0").rstrip(".")
