"""``pipeline_nb.compare(run_a, run_b)``: two real runs side by side, from memory or from the
journal (and ``compare RUN_A RUN_B`` on the command line): a row per step in the runs' order,
both statuses, a text diff, each check's pass rate in both runs with regressions flagged, cost,
latency and tokens; a matrix step compared per combination, matched by its values."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

import pipeline_nb
from pipeline_nb import JournalError
from pipeline_nb._compare import compare

ANSWERS = dedent("""
    name: capitals
    defaults:
      provider: mock
      mock_delay: 0
      model: claude-haiku-5-5
      pricing: {claude-haiku-5-5: {input: 1, output: 5}}
    steps:
      - id: answer
        prompt: "What is the capital of France?"
        repeat: 3
        mock_response: "{answer}"
        expect:
          - contains: Paris
          - name: no apology
            not_contains: sorry
    {steps}
    """)
SUMMARY = '  - {id: summary, prompt: "Sum up", mock_response: "All fine."}'
GONE = '  - {id: gone, prompt: "Only in A", mock_response: "bye"}'
EXTRA = '  - {id: extra, prompt: "Only in B", mock_response: "hello"}'


def answers(answer: str, *steps: str) -> str:
    return ANSWERS.replace("{answer}", answer).replace("{steps}", "\n".join(steps))


def two_runs(journal: Path) -> tuple[pipeline_nb.PipelineRun, pipeline_nb.PipelineRun]:
    a = pipeline_nb.run(answers("The capital of France is Paris.", GONE, SUMMARY), journal=journal)
    b = pipeline_nb.run(answers("The capital of France is Lyon, sorry.", SUMMARY, EXTRA), journal=journal)
    assert a.ok and b.ok
    return a, b


def test_two_runs_are_compared_step_by_step_with_a_diff_checks_cost_latency_and_tokens(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path / "journal.sqlite")

    comparison = compare(a, b)

    assert [row.where for row in comparison.steps] == ["answer", "gone", "summary", "extra"]
    answer = comparison.steps[0]
    assert [(str(c.a), str(c.b), c.regressed) for c in answer.checks] == [("3/3", "0/3", True), ("3/3", "0/3", True)]
    assert comparison.regressions == ['answer: contains "Paris"', "answer: no apology"]
    text = str(comparison)
    assert text.startswith(f"A  run {a.id}  capitals: ok · checks 6 of 6 passed (100%) · ${a.cost:.4f} · "
                           f"{a.usage.total} tokens · {a.duration:.2f}s\n"
                           f"B  run {b.id}  capitals: ok · checks 0 of 6 passed (0%) · ${b.cost:.4f} · ")
    step_a, step_b = a.steps["answer"], b.steps["answer"]
    assert (f"answer: ok → ok · ${step_a.cost:.4f} → ${step_b.cost:.4f} · {step_a.duration:.2f}s → "
            f"{step_b.duration:.2f}s · {step_a.usage.total} → {step_b.usage.total} tokens\n"
            '  checks: contains "Paris" 3/3 → 0/3 ✗ was passing · no apology 3/3 → 0/3 ✗ was passing\n'
            "  - The capital of France is Paris.\n"
            "  + The capital of France is Lyon, sorry.\n") in text
    assert "\nsummary: ok → ok · " in text and "\n  same text\n" in text
    assert re.search(r"^gone: only in run A \(ok · \$[\d.]+ · [\d.]+s · \d+ tokens\)$", text, re.M)
    assert re.search(r"^extra: only in run B \(ok · ", text, re.M)

    html = comparison._repr_html_()
    assert re.search(r"The capital of France is <del[^>]*>Paris</del><ins[^>]*>Lyon, sorry</ins>\.", html)
    assert ">same text<" in html and "only in run A" in html and "only in run B" in html
    assert '<span style="color:#d93025">no apology 3/3 → 0/3 ✗ was passing</span>' in html

    records = comparison.to_records()
    assert [(r["step"], r["status_a"], r["status_b"]) for r in records] == [
        ("answer", "ok", "ok"), ("gone", "ok", None), ("summary", "ok", "ok"), ("extra", None, "ok")]
    assert (records[0]["checks_a"], records[0]["checks_b"], records[0]["regressed"]) == (
        1.0, 0.0, 'contains "Paris", no apology')
    assert (records[0]["cost_a"], records[0]["tokens_b"]) == (step_a.cost, step_b.usage.total)
    assert (records[2]["diff"], records[3]["diff"]) == ("same text", "only in run B")
    frame = comparison.to_pandas()
    assert list(frame["step"]) == ["answer", "gone", "summary", "extra"] and frame["checks_b"][0] == 0.0


def test_runs_read_from_the_journal_by_id_compare_as_they_did_in_memory(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    a, b = two_runs(journal)

    from_journal = compare(a.id, b.id, journal=journal)

    assert str(from_journal) == str(compare(a, b))
    assert from_journal.regressions == ['answer: contains "Paris"', "answer: no apology"]
    listed_a = pipeline_nb.history(journal=journal)[1]  # a history() entry works too
    assert str(compare(listed_a, b, journal=journal)) == str(from_journal)
    with pytest.raises(JournalError, match="the run journal has no run 'nope'"):
        compare("nope", b.id, journal=journal)


MATRIX = dedent("""
    name: sweep
    defaults: {provider: mock, mock_delay: 0}
    steps:
      - id: answer
        prompt: "{{ style }} Name a city."
        matrix:
          model: MODELS
          style: STYLES
        expect: [{contains: "mock"}]
    """)


def test_a_matrix_step_is_compared_per_combination_matched_by_its_values_not_its_place(tmp_path: Path) -> None:
    a = pipeline_nb.run(MATRIX.replace("MODELS", "[claude-haiku-5-5, claude-sonnet-5-5]")
                        .replace("STYLES", "[Terse., Chatty.]"), journal="off")
    b = pipeline_nb.run(MATRIX.replace("MODELS", "[claude-sonnet-5-5, claude-haiku-5-5]")
                        .replace("STYLES", "[Chatty., Formal., Terse.]"), journal="off")

    comparison = compare(a, b)

    assert [(row.variant, row.diff()) for row in comparison.steps] == [
        ("model=claude-haiku-5-5 · style=Terse.", "same text"),
        ("model=claude-haiku-5-5 · style=Chatty.", "same text"),
        ("model=claude-haiku-5-5 · style=Formal.", "only in run B"),  # where run B has it: after Chatty.
        ("model=claude-sonnet-5-5 · style=Terse.", "same text"),
        ("model=claude-sonnet-5-5 · style=Chatty.", "same text"),
        ("model=claude-sonnet-5-5 · style=Formal.", "only in run B"),
    ]
    assert [str(c) for c in comparison.steps[0].checks] == ['contains "mock" 1/1 → 1/1']
    text = str(comparison)
    assert "\nanswer [model=claude-haiku-5-5 · style=Terse.]: ok → ok · " in text
    assert "\nanswer [model=claude-sonnet-5-5 · style=Formal.]: only in run B (ok · " in text
    assert [r["variant"] for r in comparison.to_records()] == [row.variant for row in comparison.steps]
    other = pipeline_nb.run("name: other\ndefaults: {provider: mock}\nsteps:\n  - {id: greet, prompt: hi}\n",
                            journal="off")
    assert [(row.where, row.diff()) for row in compare(other, a).steps] == [
        ("greet", "only in run A"), *((f"answer [{v.label}]", "only in run B") for v in a.steps["answer"].variants)]


def test_long_texts_are_cut_with_a_note(tmp_path: Path) -> None:
    lines = [f"Line {n} of a long answer about the tides." for n in range(100)]
    a = pipeline_nb.run(answers("\\n".join(lines)), journal="off")
    b = pipeline_nb.run(answers("\\n".join(line.replace("tides", "moons") for line in lines)), journal="off")

    comparison = compare(a, b)

    diff = comparison.steps[0].diff().splitlines()
    assert diff[:2] == ["- Line 0 of a long answer about the tides.", "+ Line 0 of a long answer about the moons."]
    assert len(diff) == 13 and diff[-1] == f"… {2 * 100 - 12} more lines of diff"
    assert "(texts cut: the diff compares their first 4,000 characters" in comparison._repr_html_()


def test_the_cli_prints_the_comparison_and_an_unknown_run_is_one_error_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    a, b = two_runs(journal)
    commands = [("compare", a.id, b.id, "--journal", str(journal)),
                ("compare", a.id, "nope", "--journal", str(journal))]
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline_nb", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, encoding="utf-8") for args in commands]
    (out, err), (missing_out, missing_err) = (proc.communicate(timeout=120) for proc in procs)

    assert (procs[0].returncode, err) == (0, "")
    assert out == str(compare(a, b)) + "\n"
    assert (procs[1].returncode, missing_out) == (2, "")
    assert missing_err == "error: the run journal has no run 'nope'; pipeline_nb.history() lists the runs\n"
