"""Sweeps of one step: ``repeat`` (N samples of its call) and ``matrix`` (one run of it per
combination of values), each part a StepResult of its own, run concurrently within the step's
``max_parallel``, its parent settled from them like a for_each step from its items.

Nesting is fixed: a step's combinations, each combination's items (for_each), each item's
samples. Samples and combinations get no step_start/step_end: the step's ``progress`` events
count them, as they count items.
"""

from __future__ import annotations

import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._matrix_spec import variants
from ._outcomes import outcome, settle
from ._results import StepResult, Usage
from ._spec import StepSpec
from ._step_ids import sample_id, variant_id
from .streaming._events import PROGRESS, Event

if TYPE_CHECKING:
    from ._execute import Executor

Part = tuple[StepSpec, StepResult, Callable[[], None]]
"""A part of a sweep: its step (a combination's own), its result, and what runs it."""


def run_samples(executor: Executor, step: StepSpec, result: StepResult, scope: Mapping[str, Any]) -> None:
    """``repeat: N``: the call N times, each sample checked; the result is the first good sample's."""
    samples = [StepResult(sample_id(result.id, n), type=step.type, model=result.model, sample=n)
               for n in range(1, step.repeat + 1)]
    result.samples = samples

    def sample(part: StepResult) -> Callable[[], None]:
        return lambda: executor.llm_unit(step, part, scope, sample=part.sample or 1)

    _run_parts(executor, step, result, [(step, part, sample(part)) for part in samples], "samples")
    first = next((s for s in samples if s.status == "ok"), samples[0])
    result.text, result.output, result.content = first.text, first.output, first.content
    result.stop_reason, result.model, result.messages = first.stop_reason, first.model, first.messages
    _aggregate(result, samples, "sample", f"{len(samples)} samples")


def run_matrix(executor: Executor, step: StepSpec, result: StepResult) -> None:
    """``matrix:``: the step once per combination, each with the combination's keys and names."""
    combos = variants(step)
    parts = []
    for number, combo in enumerate(combos, 1):
        values = dict(combo.matrix_values or {})
        model = executor.resolve(combo).model if combo.type == "llm" else None
        part = StepResult(variant_id(step.id, number), type=step.type, model=model, matrix=values)
        parts.append((combo, part, _combination(executor, combo, part, ChainMap(values, executor.context))))
    result.variants = [part for _, part, _ in parts]
    _run_parts(executor, step, result, parts, "combinations")
    result.output = [part.output for part in result.variants]
    result.text = "\n\n".join(part.text for part in result.variants if part.text)
    _aggregate(result, result.variants, "combination", f"{len(combos)} combinations")


def _combination(executor: Executor, combo: StepSpec, part: StepResult, scope: Mapping[str, Any]) -> Callable[[], None]:
    def run() -> None:
        if combo.for_each is not None:
            executor.for_each(combo, part, scope)
        else:
            executor.unit(combo, part, scope)

    return run


def _run_parts(executor: Executor, step: StepSpec, result: StepResult, parts: list[Part], noun: str) -> None:
    """Run every part, at most ``max_parallel`` at a time; the step's progress counts them
    (when the step is one of the run's: an item's samples are counted by the items)."""
    total = len(parts)
    report = result.id in executor.run.steps

    def progress(done: int, failed: int) -> None:
        if report:
            result.note = f"{done} of {total} {noun}" + (f", {failed} failed" if failed else "")
            executor.emit(Event(PROGRESS, replace(result)))  # a snapshot: the note moves on

    progress(0, 0)
    done = failed = 0
    with ThreadPoolExecutor(max_workers=min(step.max_parallel, total),
                            thread_name_prefix=f"pipeline_nb:{result.id}") as pool:
        running = {pool.submit(_timed, executor, spec, part, run): part for spec, part, run in parts}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()
                done += 1
                failed += running.pop(future).status == "error"
                progress(done, failed)


def _timed(executor: Executor, spec: StepSpec, part: StepResult, run: Callable[[], None]) -> None:
    """Run one part, its failures kept on it as values, its duration measured."""
    if executor.cancel.cancelled:
        return
    started = time.monotonic()
    part.status = "running"
    with outcome(spec, part, lambda: executor.cancel.cancelled):
        run()
    part.duration = time.monotonic() - started


def _aggregate(result: StepResult, parts: list[StepResult], noun: str, described: str) -> None:
    """The parent of ``parts``: their usage and cost summed, its status settled from theirs."""
    result.usage = sum((p.usage for p in parts), Usage())
    costs = [p.cost for p in parts if p.cost is not None]
    result.cost = sum(costs) if costs else None
    result.attempts = max((p.attempts for p in parts), default=0)
    settle(result, parts, noun)
    failed = sum(p.status == "error" for p in parts)
    stopped = sum(p.status in ("interrupted", "pending", "running") for p in parts)
    counts = [f"{n} {label}" for n, label in ((failed, "failed"), (stopped, "interrupted")) if n]
    result.note = ", ".join([described, *counts])
