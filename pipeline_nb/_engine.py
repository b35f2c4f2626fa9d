"""The engine: plan a run, execute it on a worker thread, deliver events on this one.

The worker reads the streams and never blocks on a handler; events cross a queue;
the calling (main) thread calls handlers, so every display update happens there and
a KeyboardInterrupt lands where it can stop the run cleanly. No IPython, no widgets.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ._budget import Budget, BudgetProvider, require_price
from ._cassette import Cassette, CassetteProvider
from ._cassette_choice import choose_cassette
from ._errors import PipelineSpecError, RunInterrupted
from ._estimate import estimate
from ._estimate_report import Estimate
from ._execute import Executor
from ._names import resolve_name
from ._outcomes import run_status
from ._interrupts import first_interrupt_only
from ._journal import JournalRecorder
from ._journal_db import journal_path
from ._journal_read import earlier_run
from ._llm_call import ResolvedStep, fail, interrupted
from ._matrix_spec import variants
from ._mcp import serving
from ._plan import (check_attachments, check_calls, check_expectations, check_step_attributes, check_thinking,
                    check_tools, load_nested)
from ._llm import CancelToken, Provider, ProviderError, create_provider
from ._results import PipelineRun, StepResult
from ._run_options import RunOptions
from ._reuse import ReusingProvider, readers_of
from ._spec import PipelineSpec, StepSpec
from ._step_ids import owner_of
from .streaming._events import RUN_END, STEP_END, Chunk, Event
from .streaming._handlers import CallbackHandler, Handler

FLUSH_INTERVAL = 0.05
"""Seconds of quiet after which handlers are flushed."""
BATCH_PAUSE = 0.025
"""Seconds the pump rests after delivering what was queued, so events arrive in batches:
one thread switch per batch, not per delta, while the worker streams undisturbed. The
worker ending cuts the rest short."""
JOIN_TIMEOUT = 1.0
"""Seconds an interrupted worker gets to stop."""

HANDLER_FAILURES = (Exception, SystemExit)
"""What a handler may raise without ending the run (a handler calling sys.exit() included);
KeyboardInterrupt is not among them: it stops the run."""

_END = object()


def execute(spec: PipelineSpec, options: RunOptions) -> PipelineRun:
    """Run ``spec``. Raises PipelineSpecError before any call, RunInterrupted on Ctrl-C
    (however many times it is pressed); otherwise returns the run, whose status says
    whether every step succeeded."""
    with first_interrupt_only():
        return _Run(spec, options).start()


def estimate_spec(spec: PipelineSpec, options: RunOptions) -> Estimate:
    """What running ``spec`` would cost, with no model call: every request that can be rendered,
    its input tokens counted (exactly, by the API's count_tokens, for claude), across the items."""
    planner = _Run(spec, replace(options, journal="off", resume=None, max_cost=None))
    planner.recorder, planner.earlier = JournalRecorder(None, spec), None
    planner._plan()
    context = {**options.namespace, **spec.vars, **options.vars}
    return estimate(spec, planner.resolve, context, namespace=options.namespace, nested=planner.nested)


def as_handler(obj: Any) -> Handler:
    """A handler object as is; a plain callable wrapped in CallbackHandler."""
    if hasattr(obj, "handle_event"):
        return obj
    if callable(obj):
        return CallbackHandler(obj)
    raise TypeError(f"a handler needs handle_event() or must be callable, got {type(obj).__name__}")


def handler_name(handler: Any) -> str:
    if isinstance(handler, CallbackHandler):
        return handler.name
    return type(handler).__qualname__


class _Run:
    def __init__(self, spec: PipelineSpec, options: RunOptions) -> None:
        self.spec, self.options = spec, options
        self.cancel = CancelToken()
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._finished = threading.Event()  # set by the worker as it ends: wakes a resting pump
        self.handlers = [as_handler(h) for h in options.handlers]
        self.routes: dict[str | None, list[Handler]] = {}
        self.cassette: Cassette | None = None

    # -- planning: everything that can be wrong is found here, before any call --

    def _plan(self) -> None:
        max_cost = self.options.max_cost or self.spec.max_cost
        self.budget = Budget(max_cost, dict(self.spec.pricing)) if max_cost else None
        self.unready: dict[str, ProviderError] = {}
        """The first step whose provider cannot work (no key): the run fails as that step, running none."""
        available = set(self.options.vars) | set(self.options.namespace)
        self.spec.check_names(available)
        known = [s.id for s in self.spec.all_steps()]
        for step_id in self.options.rerun:
            if step_id not in known:
                raise PipelineSpecError(f"rerun names step {step_id!r}, which is not a step of {self.spec.name!r}",
                                        hint=f"its steps: {', '.join(known)}")
        self.providers: dict[str, Provider] = {}
        self.unwrapped: dict[str, Provider] = {}
        """Each provider as created, before the run's cassette, budget, resume and journal wrap it."""
        step_handlers: dict[str, Handler] = {}
        for step in self.spec.all_steps():
            own = []
            if step.stream_handler:
                if step.stream_handler not in step_handlers:
                    step_handlers[step.stream_handler] = self._stream_handler(step)
                own.append(step_handlers[step.stream_handler])
            self.routes[step.id] = _unique(self.handlers + own)
            for variant in variants(step) if step.type == "llm" else ():  # each combination of a matrix
                resolved = self.resolve(variant)
                check_thinking(variant, resolved.max_tokens)
                refused = getattr(self.unwrapped[resolved.provider_name], "refuse", lambda _: None)(variant)
                if refused is not None:  # a key this provider cannot honour: before any call, at the key
                    key, why = refused
                    raise PipelineSpecError(why, location=variant.where(key), step_id=step.id)
                try:
                    resolved.provider.check(_probe(resolved))
                except ProviderError as exc:  # e.g. no key: the run fails as its first such step, calling none
                    if not self.unready:
                        self.unready[step.id] = exc
        self.routes[None] = _unique(self.handlers + list(step_handlers.values()))
        check_calls(self.spec, self.options.namespace)
        check_expectations(self.spec, self.options.namespace, lambda step: self.resolve(step).model)
        check_step_attributes(self.spec)
        self.nested = load_nested(self.spec, self.options.namespace)
        for spec in (self.spec, *self.nested.values()):
            check_attachments(spec)
            check_tools(spec, self.options.namespace)
        if self.budget is not None:  # every model the run may call has a price, or it cannot be budgeted
            for spec in self.nested.values():
                self.budget.pricing.update({m: p for m, p in spec.pricing.items() if m not in self.spec.pricing})
            for step in self.spec.all_steps():
                for variant in variants(step) if step.type == "llm" else ():
                    require_price(self.budget.pricing, variant, self.resolve(variant).model)
                    if variant.fallback_model:
                        require_price(self.budget.pricing, variant, variant.fallback_model)
                for judge in (e for e in step.expect if e.kind == "judge"):
                    require_price(self.budget.pricing, step, judge.model or self.resolve(variants(step)[0]).model)

    def resolve(self, step: StepSpec) -> ResolvedStep:
        """The provider, model and stream flag of ``step`` under this run's options."""
        name = self.options.provider or step.provider or self.options.default_provider
        provider = self.providers.get(name)
        if provider is None:
            self.unwrapped[name] = self._provider(name, step)
            provider = self.providers[name] = self._wrap(self.unwrapped[name])
        return ResolvedStep(
            spec=step,
            provider=provider,
            provider_name=name,
            model=self.options.model or step.model or self.options.default_model,
            max_tokens=step.max_tokens or self.options.default_max_tokens,
            stream=bool(step.stream) if self.options.stream is None else self.options.stream,
        )

    def _wrap(self, provider: Provider) -> Provider:
        """``provider`` behind the run's cassette, the replies it resumes from, and its journal."""
        provider = self._with_cassette(provider)
        if self.budget is not None:  # a replayed reply counts as it did when recorded; a reused one is free
            provider = BudgetProvider(provider, self.budget)
        if self.earlier is not None:
            provider = ReusingProvider(provider, self.earlier, readers_of(self.spec, self.options.rerun))
        return self.recorder.wrap(provider)

    def _with_cassette(self, provider: Provider) -> Provider:
        """``provider`` behind the run's cassette, if one is set (flags, then YAML, then env)."""
        choice = choose_cassette(self.spec, self.options.cassette, self.options.cassette_mode)
        if choice is None:
            return provider
        path, mode = choice
        if self.cassette is None:
            try:
                self.cassette = Cassette(path)
            except ValueError as exc:
                raise PipelineSpecError(str(exc)) from None
        return CassetteProvider(provider, self.cassette, mode, paced=self.options.cassette_pace)

    def _provider(self, name: str, step: StepSpec) -> Provider:
        from ._llm import provider_names

        try:
            return create_provider(name)
        except KeyError:
            hint = f"known providers: {', '.join(provider_names())}"
            if self.options.provider:  # the override named it, not the YAML
                raise PipelineSpecError(f"--provider {name!r} is not a known provider", hint=hint) from None
            source = "provider" if "provider" in step.key_locations else None
            raise PipelineSpecError(
                f"unknown provider {name!r}" + ("" if source else " (the default provider)"),
                location=step.where("provider"), step_id=step.id,
                hint=hint if source else hint + "; set it with %config PipelineMagics.provider",
            ) from None

    def _stream_handler(self, step: StepSpec) -> Handler:
        name = step.stream_handler
        assert name is not None
        try:
            obj = resolve_name(name, self.options.namespace)
            if isinstance(obj, type):
                obj = obj()
            return as_handler(obj)
        except Exception as exc:
            raise PipelineSpecError(
                f"stream_handler {name!r} cannot be used: {exc}",
                location=step.where("stream_handler"), step_id=step.id,
                hint="name a handler class by dotted path (pipeline_nb.streaming.ConsoleHandler) "
                     "or a name defined in the kernel",
            ) from None

    # -- running --

    def start(self) -> PipelineRun:
        self.recorder = JournalRecorder(journal_path(self.options.journal, self.spec), self.spec, self.options.origin)
        self.handlers.insert(0, self.recorder)
        resume = self.options.resume
        self.earlier = earlier_run(resume, self.spec.name, self.recorder.path or self.options.journal) if resume else None
        self._plan()
        run = PipelineRun(
            name=self.spec.name,
            description=self.spec.description,
            steps={s.id: StepResult(s.id, type=s.type, model=self.resolve(s).model if s.type == "llm" and not s.matrix
                                    else None)
                   for s in self.spec.all_steps()},
            saved={s.save_as: s.id for s in self.spec.all_steps() if s.save_as},
        )
        run.reused_from = self.earlier.run_id if self.earlier else None
        run.warnings += [note for spec in (self.spec, *self.nested.values()) for note in spec.notes]
        run.budget = self.budget
        self.run = run
        self.initialised = list(self.routes[None])
        for handler in self.initialised:
            self._call(handler, handler.init, run)
        started = time.monotonic()
        run.status = "running"
        interrupted = False
        if self.unready:
            self._refuse()
        else:
            context = {**self.options.namespace, **self.spec.vars, **self.options.vars}
            executor = Executor(self.spec, run, self.resolve, context, self.events.put, self.cancel,
                                namespace=self.options.namespace, nested=self.nested)
            worker = threading.Thread(target=self._work, args=(executor,), name=f"pipeline_nb:{run.name}",
                                      daemon=True)
            worker.start()
            try:
                self._pump()
            except KeyboardInterrupt:
                interrupted = True
                self._stop(worker, executor)
        run.duration = time.monotonic() - started
        if self.cassette is not None:
            self.cassette.flush()
            run.warnings += self.cassette.warnings
        run.status = _run_status(run, interrupted)
        self._deliver(Event(RUN_END, run))
        for handler in self.initialised:  # a handler dropped after an error is still closed
            try:
                handler.close()
            except HANDLER_FAILURES as exc:
                self.run.handler_errors.append(f"{handler_name(handler)} raised {type(exc).__name__}: {exc} (in close)")
        run.status = _run_status(run, interrupted)
        if interrupted:
            raise RunInterrupted(run)
        return run

    def _refuse(self) -> None:
        """A provider is not ready: fail the first step that needs it, skip the rest, call nothing."""
        first = next(iter(self.unready))
        for step_id, result in self.run.steps.items():
            problem = self.unready.get(step_id)
            if problem is not None:
                fail(result, problem.type, problem.message)
            else:
                result.status, result.note = "skipped", f"skipped: step {first!r} cannot call its provider"
            self._deliver(Event(STEP_END, result))

    def _work(self, executor: Executor) -> None:
        try:  # the steps run with the MCP servers they use, all stopped before the run ends
            serving(executor.run_all, [self.spec, *self.nested.values()], self.cancel, self.run.warnings)
        finally:
            self.events.put(_END)
            self._finished.set()

    def _pump(self) -> None:
        """Deliver events until the worker ends: everything queued, then a short rest."""
        get, deliver, pause = self.events.get, self._deliver, self._finished.wait
        while True:
            try:
                event = get(timeout=FLUSH_INTERVAL)
            except queue.Empty:
                self._flush()
                continue
            while event is not _END:
                deliver(event)
                try:
                    event = get(False)
                except queue.Empty:
                    break
            else:
                self._flush()
                return
            pause(BATCH_PAUSE)

    def _stop(self, worker: threading.Thread, executor: Executor) -> None:
        """After Ctrl-C: close the streams, let the worker finish, deliver what it sent.

        A worker still busy after JOIN_TIMEOUT (a provider that ignores the cancel) is
        left behind as a daemon with its own StepResult; the run gets a copy, marked
        interrupted, with the text received so far.
        """
        self.cancel.cancel()
        worker.join(JOIN_TIMEOUT)
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if event is not _END:
                self._deliver(event)
        for step_id, step in self.run.steps.items():
            if step.status == "running":
                kept = replace(step, text=str(executor.received.get(step_id, "")))
                interrupted(kept)
                self.run.steps[step_id] = kept
        self._flush()

    def _deliver(self, event: Event) -> None:
        data = event.data
        if type(data) is Chunk:  # the hot path: one per delta
            step_id = data.step_id
        else:
            step_id = getattr(data, "step_id", None) or getattr(data, "id", None)
            if isinstance(data, PipelineRun):
                step_id = None
        targets = self.routes.get(step_id)
        if not targets:  # an item, a call or a nested step: its step's handlers
            targets = self.routes.get(owner_of(step_id), self.handlers)
        for handler in targets:
            try:
                handler.handle_event(event)
            except HANDLER_FAILURES as exc:
                self._handler_failed(handler, exc)

    def _flush(self) -> None:
        for handler in self.routes[None]:
            flush = getattr(handler, "flush", None)
            if flush is not None:
                self._call(handler, flush)

    def _call(self, handler: Handler, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except HANDLER_FAILURES as exc:
            self._handler_failed(handler, exc)

    def _handler_failed(self, handler: Handler, exc: BaseException) -> None:
        """A handler raised: drop it for the rest of the run and record why; results are kept."""
        self.run.handler_errors.append(f"{handler_name(handler)} raised {type(exc).__name__}: {exc}")
        for targets in self.routes.values():
            if handler in targets:
                targets.remove(handler)


def _unique(handlers: list[Handler]) -> list[Handler]:
    """The handlers in order, each object once (one may be both on_event and a stream_handler)."""
    return list({id(h): h for h in handlers}.values())


def _run_status(run: PipelineRun, interrupted: bool) -> str:
    """A handler that failed fails the run too: what it was asked to do (a log, a view) did not happen."""
    if interrupted:
        return "interrupted"
    status = run_status(run)
    return "error" if status == "ok" and run.handler_errors else status


def _probe(step: ResolvedStep) -> Any:
    from ._llm import LLMRequest

    return LLMRequest(step.provider_name, step.model, ({"role": "user", "content": ""},), step.max_tokens,
                      base_url=step.spec.base_url)
