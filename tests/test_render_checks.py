"""The final rendering shows what expectations found: under a step, a line per check with its
pass rate and, under a failed one, which results failed and why (the first few, then a count); a
repeat step's line counts its samples; a matrix step's comparison has a row per combination (its
values, status, pass rates, tokens, cost and latency, which nbval masks); and the run ends with
its verdict table. Text and HTML say the same."""

from __future__ import annotations

import re
from pathlib import Path

import pipeline_nb
from pipeline_nb._check_results import CheckResult
from pipeline_nb._render import run_html, run_text, step_html
from pipeline_nb._render_checks import comparison_text
from pipeline_nb._results import latency
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb.content import Usage
from pipeline_nb.testing import FakeAnthropic

SANITIZE = Path(__file__).resolve().parents[1] / "notebooks" / "sanitize.cfg"


def masked(text: str) -> str:
    """``text`` as nbval sees it through notebooks/sanitize.cfg (durations)."""
    regex, replace = re.findall(r"regex: (.*)\nreplace: (.*)", SANITIZE.read_text())[0]
    return re.sub(regex, replace, text)


REPEAT = """name: capitals
defaults: {provider: claude, model: claude-haiku-5-5, retries: 0}
steps:
  - id: answer
    prompt: What is the capital of France?
    repeat: 3
    expect:
      - contains: Paris
      - name: no apology
        not_contains: sorry
"""


def test_a_repeat_step_says_its_samples_and_each_checks_pass_rate_with_who_failed_and_why(
        fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.", times=2)
    fake_anthropic.reply("Paris, sorry for the delay.", times=1)
    run = pipeline_nb.run(REPEAT)
    lines = masked(run_text(run)).splitlines()
    step_line = lines[1]
    assert "· 3 samples" in step_line and "· checks 5/6" in step_line
    assert step_line.endswith("— Paris.") or step_line.endswith("— Paris, sorry for the delay.")
    assert sum("sorry" in line for line in lines[1:3]) <= 1  # the samples' texts are not listed
    assert lines[2] == '      ✓ contains "Paris" 3/3'
    assert lines[3] == "      ✗ no apology 2/3"
    assert re.fullmatch(r'          answer#[123]: .*"sorry".*', lines[4]), lines[4]
    html = step_html(run.steps["answer"])
    assert 'class="pnb-check pnb-check-pass" data-check="contains &quot;Paris&quot;"' in html
    assert '>✗ no apology 2/3</div><div class="pnb-check-failure"' in html


def test_the_run_ends_with_its_verdict_table_in_text_and_html(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.", times=2)
    fake_anthropic.reply("Paris, sorry for the delay.", times=1)
    run = pipeline_nb.run(REPEAT)
    verdicts = str(run.checks).splitlines()
    assert verdicts[0] == "checks: 5 of 6 passed"
    assert run_text(run).splitlines()[-len(verdicts):] == ["  " + line for line in verdicts]
    html = run_html(run)
    assert html.endswith(run.checks._repr_html_() + "</div>")


MATRIX = """name: models
defaults: {provider: mock, mock_delay: 0}
steps:
  - id: answer
    prompt: "{{ style }} What is the capital of France?"
    matrix:
      model: [claude-haiku-5-5, claude-sonnet-5-5]
      style: [Terse., Chatty.]
    expect:
      - name: says haiku
        contains: haiku
"""


def test_a_matrix_step_shows_a_comparison_row_per_combination_in_text_and_html() -> None:
    run = pipeline_nb.run(MATRIX)
    step = run.steps["answer"]
    lines = masked(run_text(run)).splitlines()
    assert "· 4 combinations · checks 2/4" in lines[1]
    table = lines[2:7]
    assert re.split(r"\s{2,}", table[0].strip()) == ["model", "style", "status", "checks", "says haiku", "in", "out",
                                                    "cost", "latency"]
    for line, variant in zip(table[1:], step.variants or []):
        cells = re.split(r"\s{2,}", line.strip())
        passed = "1/1" if "haiku" in variant.matrix["model"] else "0/1"
        assert cells == [variant.matrix["model"], variant.matrix["style"], "ok", passed, passed,
                         str(variant.usage.input_tokens), str(variant.usage.output_tokens), "–", "in <T>s"]
    # the combinations that failed a check, each with its failed result
    assert lines[7] == "      ✗ says haiku 0/1 [model=claude-sonnet-5-5 · style=Terse.]"
    assert re.fullmatch(r"          answer@3: .*", lines[8]), lines[8]
    html = run_html(run)
    rows = re.findall(r'<tr class="pnb-combo" data-status="ok" data-combo="([^"]*)">', html)
    assert rows == ["model=claude-haiku-5-5 · style=Terse.", "model=claude-haiku-5-5 · style=Chatty.",
                    "model=claude-sonnet-5-5 · style=Terse.", "model=claude-sonnet-5-5 · style=Chatty."]
    assert masked(run_text(pipeline_nb.run(MATRIX))) == masked(run_text(run))  # stable for nbval


def check(step_id: str, passed: bool, detail: str = "") -> CheckResult:
    return CheckResult(step_id, 'contains "Paris"', "contains", passed, detail, "answer")


def test_a_check_that_failed_many_times_lists_the_first_three_then_counts_the_rest() -> None:
    samples = [StepResult(f"answer#{n}", status="ok", text="Lyon", sample=n,
                          own_checks=[check(f"answer#{n}", False, f'reply {n} does not contain "Paris"')])
               for n in range(1, 6)]
    run = PipelineRun("r", {"answer": StepResult("answer", status="ok", text="Lyon", samples=samples)}, status="ok")
    lines = run_text(run).splitlines()
    at = lines.index('      ✗ contains "Paris" 0/5')
    assert lines[at + 1:at + 5] == ['          answer#1: reply 1 does not contain "Paris"',
                                    '          answer#2: reply 2 does not contain "Paris"',
                                    '          answer#3: reply 3 does not contain "Paris"',
                                    "          and 2 more"]


def test_a_combinations_latency_is_the_mean_seconds_of_its_calls() -> None:
    samples = [StepResult(f"answer@1#{n}", status="ok", duration=float(n), sample=n,
                          usage=Usage(10, 20)) for n in (1, 2, 3)]
    variant = StepResult("answer@1", status="ok", samples=samples, duration=3.5, matrix={"model": "m"},
                         usage=Usage(30, 60), cost=0.0123)
    step = StepResult("answer", status="ok", variants=[variant])
    assert latency(variant) == 2.0  # (1 + 2 + 3) / 3, not the combination's wall time
    assert comparison_text(step).splitlines() == ["model  status  in  out     cost  latency",
                                                  "m      ok      30   60  $0.0123  in 2.00s"]
