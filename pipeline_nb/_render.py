"""The plain, final rendering of a run: text and HTML that read well anywhere
(JupyterLab, VS Code, GitHub, nbval) with no kernel and no widget state."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from ._check_results import CheckList
from ._results import tool_calls_of
from ._text import compact_json, excerpt
from .content import Citation, Text, text_of

if TYPE_CHECKING:
    from ._results import PipelineRun, StepResult, ToolCall

ICONS = {"pending": "○", "running": "◐", "ok": "✓", "error": "✗", "skipped": "↷", "interrupted": "■"}
COLORS = {"pending": "#777", "running": "#1a73e8", "ok": "#188038", "error": "#d93025",
          "skipped": "#777", "interrupted": "#e37400"}


def seconds(value: float | None) -> str:
    """A duration as ``in 1.23s`` (the form the nbval sanitize file masks)."""
    return "" if value is None else f"in {value:.2f}s"


def step_facts(step: StepResult) -> list[str]:
    facts = [step.status]
    if step.model:
        facts.append(step.model)
    usage = step.usage
    if usage.total:
        facts.append(f"{usage.input_tokens} → {usage.output_tokens} tokens")
    if usage.cache_write_tokens or usage.cache_read_tokens:
        facts.append(f"cache: {usage.cache_write_tokens} written, {usage.cache_read_tokens} read")
    if step.attempts > 1:
        facts.append(f"{step.attempts} attempts")
    if step.duration is not None:
        facts.append(seconds(step.duration))
    return facts


def run_facts(run: PipelineRun) -> list[str]:
    facts = [run.status, f"{len(run.steps)} step{'s' if len(run.steps) != 1 else ''}"]
    if run.usage.total:
        facts.append(f"{run.usage.total} tokens")
    if run.duration is not None:
        facts.append(seconds(run.duration))
    if run.rate_limit_wait:
        facts.append(f"rate-limited {run.rate_limit_wait:.0f}s")
    return facts


def content_facts(step: StepResult) -> list[str]:
    """What the reply holds beside its text: ``thought 120 words``, ``3 citations``,
    ``3 tool calls (2 rounds)``."""
    facts = []
    words = len(step.thinking.split())
    if words:
        facts.append(f"thought {words} word{'s' if words != 1 else ''}")
    cited = len(step.citations)
    if cited:
        facts.append(f"{cited} citation{'s' if cited != 1 else ''}")
    calls = tool_calls_of(step)
    if calls:  # a round: one reply of one step (or item) that asked for tools
        rounds = len({(call.step_id, call.round) for call in calls})
        failed = sum(call.is_error for call in calls)
        how = f"{rounds} round{'s' if rounds != 1 else ''}{f', {failed} failed' if failed else ''}"
        facts.append(f"{len(calls)} tool call{'s' if len(calls) != 1 else ''} ({how})")
    return facts


_UNITS = {"page_location": ("p.", "pp."), "char_location": ("char", "chars")}


def citation_place(citation: Citation) -> str:
    """Where the passage is in its document, as a reader counts it: ``p. 3``, ``pp. 3–4``,
    ``chars 10–39``, ``blocks 1–2`` (the API's ranges end one past the last; these include it)."""
    start, end = citation.start, citation.end
    if start is None:
        return ""
    last = end - 1 if end is not None and end > start + 1 else start
    one, many = _UNITS.get(citation.location, ("block", "blocks"))
    return f"{one} {start}" if last == start else f"{many} {start}–{last}"


CITED_EXCERPT = 300
"""Characters of a cited passage that a source line shows."""


def citation_source(citation: Citation, limit: int = CITED_EXCERPT) -> str:
    """``"the cited text" — Title, p. 3`` (an untitled document: ``document 1`` for the first)."""
    place = citation_place(citation)
    return f'"{excerpt(citation.cited_text, limit)}" — {citation_title(citation)}{f", {place}" if place else ""}'


def citation_title(citation: Citation) -> str:
    """The cited document's title; an untitled one is named by its place among the attachments."""
    return citation.document_title or f"document {citation.document_index + 1}"


def _cited_answer(step: StepResult) -> list[tuple[str, list[int]]] | None:
    """The answer as ``(text, citation numbers after it)`` per text block, numbered from 1 in
    order; None when it has no citations or its text is not its blocks' (a for_each's)."""
    if not step.citations or text_of(step.content) != step.text:
        return None
    pieces, number = [], 0
    for block in step.content:
        if isinstance(block, Text):
            numbers = list(range(number + 1, number + 1 + len(block.citations)))
            number += len(block.citations)
            pieces.append((block.text, numbers))
    return pieces


def _step_problem(step: StepResult) -> str:
    if step.error:
        return f"error: {step.error}"
    if step.status == "interrupted":
        return "interrupted: the text below is what arrived before the interrupt"
    if step.note and step.status in ("skipped", "pending"):
        return step.note
    return ""




def _step_line(step: StepResult, checks: CheckList) -> str:
    """``✓ a: ok · model · 12 → 40 tokens · in 0.52s — The start of its text…``"""
    from ._render_checks import check_facts  # it imports this module

    facts = step_facts(step)
    noted = step.note and step.status in ("ok", "error") and not step.note.startswith(("ok after", "retry "))
    if noted:
        facts.append(step.note)  # "10 items, 2 failed", "saved to out.json": facts of the result
    facts += content_facts(step) + check_facts(step, checks, step.note if noted else "")
    line = f"{ICONS[step.status]} {step.id}: {' · '.join(facts)}"
    shown = excerpt(step.text)
    return f"{line} — {shown}" if shown else line


def run_text(run: PipelineRun) -> str:
    """The run as plain text (a notebook's text/plain, what nbval compares): the run's line,
    then a line per step with the start of its text, and under it an error or a note that
    explains a step that did not finish; a step's line says how long it thought and how many
    citations back it, its checks' pass rates below it, and the run's verdict table at the end.
    Durations read ``in 1.23s``, which nbval masks."""
    from ._render_checks import check_lines, verdict_lines  # it imports this module

    lines = [f"{run.name}: {' · '.join(run_facts(run))}"]
    every = CheckList()
    for step in run.steps.values():
        checks = step.checks  # gathered once: a for_each's are spread over its items
        every += checks
        lines.append("  " + _step_line(step, checks))
        if step.error:
            lines.append(f"      error: {step.error}")
        elif step.note and step.status in ("skipped", "interrupted", "pending"):
            lines.append(f"      {step.note}")
        lines += check_lines(step, checks)  # pass rates, failures, a matrix's comparison
    lines += [f"  handler error: {e}" for e in run.handler_errors]
    lines += [f"  warning: {w}" for w in run.warnings]
    return "\n".join(lines + verdict_lines(every))  # the verdict table last


def step_html(step: StepResult) -> str:
    from ._render_checks import check_facts, checks_html  # it imports this module

    color = COLORS[step.status]
    checks = step.checks
    facts = escape(" · ".join(step_facts(step) + check_facts(step, checks)))
    parts = [
        '<div class="pnb-step" style="margin:0.6em 0">',
        f'<div style="font-weight:600"><span style="color:{color}">{ICONS[step.status]}</span> '
        f'{escape(step.id)} <span style="font-weight:400;color:#666">· {facts}</span></div>',
    ]
    problem = _step_problem(step)
    if problem:
        parts.append(f'<div style="color:{color};margin:0.2em 0">{escape(problem)}</div>')
    if step.thinking:  # collapsed: what Claude thought is there to read, not in the way
        parts.append(
            '<details class="pnb-thinking" style="margin-top:0.3em;color:#666">'
            '<summary style="cursor:pointer">thinking</summary>'
            '<div style="white-space:pre-wrap;font-style:italic;border-left:3px solid #eee;padding:0.2em 0.8em">'
            f"{escape(step.thinking)}</div></details>"
        )
    parts.append(tool_calls_html(step))  # what it called, before the answer those calls led to
    if step.text:
        parts.append(
            '<div class="pnb-answer" style="white-space:pre-wrap;border-left:3px solid #ddd;padding:0.2em 0.8em;'
            f'margin-top:0.3em">{_answer_html(step)}</div>'
        )
    if step.citations:
        parts.append('<div class="pnb-sources" style="margin:0.3em 0 0 0.9em;color:#555;font-size:0.92em">')
        parts += [f'<div class="pnb-source" data-n="{n}">[{n}] {escape(citation_source(c))}</div>'
                  for n, c in enumerate(step.citations, 1)]
        parts.append("</div>")
    parts.append(checks_html(step, checks) + "</div>")
    return "".join(parts)


def _answer_html(step: StepResult) -> str:
    """The answer, escaped, with ``[n]`` after each cited passage (its source as a tooltip)."""
    cited = _cited_answer(step)
    if cited is None:
        return escape(step.text)
    sources = step.citations
    return "".join(
        escape(text) + "".join(f'<sup class="pnb-cite" data-n="{n}" title="{escape(citation_source(sources[n - 1]))}">'
                               f"[{n}]</sup>" for n in numbers)
        for text, numbers in cited)


def run_html(run: PipelineRun) -> str:
    from ._render_checks import run_checks_html  # it imports this module

    color = COLORS.get(run.status, "#777")
    parts = [
        '<div class="pnb-run">',
        f'<div><b>{escape(run.name)}</b> <span style="color:{color}">· '
        f'{escape(" · ".join(run_facts(run)))}</span></div>',
    ]
    if run.description:
        parts.append(f"<div><i>{escape(run.description)}</i></div>")
    parts += [step_html(step) for step in run.steps.values()]
    parts += [f'<div style="color:#d93025">handler error: {escape(e)}</div>' for e in run.handler_errors]
    parts += [f'<div style="color:#e37400">warning: {escape(w)}</div>' for w in run.warnings]
    parts.append(run_checks_html(run) + "</div>")
    return "".join(parts)


# -- tool calls: the words every view uses, and the final rendering's table --

TOOL_ARGUMENTS_SHOWN = 80
"""Characters of a call's arguments that its one-line form (the console, the text file) shows."""
TOOL_INPUT_SHOWN = 120
"""Characters of a call's input (one-line JSON) that a table cell shows."""
TOOL_OUTPUT_SHOWN = 120
"""Characters of a tool's output that a table cell shows before it is opened."""
TOOL_OUTPUT_KEPT = 20_000
"""Characters of a tool's output the final rendering keeps, opened: a saved notebook stays small."""
_CELL = "padding:1px 12px 1px 0;vertical-align:top;text-align:left;"
_NOWRAP, _WRAP = "white-space:nowrap", "max-width:{}em;overflow-wrap:anywhere"


def tool_arguments(input: Any, limit: int = TOOL_ARGUMENTS_SHOWN) -> str:
    """A call's input as keyword arguments, each value as JSON: ``query="tides", limit=3``."""
    if isinstance(input, Mapping):
        text = ", ".join(f"{name}={compact_json(value)}" for name, value in input.items())
    else:
        text = compact_json(input)
    return excerpt(text, limit)


def _search_results(output: Any) -> bool:
    """A server tool's list of results (web search: dicts with a url and a title)."""
    return isinstance(output, list) and bool(output) and all(isinstance(r, Mapping) and "url" in r for r in output)


def _readable(value: Any) -> Any:
    """``value`` without the API's ``encrypted_*`` fields, opaque blobs that nobody reads."""
    if isinstance(value, Mapping):
        return {k: _readable(v) for k, v in value.items() if not str(k).startswith("encrypted_")}
    if isinstance(value, (list, tuple)):
        return [_readable(v) for v in value]
    return value


def tool_output_text(output: Any) -> str:
    """A tool's output to read: a string as it is, search results as ``title — url`` lines,
    data as one-line JSON, anything else (an image, a figure) as its ``str``."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if not isinstance(output, (Mapping, list, tuple, int, float)):
        return str(output)
    if _search_results(output):
        return "\n".join(" — ".join(str(r[key]) for key in ("title", "url") if r.get(key)) for r in output)
    return compact_json(_readable(output))


def tool_outcome(call: ToolCall, limit: int = 60) -> str:
    """What came back, in a few words: ``3 results``, the start of the output, or ``✗`` and the error."""
    if call.is_error:
        return "✗ " + excerpt(call.error or tool_output_text(call.output) or "error", limit)
    if _search_results(call.output):
        return f"{len(call.output)} result{'s' if len(call.output) != 1 else ''}"
    return excerpt(tool_output_text(call.output), limit) or "no output"


def tool_call_line(call: ToolCall) -> str:
    """One line for a call that returned: ``search(query="tides") → 3 results · 0.12 s``; a
    failed one reads ``search(query="x") ✗ ValueError: ...``."""
    outcome = tool_outcome(call)
    facts = [f"{call.name}({tool_arguments(call.input)}) {outcome if call.is_error else '→ ' + outcome}"]
    if call.server:
        facts.append("server")
    if call.duration is not None:
        facts.append(f"{call.duration:.2f} s")
    if call.note:
        facts.append(call.note)
    return " · ".join(facts)


def tool_calls_html(step: StepResult) -> str:
    """The step's tool calls as a compact table: #, round, tool, input, output (opened in a
    ``<details>`` when long) and time; a failed call's output in red. Empty with no calls."""
    calls = tool_calls_of(step)
    if not calls:
        return ""
    by_item = any(call.step_id != step.id for call in calls)  # a for_each's: say whose call it is
    heads = ["#", *(["step"] if by_item else []), "round", "tool", "input", "output", "time"]
    parts = ['<table class="pnb-tools" style="border-collapse:collapse;margin:0.3em 0 0 0.9em;font-size:0.92em">'
             '<thead><tr style="color:#666">', *(f'<th style="{_CELL}">{head}</th>' for head in heads),
             "</tr></thead><tbody>"]
    for number, call in enumerate(calls, 1):
        status = "error" if call.is_error else "ok"
        server = (' <span class="pnb-tool-server" style="color:#666;font-size:0.85em">server</span>'
                  if call.server else "")
        cells = [(str(number), ""), *([(escape(call.step_id), _NOWRAP)] if by_item else []), (str(call.round), ""),
                 (f'<span class="pnb-tool-name">{escape(call.name)}</span>{server}', _NOWRAP),
                 (_input_html(call.input), _WRAP.format(24)), (_output_html(call), _WRAP.format(40)),
                 (escape(seconds(call.duration)), _NOWRAP)]  # "in 0.12s": the sanitize file masks it
        parts.append(f'<tr class="pnb-tool-call pnb-tool-{status}" data-tool="{escape(call.name)}" '
                     f'data-status="{status}">'
                     + "".join(f'<td style="{_CELL}{more}">{cell}</td>' for cell, more in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _input_html(input: Any) -> str:
    text = compact_json(input)
    shown = excerpt(text, TOOL_INPUT_SHOWN)
    title = f' title="{escape(text[:TOOL_OUTPUT_SHOWN * 10])}"' if shown != text else ""
    return f'<code class="pnb-tool-input"{title}>{escape(shown)}</code>'


def _output_html(call: ToolCall) -> str:
    text = (call.error or tool_output_text(call.output)) if call.is_error else tool_output_text(call.output)
    color = f"color:{COLORS['error']};" if call.is_error else ""
    shown = excerpt(text, TOOL_OUTPUT_SHOWN)
    if shown == text:
        html = f'<span class="pnb-tool-output" style="{color}">{escape(text)}</span>'
    else:  # the start on one line; the rest, up to TOOL_OUTPUT_KEPT, once opened
        kept = text[:TOOL_OUTPUT_KEPT]
        if len(text) > len(kept):
            kept += f"… ({len(text) - len(kept):,} more characters)"
        html = (f'<details class="pnb-tool-output" style="{color}"><summary style="cursor:pointer">{escape(shown)}'
                f'</summary><div style="white-space:pre-wrap;border-left:3px solid #eee;padding:0.1em 0.6em">'
                f"{escape(kept)}</div></details>")
    if call.note:
        html += f'<div class="pnb-tool-note" style="color:#666;font-size:0.9em">{escape(call.note)}</div>'
    return html
