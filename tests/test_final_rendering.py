"""What a saved notebook keeps of a run: the retired live view leaves nothing to see, and the
final rendering's text/plain reads on its own (the run, then a line per step with the start
of its text, errors and notes), stable under nbval's sanitize file; nbval passes the notebook.
Its HTML keeps Claude's thinking folded above the answer, and numbers the cited passages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import pipeline_nb
from pipeline_nb.content import Citation, Text, Thinking
from pipeline_nb._render import run_html, run_text, step_html
from pipeline_nb._text import EXCERPT
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb.testing import FakeAnthropic

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "notebooks" / "sanitize.cfg"
LONG = ("Tides are the slow rise and fall of the sea,\n\ndriven mostly by the Moon's gravity and, to a lesser "
        "extent, the Sun's. Most coasts see two high tides a day.")
SPEC = f"""name: tides
defaults: {{provider: mock, model: claude-sonnet-5-5, mock_delay: 0}}
steps:
  - id: a
    prompt: Explain tides.
    stream: true
    mock_response: {LONG!r}
  - id: fan
    for_each: [1, 2, 3]
    prompt: "item {{{{ item }}}}"
    mock_response: "Item reply."
  - id: gone
    when: "false"
    prompt: never
"""


def masked(text: str) -> str:
    """``text`` as nbval sees it through notebooks/sanitize.cfg."""
    regex, replace = re.findall(r"regex: (.*)\nreplace: (.*)", SANITIZE.read_text())[0]
    return re.sub(regex, replace, text)


def test_run_text_is_the_run_line_then_a_line_per_step_with_the_start_of_its_text() -> None:
    run = pipeline_nb.run(SPEC)
    lines = masked(run_text(run)).splitlines()
    assert lines[0] == f"tides: ok · 3 steps · {run.usage.total} tokens · in <T>s"
    a = run.steps["a"]
    usage = f"{a.usage.input_tokens} → {a.usage.output_tokens} tokens"
    head = f"  ✓ a: ok · claude-sonnet-5-5 · {usage} · in <T>s — "
    assert lines[1].startswith(head)
    shown = lines[1][len(head):]
    assert shown.endswith("…") and len(shown) <= EXCERPT  # the start of the text, on one line
    assert " ".join(LONG.split()).startswith(shown[:-1])
    assert lines[2].startswith("  ✓ fan: ok · claude-sonnet-5-5 · ")
    assert "· 3 items — Item reply. Item reply." in lines[2]  # a for_each's note is one of its facts
    assert lines[3:] == ["  ↷ gone: skipped · claude-sonnet-5-5 · in <T>s", "      skipped: when 'false' was false"]
    assert masked(run_text(pipeline_nb.run(SPEC))) == masked(run_text(run))  # nbval sees the same text twice


def test_run_text_gives_a_failed_step_its_error(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, error_type="invalid_request_error", message="prompt is too long",
                         times=None)
    run = pipeline_nb.run("defaults: {provider: claude, retries: 0}\nsteps:\n  - {id: a, prompt: hi}\n"
                          "  - {id: b, prompt: more}\n", raise_on_error=False)
    lines = masked(run_text(run)).splitlines()
    assert lines[0] == "pipeline: error · 2 steps · in <T>s"
    assert lines[1] == "  ✗ a: error · claude-sonnet-5-5 · in <T>s"
    assert lines[2].startswith("      error: invalid_request_error: prompt is too long")
    assert lines[3:] == ["  ↷ b: skipped · claude-sonnet-5-5", "      skipped: step 'a' failed"]


PIPELINE_CELL = """%%pipeline res
name: tides
defaults: {provider: mock, model: claude-sonnet-5-5, mock_delay: 0}
steps:
  - {id: a, prompt: Explain tides., stream: true, mock_response: "Tides rise and fall twice a day."}
  - {id: b, prompt: "Shorten: {{ steps.a.text }}", mock_response: "Sea goes up, sea goes down."}
"""


def test_a_saved_notebook_shows_only_the_final_rendering_and_passes_nbval(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("%load_ext pipeline_nb"), new_code_cell(PIPELINE_CELL)])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "saved.ipynb")

    live, final = nbformat.read(tmp_path / "saved.ipynb", as_version=4).cells[1].outputs
    assert live.output_type == "display_data"
    assert live.data == {"text/plain": ""}  # the retired view; was "[tides: live view]"
    lines = masked(final.data["text/plain"]).splitlines()
    assert lines[0] == "tides: ok · 2 steps · 23 tokens · in <T>s", lines
    assert lines[1:] == [
        "  ✓ a: ok · claude-sonnet-5-5 · 2 → 7 tokens · in <T>s — Tides rise and fall twice a day.",
        "  ✓ b: ok · claude-sonnet-5-5 · 8 → 6 tokens · in <T>s — Sea goes up, sea goes down.",
    ]

    # nbval runs the notebook again and compares: the empty output and the text match
    shutil.copy(SANITIZE, tmp_path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--color=no", "--nbval",
                             "--nbval-current-env", "--nbval-sanitize-with", "sanitize.cfg", "saved.ipynb"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


# -- thinking and citations --

CITED = Citation("High water comes twice daily.", 0, "Tides", "page_location", 3, 4)
CHARS = Citation("Neap tides are weaker.", 1, None, "char_location", 10, 32)
PAGES = Citation("Spring tides follow the full moon.", 0, "Tides", "page_location", 3, 5)


def thoughtful_step() -> StepResult:
    content = (Thinking("Check <the table> & the notes.", "sig"), Text("Tides rise twice a day", (CITED,)),
               Text(", neaps are weak", (CHARS, PAGES)), Text(" & springs strong."))
    return StepResult("a", status="ok", text="Tides rise twice a day, neaps are weak & springs strong.",
                      content=content, model="m")


def test_the_final_rendering_folds_the_thinking_above_the_answer_and_numbers_the_citations() -> None:
    html = step_html(thoughtful_step())
    thinking, answer, sources = (html.index(f'class="pnb-{part}"') for part in ("thinking", "answer", "sources"))
    assert thinking < answer < sources
    assert re.search(r'<details class="pnb-thinking"[^>]*><summary[^>]*>thinking</summary>', html)
    assert "<details open" not in html and "Check &lt;the table&gt; &amp; the notes." in html  # folded, escaped
    marks = re.sub(r'<sup class="pnb-cite" data-n="(\d)" title="[^"]*">\[\d\]</sup>', r"[\1]", html)
    assert "Tides rise twice a day[1], neaps are weak[2][3] &amp; springs strong.</div>" in marks
    assert re.findall(r'<div class="pnb-source" data-n="\d">(.*?)</div>', html) == [
        "[1] &quot;High water comes twice daily.&quot; — Tides, p. 3",
        "[2] &quot;Neap tides are weaker.&quot; — document 2, chars 10–31",
        "[3] &quot;Spring tides follow the full moon.&quot; — Tides, pp. 3–4",
    ]
    run = PipelineRun("r", {"a": thoughtful_step()}, status="ok")
    assert step_html(run.steps["a"]) in run_html(run)
    assert run_text(run).splitlines()[1] == ("  ✓ a: ok · m · thought 6 words · 3 citations — "
                                             "Tides rise twice a day, neaps are weak & springs strong.")


def test_a_run_that_thought_keeps_its_thinking_in_the_saved_rendering() -> None:
    spec = ("defaults: {provider: mock, model: claude-sonnet-5-5, mock_delay: 0}\n"
            "steps:\n  - {id: a, prompt: Explain tides., stream: true, thinking: true}\n")
    run = pipeline_nb.run(spec)
    thought = run.steps["a"].thinking
    assert thought and f"{escape(thought)}</div></details>" in run_html(run)
    line = masked(run_text(run)).splitlines()[1]
    assert f" · in <T>s · thought {len(thought.split())} words — " in line
    assert masked(run_text(pipeline_nb.run(spec))) == masked(run_text(run))  # nbval sees the same text twice
