"""Running steps on worker threads: when, for_each, and each step type.

Nothing here touches handlers or displays: every event goes to ``emit``, which the
engine's main thread drains. Failures are collected as values on the StepResult.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import _llm_call as llm_call
from ._yaml import SourceMap
from ._context import Step, StepContext
from ._files import write_output
from ._llm import CancelToken, LLMRequest
from .content import Reply
from ._llm_call import EmitEvent, ResolvedStep, StepProblem
from ._names import parameters, resolve_name
from ._outcomes import items_note, run_status, settle
from ._request import attachment_blocks, build_request, step_cache_ttl
from ._outcomes import outcome as step_outcome
from ._check_results import CheckResult
from ._results import PipelineRun, StepResult, ToolCall, Usage
from ._loader import load_spec
from ._plan import inherit
from ._spec import PipelineSpec, StepSpec, parse_spec
from ._step_ids import item_id, nested_id
from .streaming._events import (PROGRESS, RATE_LIMIT, STEP_END, STEP_START, Chunk, CitationChunk, Event,
                                RateLimitInfo, Response, RetryInfo, ToolCallChunk)
from ._rate_limit import Pause, rate_scope
from ._templates import STEPS, RenderInterrupted, TemplateProblem
from ._values import truthy
from ._invoke import invoker
from ._batch_step import run_batch
from ._fallback import with_fallback
from ._evaluate import Evaluator
from ._sweep import run_matrix, run_samples
from ._while import run_while
from ._tool_loop import converse
from ._toolbox import StepTools, ToolBox

Resolve = Callable[[StepSpec], ResolvedStep]


class Executor:
    """Runs a pipeline's steps in order; one instance per (nested) run."""

    def __init__(
        self,
        spec: PipelineSpec,
        run: PipelineRun,
        resolve: Resolve,
        context: Mapping[str, Any],
        emit: EmitEvent,
        cancel: CancelToken,
        *,
        namespace: Mapping[str, Any] | None = None,
        nested: Mapping[str, PipelineSpec] | None = None,
    ) -> None:
        self.spec, self.run, self.resolve = spec, run, resolve
        self.set_vars: dict[str, Any] = {}
        self.context = ChainMap({STEPS: run.steps}, self.set_vars, context)
        self.namespace = namespace or {}
        self.emit, self.cancel = emit, cancel
        self._read_attachments: dict[str, tuple[dict[str, Any], ...]] = {}
        """Attachments that use no name, as blocks, by step id: read once per run."""
        self._cached_replies: dict[str, str] = {}
        """The first reply's message id of each step that asked for caching."""
        self.nested = nested or {}
        """Pipeline files of ``file:`` steps, loaded at plan time, by resolved path."""
        self.tools = StepTools(self.namespace, spec.base_dir, cancel)
        """Each llm step's tools, resolved once per run."""
        self.received: dict[str, llm_call.Received] = {}
        """Text each running attempt has received so far, by result id."""
        self.evaluator = Evaluator(resolve, self.namespace, spec.pricing, cancel, emit, self.received)
        self._lock = threading.Lock()

    def run_all(self) -> None:
        failed: list[str] = []
        for step in self.spec.steps:
            if self.cancel.cancelled:
                return
            result = self.run.steps[step.id]
            blockers = [s for s in step.step_refs() if self.run.steps[s].status != "ok"]
            if failed and not (step.continue_on_error and not blockers):
                for skipped in (step, *step.descendants()):
                    self._skip(self.run.steps[skipped.id], f"skipped: step {failed[0]!r} failed")
                continue
            self.run_step(step, result)
            if result.status == "interrupted":
                return
            if result.status == "error":
                failed.append(step.id)

    def _cancelled(self) -> bool:
        return self.cancel.cancelled

    def _skip_reason(self, step: StepSpec) -> str | None:
        """Why ``step`` is skipped: a false ``when``, or it continues a skipped step; else None."""
        if step.when is not None and not truthy(step.when.evaluate(self.context)):
            return f"skipped: when {step.when.raw!r} was false"
        if step.continue_from and self.run.steps[step.continue_from].status == "skipped":
            return f"skipped: it continues step {step.continue_from!r}, which was skipped"
        return None

    def _skip(self, result: StepResult, note: str) -> None:
        result.status, result.note = "skipped", note
        self.emit(Event(STEP_END, result))

    def run_step(self, step: StepSpec, result: StepResult) -> None:
        """Run one step (its ``when``, its items) and leave its outcome on ``result``."""
        started = time.monotonic()
        result.status = "running"
        self.emit(Event(STEP_START, result))
        try:
            with step_outcome(step, result, self._cancelled):
                if reason := self._skip_reason(step):
                    result.status, result.note = "skipped", reason
                    for child in step.descendants():
                        self._skip(self.run.steps[child.id], f"skipped: step {step.id!r} was skipped")
                elif step.matrix:
                    run_matrix(self, step, result)
                elif step.while_expr is not None:
                    run_while(self, step, result, self.context)
                elif step.for_each is not None:
                    self.for_each(step, result, self.context)
                else:
                    self.unit(step, result, self.context)
                if result.status == "ok" and step.output_to_file is not None and not step.output_per_item:
                    path = write_output(step.output_to_file.render(self.context), result.output)
                    result.note = f"saved to {path.name}"
        finally:
            result.duration = time.monotonic() - started
            self.emit(Event(STEP_END, result))

    def unit(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        """One result's work, then its checks: the step's body, or its ``repeat`` samples."""
        if step.repeat > 1:
            run_samples(self, step, result, context)
            return
        started = time.monotonic()
        self._body(step, result, context)
        self.evaluator.evaluate(step, result, context, time.monotonic() - started)

    def llm_unit(self, step: StepSpec, result: StepResult, context: Mapping[str, Any], sample: int) -> None:
        """Sample ``sample`` of an llm step's call, then its checks."""
        started = time.monotonic()
        self._llm(step, result, context, sample=sample)
        self.evaluator.evaluate(step, result, context, time.monotonic() - started)

    # -- bodies by step type; each leaves output and status on ``result`` --

    def _body(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        body = {"llm": self._llm, "set": self._set, "python": self._python,
                "parallel": self._parallel, "pipeline": self.pipeline_body}[step.type]
        body(step, result, context)

    def _llm(self, step: StepSpec, result: StepResult, context: Mapping[str, Any], prompt: str | None = None,
             emit: EmitEvent | None = None, box: ToolBox | None = None, sample: int = 1) -> None:
        resolved = self.resolve(step)
        result.model = result.model or resolved.model
        history: tuple[dict[str, Any], ...] = ()
        if step.continue_from:
            earlier = self.run.steps[step.continue_from]
            # the earlier reply's blocks go back exactly: a thinking block must keep its signature
            answer = [block.to_api() for block in earlier.content] if earlier.content else earlier.text
            history = (*earlier.messages, {"role": "assistant", "content": answer})
        text = prompt if prompt is not None else llm_call.render(step, "prompt", context)
        ttl = step_cache_ttl(step)
        attachments = self.attachments(step, context)
        request = build_request(resolved, text, context, history, attachments,
                                previous_message_id=self._cached_replies.get(step.id) if ttl else None)
        if sample > 1:  # a sample of a repeat: its own cassette entry and journal key, so a replay gives N replies
            request = replace(request, options={**request.options, "sample": sample})
        box = box or self.tools.of(step)  # before the timer and the link, which only the finally below undoes
        token = CancelToken()
        unlink = self.cancel.on_cancel(token.cancel)
        timer = threading.Timer(step.timeout, token.cancel) if step.timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            with rate_scope(step.max_parallel, self._on_pause(result.id, emit or self.emit)):
                def send(how: ResolvedStep, what: LLMRequest) -> Reply | None:
                    if box is None:
                        return llm_call.call(how, what, result, token, self.cancel, emit or self.emit, self.received)
                    return converse(how, what, box, result, token, self.cancel, emit or self.emit, self.received)

                reply = with_fallback(send, resolved, request, result, self.cancel)
        finally:
            if timer:
                timer.cancel()
            unlink()
        if ttl and reply is not None and reply.id:  # later calls of this step compare their cache with it
            self._cached_replies.setdefault(step.id, reply.id)
        result.cost = llm_call.cost(result.usage, result.model, self.spec.pricing, cache_ttl=ttl)

    def _on_pause(self, step_id: str, emit: EmitEvent) -> Callable[[Pause], None]:
        """Report a rate-limit pause that ``step_id``'s call waited for, and count its length."""
        def report(pause: Pause) -> None:
            if pause.waited:
                with self._lock:
                    self.run.rate_limit_wait += pause.waited
            emit(Event(RATE_LIMIT, RateLimitInfo(step_id, pause.paused_until, pause.concurrency, pause.waited)))

        return report

    def attachments(self, step: StepSpec, context: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
        """The step's attachments as blocks; ones that use no name (plain paths) are read once per
        run, not once per for_each item or retry."""
        if step.attachments is None or step.attachments.names:
            return attachment_blocks(step, context, self.spec.base_dir or Path.cwd())
        with self._lock:  # items that start together wait for the first one's read
            if step.id not in self._read_attachments:
                self._read_attachments[step.id] = attachment_blocks(step, context, self.spec.base_dir or Path.cwd())
            return self._read_attachments[step.id]

    def _set(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        values = {name: value.evaluate(context) for name, value in step.set_vars.items()}
        with self._lock:
            self.set_vars.update(values)
        result.output, result.status = values, "ok"

    def _python(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        assert step.call is not None
        target = resolve_name(step.call, self.namespace)
        args = dict(step.args.evaluate(context)) if step.args else {}
        invoke = invoker(step, result, self._llm, self.emit, self.namespace, self.spec.base_dir)
        ctx = StepContext(result.id, context, self.run.steps, args, invoke)
        if isinstance(target, type) and issubclass(target, Step):
            output = target().run(ctx)
        elif callable(target):
            wants_ctx = "ctx" in parameters(target) and "ctx" not in args
            output = target(**args, ctx=ctx) if wants_ctx else target(**args)
        else:
            raise TypeError(f"call {step.call!r} is not a function or Step class: got {type(target).__name__}")
        result.output, result.status = output, "ok"
        result.text = output if isinstance(output, str) else result.text

    def _parallel(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        children = [(child, self.run.steps[child.id]) for child in step.children]
        with ThreadPoolExecutor(max_workers=min(step.max_parallel, len(children))) as pool:
            for future in [pool.submit(self.run_step, child, res) for child, res in children]:
                future.result()
        result.output = {child.id: res.output for child, res in children}
        settle(result, [res for _, res in children], "child")

    def pipeline_body(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        """Run the step's child pipeline once, with ``inputs`` evaluated in ``context``."""
        # recursion and depth were refused when the plan loaded every nested file (plan.load_nested)
        if step.file is not None:
            path = ((self.spec.base_dir or Path.cwd()) / step.file).resolve()
            child_spec = self.nested.get(str(path)) or load_spec(path)
        else:
            child_spec = step.inline or parse_spec(step.pipeline, SourceMap(f"{self.spec.source}#{step.id}"))
            child_spec = replace(child_spec, base_dir=self.spec.base_dir)
        child_spec = replace(inherit(child_spec, step), pricing={**self.spec.pricing, **child_spec.pricing})
        inputs = dict(step.inputs.evaluate(context)) if step.inputs else {}
        child_spec.check_names(set(inputs) | set(self.namespace))
        child = PipelineRun(name=child_spec.name, steps={s.id: StepResult(s.id, type=s.type)
                                                         for s in child_spec.all_steps()})
        result.child = child
        executor = Executor(child_spec, child, self.resolve, {**self.namespace, **child_spec.vars, **inputs},
                            _prefixed(self.emit, result.id), self.cancel, namespace=self.namespace,
                            nested=self.nested)
        child.status = "running"
        started = time.monotonic()
        executor.run_all()
        child.duration = time.monotonic() - started
        child.status = run_status(child)
        result.output = child.outputs
        result.usage, result.cost = child.usage, child.cost
        with self._lock:
            self.run.rate_limit_wait += child.rate_limit_wait
        last = next((s for s in reversed(child.steps.values()) if s.status == "ok"), None)
        result.text = last.text if last else ""
        settle(result, list(child.steps.values()), "step")

    def for_each(self, step: StepSpec, result: StepResult, context: Mapping[str, Any]) -> None:
        """Run the step once per item of its ``for_each`` list (evaluated in ``context``)."""
        assert step.for_each is not None
        try:
            items = step.for_each.evaluate(context)
        except RenderInterrupted:
            raise
        except TemplateProblem as exc:
            raise StepProblem("template_error", str(exc), "for_each", exc.line) from None
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            got = "nothing (null)" if items is None else f"{type(items).__name__} {items!r:.60}"
            hint = "; to loop over a mapping, use its .items() or .values()" if isinstance(items, Mapping) else ""
            raise StepProblem("invalid_for_each", f"for_each must give a list, got {got}{hint}", "for_each")
        items = list(items)
        results = [StepResult(item_id(result.id, i), type=step.type, model=result.model, item=item, index=i,
                              loop_var=step.loop_var)
                   for i, item in enumerate(items)]
        result.items = results
        done = failed = 0
        if items and step.batch:
            run_batch(self, step, result, items, results, context)
        elif items:
            result.note = f"0 of {len(items)}"  # every view can show the count before the first item ends
            report = result.id in self.run.steps  # a combination's items are counted by its step's combinations
            if report:
                self.emit(Event(PROGRESS, replace(result)))
            # with caching, the first item writes the cache alone, so that every later one can read it
            first = 1 if step.type == "llm" and step_cache_ttl(step) and len(items) > 1 else 0
            workers = min(step.max_parallel, len(items))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"pipeline_nb:{step.id}") as pool:
                waves = [range(first), range(first, len(items))] if first else [range(len(items))]
                for wave in waves:
                    # at most two items per worker are submitted at a time: 100,000 items are not
                    # 100,000 futures waiting in the pool's queue
                    waiting, running = iter(wave), {}

                    def submit(count: int) -> None:
                        for index in itertools.islice(waiting, count):
                            running[pool.submit(self._item, step, results[index], items[index], index,
                                                len(items), context)] = index

                    submit(2 * workers)
                    while running:
                        finished, _ = wait(running, return_when=FIRST_COMPLETED)
                        for future in finished:
                            future.result()
                            done += 1
                            failed += results[running.pop(future)].status == "error"  # interrupted items did not fail
                            result.note = f"{done} of {len(items)}" + (f", {failed} failed" if failed else "")
                            if report:
                                self.emit(Event(PROGRESS, replace(result)))  # a snapshot: the note moves on
                            submit(1)
        result.output = [r.output for r in results]
        result.text = "\n\n".join(r.text for r in results if r.text)
        result.usage = sum((r.usage for r in results), Usage())
        costs = [r.cost for r in results if r.cost is not None]
        result.cost = sum(costs) if costs else None
        result.attempts = max((r.attempts for r in results), default=0)
        settle(result, results, "item")
        result.note = items_note(results, " in a batch" if step.batch else "")

    def item_scope(self, step: StepSpec, item: Any, index: int, count: int,
                   context: Mapping[str, Any]) -> ChainMap[str, Any]:
        """What a for_each item's templates see: the loop variable and ``loop``, over ``context``."""
        return ChainMap({step.loop_var: item, "loop": {"index": index, "length": count}}, context)

    def _item(self, step: StepSpec, result: StepResult, item: Any, index: int, count: int,
              context: Mapping[str, Any]) -> None:
        if self.cancel.cancelled:
            return
        started = time.monotonic()
        result.status = "running"
        scope = self.item_scope(step, item, index, count, context)
        with step_outcome(step, result, self._cancelled):
            self.unit(step, result, scope)
            if result.status == "ok" and step.output_to_file is not None and step.output_per_item:
                path = write_output(step.output_to_file.render(scope), result.output)
                result.note = f"saved to {path.name}"
        result.duration = time.monotonic() - started


def _prefixed(emit: EmitEvent, prefix: str) -> EmitEvent:
    """A nested pipeline's stream events, renamed ``<step>/<child step>``; its step events dropped."""
    def rename(event: Event) -> None:
        data = event.data
        if isinstance(data, (Chunk, CitationChunk, Response, RetryInfo, ToolCallChunk, RateLimitInfo)):
            emit(Event(event.kind, data._replace(step_id=nested_id(prefix, data.step_id))))
        elif isinstance(data, (ToolCall, CheckResult)):
            emit(Event(event.kind, replace(data, step_id=nested_id(prefix, data.step_id))))

    return rename


