"""``while:`` on a pipeline step: its pipeline run again and again while a condition holds, at most
``max_iterations`` times. Each iteration is a run of the child pipeline, kept as an item of the step
(``improve[0]``, ...); ``loop.index`` and ``last`` (the previous iteration's outputs, by child step id)
are what the condition and the child's ``inputs`` read to move on."""

from __future__ import annotations

import time
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._llm_call import StepProblem
from ._outcomes import outcome, settle
from ._results import StepResult, Usage
from ._spec import StepSpec
from ._step_ids import item_id
from ._templates import RenderInterrupted, TemplateProblem
from ._values import truthy
from .streaming._events import PROGRESS, Event

if TYPE_CHECKING:
    from ._execute import Executor

LAST = "last"
"""The name of the previous iteration's outputs in ``while:`` and ``inputs:`` (None before the first)."""


def run_while(executor: Executor, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
    """Iterate ``step``'s pipeline while its ``while`` holds; the result is the last iteration's."""
    assert step.while_expr is not None and step.max_iterations is not None
    iterations: list[StepResult] = []
    result.items = iterations
    last: Any = None
    why = f"stopped at max_iterations ({step.max_iterations})"
    for index in range(step.max_iterations):
        scope = ChainMap({"loop": {"index": index, "length": step.max_iterations}, LAST: last}, context)
        if not _holds(step, scope):
            why = "while became false" if index else "while was false"
            break
        part = StepResult(item_id(result.id, index), type="pipeline", index=index, item=index, loop_var="iteration")
        iterations.append(part)
        if executor.cancel.cancelled:
            break
        started, part.status = time.monotonic(), "running"
        with outcome(step, part, lambda: executor.cancel.cancelled):
            executor.pipeline_body(step, part, scope)
        part.duration = time.monotonic() - started
        if result.id in executor.run.steps:
            result.note = f"iteration {index + 1} of at most {step.max_iterations}"
            executor.emit(Event(PROGRESS, replace(result)))
        if part.status != "ok":
            break
        last = part.output
    done = [p for p in iterations if p.status == "ok"]
    result.output = done[-1].output if done else None
    result.text = done[-1].text if done else ""
    result.usage = sum((p.usage for p in iterations), Usage())
    costs = [p.cost for p in iterations if p.cost is not None]
    result.cost = sum(costs) if costs else None
    settle(result, iterations, "iteration")
    if result.status == "ok":
        result.note = f"{len(iterations)} iteration{'s' if len(iterations) != 1 else ''}; {why}"


def _holds(step: StepSpec, scope: Mapping[str, Any]) -> bool:
    assert step.while_expr is not None
    try:
        return truthy(step.while_expr.evaluate(scope))
    except RenderInterrupted:
        raise
    except TemplateProblem as exc:
        raise StepProblem("template_error", str(exc), "while", exc.line) from None
