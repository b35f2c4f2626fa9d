"""Evaluating a result: every expectation of its step checked on it, in order, each CheckResult
kept on the result and sent as a ``("check", ...)`` event as it resolves; ``on_fail: error`` then
fails the result (its output kept).

A result that failed is not checked: each of its checks fails with ``not checked``, so a pass
rate over samples counts a failed call as a failure, not as nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import _llm_call as llm_call
from ._check_results import CheckResult
from ._checks import check, checked, output_text
from ._expect_spec import Expectation
from ._judge import judge_prompt, judge_step, verdict
from ._llm import CancelToken
from ._llm_call import EmitEvent, Received, ResolvedStep, fail
from ._request import build_request
from ._results import StepResult, variant_label
from ._spec import StepSpec
from ._step_ids import judge_id, owner_of
from ._templates import RenderInterrupted, TemplateProblem
from .streaming._events import CHECK, Event

Resolve = Callable[[StepSpec], ResolvedStep]


class Evaluator:
    """Checks results against their step's ``expect:``; one per (nested) run."""

    def __init__(self, resolve: Resolve, namespace: Mapping[str, Any], pricing: Mapping[str, Mapping[str, float]],
                 cancel: CancelToken, emit: EmitEvent, received: dict[str, Received]) -> None:
        self.resolve, self.namespace, self.pricing = resolve, namespace, pricing
        self.cancel, self.emit, self.received = cancel, emit, received

    def evaluate(self, step: StepSpec, result: StepResult, scope: Mapping[str, Any], seconds: float) -> None:
        """Check ``result`` (which took ``seconds``) against ``step.expect``, rendering in ``scope``."""
        if not step.expect or result.status not in ("ok", "error") or self.cancel.cancelled:
            return
        variant = variant_label(dict(step.matrix_values)) if step.matrix_values else ""
        owner = str(owner_of(result.id))
        judges = 0
        for expectation in step.expect:
            if result.status == "error":
                reason = result.error.type if result.error else "error"
                found = checked(expectation, result, False, f"not checked: the result failed ({reason})", owner,
                                variant)
            elif expectation.kind == "judge":
                judges += 1
                found = self._judge(step, expectation, result, scope, judges, owner, variant)
            else:
                passed, detail = check(expectation, result, scope, self.namespace, seconds)
                found = checked(expectation, result, passed, detail, owner, variant)
            if self.cancel.cancelled:
                return
            result.own_checks.append(found)
            self.emit(Event(CHECK, found))
        failed = [c for c in result.own_checks if not c.passed]
        if failed and step.on_fail == "error" and result.status == "ok":
            shown = "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in failed[:3])
            more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
            fail(result, "check_failed", f"{len(failed)} of {len(result.own_checks)} checks failed: {shown}{more}")

    def _judge(self, step: StepSpec, expectation: Expectation, result: StepResult, scope: Mapping[str, Any],
               number: int, owner: str, variant: str) -> CheckResult:
        """Ask the judge; a judge that fails (an API error, a reply that is no verdict) fails the check."""
        try:
            rubric = str(expectation.value.evaluate(scope))
            prompt = step.prompt.render(scope) if expectation.sees_prompt and step.prompt is not None else None
        except RenderInterrupted:
            raise
        except TemplateProblem as exc:
            return checked(expectation, result, False, f"its template failed: {exc}", owner, variant)
        base = self.resolve(step)
        spec = judge_step(step, expectation, expectation.model or result.model or base.model,
                          judge_id(result.id, number))
        resolved = self.resolve(spec)
        request = build_request(resolved, judge_prompt(rubric, output_text(result), prompt), scope)
        call = StepResult(spec.id, model=resolved.model)
        token = CancelToken()
        unlink = self.cancel.on_cancel(token.cancel)
        try:
            llm_call.call(resolved, request, call, token, self.cancel, _quiet, self.received)
        finally:
            unlink()
        cost = llm_call.cost(call.usage, call.model, self.pricing)
        if call.status != "ok":
            detail = f"the judge's call failed: {call.error}" if call.error else "the judge's call was interrupted"
            return CheckResult(result.id, expectation.name, "judge", False, detail, owner, variant, call.usage, cost)
        passed, reason = verdict(call.output)
        return CheckResult(result.id, expectation.name, "judge", passed, reason, owner, variant, call.usage, cost)


def _quiet(event: Event) -> None:
    """A judge's own stream events go nowhere: the view shows its verdict, as a check."""
