"""What a failed expectation does: warn (the default), fail the step (on_fail: error), or fail the
run that asked to be checked (run(check=True), %%pipeline --check, the CLI's --check)."""

from __future__ import annotations

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

import pipeline_nb
from pipeline_nb import ChecksFailed
from pipeline_nb.testing import FakeAnthropic, assert_checks_pass

from _ev import run

PIPELINE = """
steps:
  - id: a
    prompt: "Capital?"
    expect: [{contains: Paris}, {contains: France}]
ON_FAIL
  - id: b
    prompt: "Then {{ steps.a.text }}"
"""


def test_on_fail_error_fails_the_step_keeping_its_output_and_skips_what_follows(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.")
    result = run(PIPELINE.replace("ON_FAIL", "    on_fail: error"))
    a = result.steps["a"]
    assert a.status == "error" and a.error.type == "check_failed"
    assert a.error.message == '1 of 2 checks failed: contains "France": the output does not contain "France"'
    assert a.text == a.output == "Paris."  # the reply is paid for: kept
    assert result.steps["b"].status == "skipped" and len(fake_anthropic.requests) == 1


def test_on_fail_warn_keeps_the_run_going_and_check_true_then_raises(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.")
    result = run(PIPELINE.replace("ON_FAIL", ""))
    assert result.status == "ok" and result.steps["b"].status == "ok"
    with pytest.raises(ChecksFailed) as info:
        run(PIPELINE.replace("ON_FAIL", ""), check=True)
    assert str(info.value) == '1 of 2 checks failed: a: contains "France" 0/1'
    assert info.value.run.steps["b"].status == "ok"  # every result is kept on .run


def test_assert_checks_pass_lists_the_verdicts_and_failures(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.")
    result = run(PIPELINE.replace("ON_FAIL", ""))
    assert_checks_pass(result.steps["a"], min_pass_rate=0.0)  # a floor per check, not per run
    with pytest.raises(AssertionError) as info:
        assert_checks_pass(result)
    assert str(info.value).splitlines() == [
        "pipeline 'pipeline': 1 check(s) below a pass rate of 100%", "checks: 1 of 2 passed",
        "  step  check              result", '  a     contains "Paris"   ✓ 1/1', '  a     contains "France"  ✗ 0/1',
        "failures:", '  ✗ a: contains "France": the output does not contain "France"']
    with pytest.raises(AssertionError, match="checked 0 expectation"):
        assert_checks_pass(pipeline_nb.run("steps: [{id: x, prompt: hi, mock_delay: 0}]"))


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython() or get_ipython()  # one global shell per process
    shell.run_line_magic("load_ext", "pipeline_nb")
    return shell


def test_the_cell_magic_check_option_fails_the_cell_after_binding_the_run(ip) -> None:
    cell = "steps:\n  - {id: a, prompt: hi, mock_delay: 0, expect: [{contains: nowhere}]}\n"
    ip.run_cell_magic("pipeline", "checked", cell)  # without --check: shown, not raised
    assert ip.user_ns["checked"].checks.failed
    with pytest.raises(ChecksFailed):
        ip.run_cell_magic("pipeline", "checked2 --check", cell)
    assert ip.user_ns["checked2"].status == "ok"  # bound before the cell failed


def test_the_cli_check_option_exits_1_when_an_expectation_fails(tmp_path, capsys) -> None:
    from pipeline_nb._cli import main

    path = tmp_path / "checked.yaml"
    path.write_text("steps:\n  - {id: a, prompt: hi, mock_delay: 0, expect: [{contains: nowhere}, {contains: hi}]}\n")
    assert main(["run", str(path), "--journal", "off"]) == 0  # without --check the failure is shown, not fatal
    assert main(["run", str(path), "--journal", "off", "--check"]) == 1
    err = capsys.readouterr().err
    assert "checks: 1 of 2 passed: failing (--check)" in err


def test_display_checks_shows_only_the_verdict_table(ip, capsys) -> None:
    cell = "steps:\n  - {id: a, prompt: hi, mock_delay: 0, expect: [{contains: hi}, {name: long, tokens: 1}]}\n"
    capsys.readouterr()
    ip.run_cell_magic("pipeline", "shown --display checks", cell)
    printed = capsys.readouterr().out
    assert printed.endswith("checks: 1 of 2 passed\n  step  check          result\n"
                            '  a     contains "hi"  ✓ 1/1\n  a     long           ✗ 0/1\n')
