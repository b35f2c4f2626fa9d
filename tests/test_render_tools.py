"""The final rendering keeps a step's tool calls: a compact table (number, round, tool, input,
output folded when long, time) in the HTML a saved notebook keeps, everything escaped, a failed
call in red; and run_text's line for the step says how many calls in how many rounds."""

from __future__ import annotations

import re
from html import unescape

from pipeline_nb._render import (TOOL_INPUT_SHOWN, TOOL_OUTPUT_KEPT, TOOL_OUTPUT_SHOWN, run_html, run_text, step_html,
                                 tool_call_line)
from pipeline_nb._results import PipelineRun, StepResult, ToolCall
from pipeline_nb._step_ids import item_id

RESULTS = [{"type": "web_search_result", "url": "https://tides.example/1", "title": "Tide <tables>",
            "encrypted_content": "EqQBCkgIARABGAIiQ..."}]


def searching_step() -> StepResult:
    calls = [ToolCall("a", 1, "toolu_1", "web_search", {"query": "tides & <moon>"}, RESULTS, duration=0.5,
                      server=True),
             ToolCall("a", 1, "toolu_2", "count_rows", {"table": "tides"}, {"rows": 730}, duration=0.0123),
             ToolCall("a", 2, "toolu_3", "read_file", {"path": "../secret"}, None, True,
                      "ValueError: '../secret' is outside the working directory", duration=0.001)]
    return StepResult("a", status="ok", text="Twice a day.", model="m", tool_calls=calls)


def rows(html: str) -> list[list[str]]:
    """The table's body rows, each as its cells' HTML."""
    body = re.search(r'<table class="pnb-tools".*?<tbody>(.*?)</tbody></table>', html, re.S).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_a_step_with_tool_calls_has_a_table_row_per_call_escaped_with_the_error_in_red() -> None:
    html = step_html(searching_step())
    assert html.index('class="pnb-tools"') < html.index('class="pnb-answer"')  # the calls, then the answer
    assert re.findall(r"<th [^>]*>(.*?)</th>", html) == ["#", "round", "tool", "input", "output", "time"]
    first, second, third = rows(html)
    assert first[:3] == ["1", "1", '<span class="pnb-tool-name">web_search</span> '
                         '<span class="pnb-tool-server" style="color:#666;font-size:0.85em">server</span>']
    assert first[3] == '<code class="pnb-tool-input">{&quot;query&quot;: &quot;tides &amp; &lt;moon&gt;&quot;}</code>'
    assert "Tide &lt;tables&gt; — https://tides.example/1" in first[4] and "encrypted" not in first[4]
    assert [first[5], second[5], third[5]] == ["in 0.50s", "in 0.01s", "in 0.00s"]  # the form nbval's sanitize masks
    assert second[4] == '<span class="pnb-tool-output" style="">{&quot;rows&quot;: 730}</span>'
    assert third[:3] == ["3", "2", '<span class="pnb-tool-name">read_file</span>']
    assert 'style="color:#d93025;">ValueError: &#x27;../secret&#x27; is outside the working directory' in third[4]
    assert re.findall(r'<tr class="pnb-tool-call pnb-tool-(\w+)" data-tool="(\w+)" data-status="(\w+)"', html) == [
        ("ok", "web_search", "ok"), ("ok", "count_rows", "ok"), ("error", "read_file", "error")]
    assert "<moon>" not in html and "<tables>" not in html


def test_a_long_output_shows_its_start_and_keeps_the_rest_folded_and_a_long_input_is_cut() -> None:
    lines = "\n".join(f"{n:04d}, high water, 4.{n % 10} m" for n in range(3_000))
    call = ToolCall("a", 1, "toolu_1", "load", {"text": "x" * 1_000}, lines, duration=0.2, note="truncated")
    html = step_html(StepResult("a", status="ok", tool_calls=[call]))
    (cells,) = rows(html)
    shown = re.fullmatch(r'<code class="pnb-tool-input" title="[^"]*">(.*)</code>', cells[3]).group(1)
    assert len(unescape(shown)) == TOOL_INPUT_SHOWN and shown.endswith("…")
    folded = re.fullmatch(r'<details class="pnb-tool-output" style=""><summary[^>]*>(.*?)</summary>'
                          r'<div[^>]*>(.*?)</div></details><div class="pnb-tool-note"[^>]*>truncated</div>',
                          cells[4], re.S)
    summary, kept = folded.groups()
    assert summary.startswith("0000, high water, 4.0 m 0001, high") and len(summary) == TOOL_OUTPUT_SHOWN
    assert kept == lines[:TOOL_OUTPUT_KEPT] + f"… ({len(lines) - TOOL_OUTPUT_KEPT:,} more characters)"
    assert "<details open" not in html


def test_a_for_each_table_names_the_item_of_each_call() -> None:
    items = [StepResult(item_id("fan", n), status="ok",
                        tool_calls=[ToolCall(item_id("fan", n), 1, f"toolu_{n}", "lookup", {"n": n}, n * 2)])
             for n in range(2)]
    fan = StepResult("fan", status="ok", items=items)
    table = rows(step_html(fan))
    assert [row[:2] for row in table] == [["1", "fan[0]"], ["2", "fan[1]"]]
    assert run_text(PipelineRun("r", {"fan": fan})).splitlines()[1] == "  ✓ fan: ok · 2 tool calls (2 rounds)"


def test_run_text_says_how_many_calls_in_how_many_rounds() -> None:
    run = PipelineRun("r", {"a": searching_step(), "b": StepResult("b", status="ok", text="No tools.")}, status="ok")
    assert run_text(run).splitlines()[1:] == ["  ✓ a: ok · m · 3 tool calls (2 rounds, 1 failed) — Twice a day.",
                                              "  ✓ b: ok — No tools."]
    assert step_html(run.steps["b"]) in run_html(run) and "pnb-tools" not in step_html(run.steps["b"])


def test_a_call_reads_on_one_line() -> None:
    search, count, read = searching_step().tool_calls
    assert tool_call_line(search) == 'web_search(query="tides & <moon>") → 1 result · server · 0.50 s'
    assert tool_call_line(count) == 'count_rows(table="tides") → {"rows": 730} · 0.01 s'
    assert tool_call_line(read) == ("read_file(path=\"../secret\") ✗ ValueError: '../secret' is outside the "
                                    "working directory · 0.00 s")
