"""The pytest plugin, used the way a user would: a separate pytest run over a test file."""

from __future__ import annotations

import json

import pytest

import pipeline_nb
from pipeline_nb.testing import assert_run_ok, assert_same_results, assert_step

pytest_plugins = ["pytester"]

USER_TEST = '''
from pipeline_nb.testing import assert_run_ok, assert_step

SPEC = """
defaults: {provider: claude, retries: 0}
steps:
  - {id: greet, prompt: "Say hello to {{ who }}", stream: true}
"""

def test_greeting(run_pipeline):
    run = run_pipeline(SPEC, vars={"who": "Ada"})
    assert_run_ok(run)
    assert_step(run, "greet", text="Hello, Ada!")
'''


def test_user_tests_record_once_then_replay_offline(pytester: pytest.Pytester, fake_anthropic, monkeypatch) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    fake_anthropic.reply("Hello, Ada!", when="Say hello", chunks=["Hello", ", Ada!"])

    missing = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*test_greeting.jsonl has no recording for step(s) greet; "
                                  "record them with: pytest --pipeline-cassette-mode auto"])
    assert fake_anthropic.requests == []

    recorded = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pipeline-cassette-mode", "auto")
    recorded.assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_user" / "test_greeting.jsonl"
    assert json.loads(cassette.read_text())["events"] == [["text", 0, "Hello"], ["text", 0, ", Ada!"]]
    assert len(fake_anthropic.requests) == 1

    fake_anthropic.clear()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    replayed = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    replayed.assert_outcomes(passed=1)
    assert fake_anthropic.requests == []


def test_the_fixtures_and_option_are_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*fake_anthropic*", "*pipeline_cassette*", "*run_pipeline*"])
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "--pipeline-cassette-mode" in help_text


SPEC = "steps:\n  - {id: a, prompt: alpha beta}\n  - {id: b, prompt: gamma, when: '{{ false }}'}\n"


def test_assert_step_names_the_step_and_every_mismatch() -> None:
    run = pipeline_nb.run(SPEC)
    assert_run_ok(run)
    assert assert_step(run, "a", contains="alpha").id == "a"
    assert_step(run, "b", status="skipped")
    with pytest.raises(AssertionError, match=r"step 'a': text '.*does not contain 'zeta'; text .*does not match /\^z/"):
        assert_step(run, "a", contains="zeta", matches="^z")
    with pytest.raises(AssertionError, match=r"has no step 'c' \(steps: a, b\)"):
        assert_step(run, "c")
    with pytest.raises(AssertionError, match=r"status is 'ok', expected 'error'"):
        assert_step(run, "a", status="error")


def test_assert_run_ok_lists_the_failed_and_skipped_steps() -> None:
    spec = "steps:\n  - {id: a, call: divide}\n  - {id: b, prompt: later}\n"
    run = pipeline_nb.run(spec, namespace={"divide": lambda: 1 / 0}, raise_on_error=False)
    with pytest.raises(AssertionError) as caught:
        assert_run_ok(run)
    assert "step 'a' error: python_error: ZeroDivisionError" in str(caught.value)
    assert "step 'b' skipped" in str(caught.value)


def test_assert_same_results_catches_a_changed_reply() -> None:
    first, second = pipeline_nb.run(SPEC), pipeline_nb.run(SPEC)
    assert_same_results(first, second)
    second.steps["a"].text = "changed"
    with pytest.raises(AssertionError, match="step 'a': text is 'changed'"):
        assert_same_results(first, second)
