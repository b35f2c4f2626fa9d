"""Assertions on a PipelineRun whose failure messages say which step and why."""

from __future__ import annotations

import re
from typing import Any

from .._results import PipelineRun, StepResult

_ANY = object()


def assert_run_ok(run: PipelineRun) -> None:
    """Fail unless ``run`` succeeded, listing every step that did not."""
    if run.ok:
        return
    lines = [f"pipeline {run.name!r} {run.status}:"]
    for step in run.steps.values():
        if step.status != "ok":
            lines.append(f"  step {step.id!r} {step.status}: {step.error or step.note or 'no reason given'}")
    raise AssertionError("\n".join(lines))


def assert_step(
    run: PipelineRun,
    step_id: str,
    *,
    status: str = "ok",
    text: str | None = None,
    contains: str | None = None,
    matches: str | None = None,
    output: Any = _ANY,
) -> StepResult:
    """Fail unless step ``step_id`` has ``status`` and, if given, this text or output.

    ``text`` must equal the step's text, ``contains`` be a substring of it and ``matches`` a
    regular expression found in it. Returns the step for further checks.
    """
    if step_id not in run.steps:
        known = ", ".join(run.steps) or "none"
        raise AssertionError(f"pipeline {run.name!r} has no step {step_id!r} (steps: {known})")
    step = run.steps[step_id]
    problems = []
    if step.status != status:
        detail = f" ({step.error})" if step.error else ""
        problems.append(f"status is {step.status!r}, expected {status!r}{detail}")
    if text is not None and step.text != text:
        problems.append(f"text is {_clip(step.text)}, expected {_clip(text)}")
    if contains is not None and contains not in step.text:
        problems.append(f"text {_clip(step.text)} does not contain {contains!r}")
    if matches is not None and not re.search(matches, step.text):
        problems.append(f"text {_clip(step.text)} does not match /{matches}/")
    if output is not _ANY and step.output != output:
        problems.append(f"output is {_clip(step.output)}, expected {_clip(output)}")
    if problems:
        raise AssertionError(f"step {step_id!r}: " + "; ".join(problems))
    return step


def assert_checks_pass(result: PipelineRun | StepResult, *, min_pass_rate: float = 1.0,
                       at_least: int = 1) -> None:
    """Fail unless the expectations checked on ``result`` (a run, or one step) pass: every check of
    every step and combination at a pass rate of at least ``min_pass_rate`` (1.0: all of them), and
    at least ``at_least`` checks were made (a run that checked nothing does not pass by accident).
    The message is the verdict table, then why each failed check failed."""
    checks = result.checks
    name = f"pipeline {result.name!r}" if isinstance(result, PipelineRun) else f"step {result.id!r}"
    if len(checks) < at_least:
        raise AssertionError(f"{name} checked {len(checks)} expectation(s), expected at least {at_least}: "
                             "add expect: to its steps")
    low = [rate for rate in checks.rates() if rate.rate < min_pass_rate]
    if not low:
        return
    lines = [f"{name}: {len(low)} check(s) below a pass rate of {min_pass_rate:.0%}", str(checks), "failures:"]
    lines += [f"  {check}" for check in checks.failed[:20]]
    if len(checks.failed) > 20:
        lines.append(f"  ... and {len(checks.failed) - 20} more")
    raise AssertionError("\n".join(lines))


def assert_same_results(expected: PipelineRun, actual: PipelineRun) -> None:
    """Fail unless both runs have the same steps with the same status, text and output."""
    if list(expected.steps) != list(actual.steps):
        raise AssertionError(f"steps differ: {list(expected.steps)} != {list(actual.steps)}")
    for step_id, want in expected.steps.items():
        assert_step(actual, step_id, status=want.status, text=want.text, output=want.output)


def _clip(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"
