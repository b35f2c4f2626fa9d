"""Mistakes in expect: are PipelineSpecErrors with line:col, found before any call."""

from __future__ import annotations

import pytest

from _ev import spec_error


@pytest.mark.parametrize(("check", "message", "hint"), [
    ("{name: nothing}", "expect[0] names no check", "write one check per entry"),
    ("{contains: a, regex: b}", "expect[0] names 2 checks (contains, regex)", "one check per entry"),
    ("{contains: a, model: claude-haiku-5-5}", "expect[0]: 'model' does not apply to a contains check",
     "model: is for judge checks"),
    ("{regex: 'a(b'}", "expect[0]: regex 'a(b' does not compile: missing ), unterminated subpattern",
     "Python regular expression"),
    ("{json_schema: {type: 12}}", "expect[0]: json_schema is not a valid JSON Schema", None),
    ("{python: nowhere_defined}", "'nowhere_defined' cannot be found", "define the function in the kernel"),
    ("{cost: 0.01}", "model 'claude-sonnet-5-5' has no price, so its cost is unknown", "add pricing:"),
    ("{contians: a}", "unknown key 'contians'", "did you mean 'contains'?"),
    ("{tokens: {outputs: 3}}", "outputs", None),
])
def test_a_bad_check_is_refused_with_its_line_and_column(check: str, message: str, hint: str | None) -> None:
    error = spec_error(f"""
        steps:
          - id: a
            prompt: hi
            model: claude-sonnet-5-5
            expect:
              - {check}
    """)
    assert message in str(error), str(error)
    assert error.step_id == "a" and error.location is not None and error.location.line == 8
    if hint:
        assert hint in (error.hint or "") + str(error)


def test_two_checks_of_one_name_and_on_fail_without_expect_are_refused() -> None:
    error = spec_error("""
        steps:
          - id: a
            prompt: hi
            expect: [{contains: x}, {contains: x}]
    """)
    assert "expect[1] is named 'contains \"x\"', like expect[0]" in str(error)
    assert "give one of them its own name" in error.hint
    error = spec_error("""
        steps:
          - id: a
            prompt: hi
            on_fail: error
    """)
    assert "'on_fail' needs expect" in str(error) and error.location.line == 6


def test_expect_belongs_on_a_step_not_in_defaults() -> None:
    error = spec_error("""
        defaults: {expect: [{contains: x}]}
        steps:
          - {id: a, prompt: hi}
    """)
    assert "expect" in str(error) and error.location.line == 2


def test_a_check_template_naming_nothing_is_refused() -> None:
    error = spec_error("""
        steps:
          - id: a
            prompt: hi
            expect: [{contains: "{{ answr }}"}]
    """, vars={"answer": "x"})
    assert "expect uses {{ answr }}, which is not defined" in str(error) and "did you mean 'answer'?" in error.hint
