"""Estimates: what a pipeline would cost, found without calling a model (``--estimate``).

Each llm step's requests are built as the run builds them (``_request.build_request``: prompt,
system, attachments, tools, params), one per for_each item when the list is known before the run,
and their input tokens are counted by the provider (:class:`~pipeline_nb._llm.TokenCounter`):
claude asks the API's count_tokens (exact, free), the mock guesses (flagged not exact). Requests
that are the same are counted once; past ``EXACT_ITEMS`` distinct ones in a step, the rest are
scaled from their length. Output is the worst case, ``max_tokens`` a call; cost is a range, from
the input alone to input plus that output, at ``defaults.pricing``, halved for batch steps, the
input at the cache-write rate in the worst case of a step that caches.

What only the run can tell is bounded or flagged on the step's row:

- a prompt or system that reads an earlier step (``steps.x.text``, a set var or pipeline input
  made from one) is rendered with a one-token placeholder for it, counted, and given the earlier
  step's worst-case output (all its calls' ``max_tokens``) each time the template reads it:
  ``bound``. ``continue:`` adds the earlier request and its reply's worst case the same way;
- a ``when`` that reads an earlier step is counted as if true (it is, in the worst case);
- a for_each whose list comes from an earlier step (one item is counted), a tool loop's later
  rounds, a python step (its output, its ``ctx.invoke`` calls), attachments named by an earlier
  step: ``partial``, the figures are a floor.

Nothing is run: no python step, no tool, no model call.
"""

from __future__ import annotations

from collections import ChainMap, Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._estimate_report import Estimate, StepEstimate
from ._batch_step import BATCH_DISCOUNT
from ._values import truthy
from ._llm import LLMRequest
from ._llm_call import ResolvedStep, StepProblem, cost, render
from ._loader import load_spec
from ._plan import inherit
from ._request import attachment_blocks, build_request, step_cache_ttl
from ._results import Usage
from ._spec import PipelineSpec, StepSpec, parse_spec
from ._matrix_spec import variants
from ._step_ids import nested_id, variant_id
from ._token_count import EXACT_ITEMS, Count, Counted, RequestCounter, count_input_tokens
from ._templates import STEPS, Template, TemplateProblem
from ._toolbox import toolbox
from ._values import Value, compile_value
from ._yaml import SourceMap

__all__ = ["EXACT_ITEMS", "Counted", "Estimate", "StepEstimate", "count_input_tokens", "estimate"]

_SMALL = frozenset({"status", "ok", "usage", "cost", "attempts", "duration", "model", "stop_reason", "note", "id",
                    "type", "index", "error"})
"""Attributes of an earlier step that are not its reply: reading them adds no reply to a prompt."""


def estimate(spec: PipelineSpec, resolve: Callable[[StepSpec], ResolvedStep], context: Mapping[str, Any], *,
             namespace: Mapping[str, Any] | None = None, nested: Mapping[str, PipelineSpec] | None = None,
             count: Count = count_input_tokens, exact_items: int = EXACT_ITEMS) -> Estimate:
    """Estimate ``spec`` as the run would go, without running it.

    Takes what the engine's executor takes: ``resolve`` (a step's provider, model and max_tokens,
    as ``_Run.resolve``), ``context`` (kernel names, ``vars:`` and ``--var``, as the run's),
    ``namespace`` (for tools and nested pipelines) and ``nested`` (the pipeline files
    ``_plan.load_nested`` loaded). ``count`` counts one request (default: the provider's
    count_tokens); ``exact_items`` caps the distinct requests counted per step."""
    counter = RequestCounter(count, exact_items)
    walk = _Walk(spec, resolve, context, namespace or {}, nested or {}, counter, {})
    walk.steps(spec.steps)
    return Estimate(spec.name, walk.rows, counter.warnings)


class _Placeholder(str):
    """An earlier reply (or anything made from one) in a template: one short word, whatever is read from it."""

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return PLACEHOLDER

    def __getitem__(self, key: Any) -> _Placeholder:  # type: ignore[override]
        return PLACEHOLDER


PLACEHOLDER = _Placeholder("…")


class _Walk:
    """Estimates one pipeline's steps in order; a nested pipeline gets a walk of its own."""

    def __init__(self, spec: PipelineSpec, resolve: Callable[[StepSpec], ResolvedStep], context: Mapping[str, Any],
                 namespace: Mapping[str, Any], nested: Mapping[str, PipelineSpec], counter: RequestCounter,
                 unknown: dict[str, int | None], prefix: str | None = None) -> None:
        self.spec, self.resolve, self.namespace, self.nested, self.counter = spec, resolve, namespace, nested, counter
        self.set_vars: dict[str, Any] = {}
        self.context = ChainMap({STEPS: PLACEHOLDER}, self.set_vars, dict(context))
        self.unknown = dict(unknown)
        """Names whose value only the run knows → the most tokens they can hold (None: no bound)."""
        self.worst: dict[str, int | None] = {}
        """Each step's worst-case output in tokens, for the steps that read it (None: no bound)."""
        self.sent: dict[str, tuple[LLMRequest, int] | None] = {}
        """Each single-call llm step's request and its bound extra, for ``continue:``."""
        self.read: dict[str, tuple[dict[str, Any], ...]] = {}
        """Attachments that use no name, as blocks, by step id."""
        self.rows: list[StepEstimate] = []
        self.prefix = prefix

    def steps(self, steps: Iterable[StepSpec]) -> None:
        for step in steps:
            self.step(step)

    def _id(self, step: StepSpec) -> str:
        return nested_id(self.prefix, step.id) if self.prefix else step.id

    def _row(self, step: StepSpec, **fields: Any) -> StepEstimate:
        row = StepEstimate(self._id(step), step.type, **fields)
        self.rows.append(row)
        return row

    def step(self, step: StepSpec) -> None:
        when = self._when(step)
        if when is False:
            self._row(step, note=f"skipped: when {step.when.raw!r} is false" if step.when else "")
            for child in step.descendants():
                self._row(child, note=f"skipped: step {step.id!r} is skipped")
                self.worst[child.id] = 0
            self.worst[step.id] = 0
            return
        note = f"counted as if when {step.when.raw!r} holds" if when is None and step.when else ""
        if step.type == "llm" and step.matrix:
            self._matrix(step, note)
        elif step.type == "llm":
            self._llm(step, note)
        elif step.type == "set":
            self._set(step)
            self._row(step, note=note)
            self.worst[step.id] = 0
        elif step.type == "python":
            self._row(step, partial=True, note=_join(note, "a python step: its output and any ctx.invoke calls "
                                                           "are known only when it runs"))
            self.worst[step.id] = None
        else:
            self._container(step, note)

    def _when(self, step: StepSpec) -> bool | None:
        """Whether the step runs: known when ``when`` reads nothing of the run, else None."""
        if step.when is None:
            return True
        if self._depends(step.when.templates):
            return None
        try:
            return truthy(step.when.evaluate(self.context))
        except TemplateProblem:
            return None

    def _depends(self, templates: Iterable[Template]) -> list[str]:
        """What ``templates`` read that only the run knows (``steps.x``, names made from them)."""
        return list(dict.fromkeys([*(f"{STEPS}.{ref}" for t in templates for ref in t.step_refs),
                                   *(name for t in templates for name in sorted(t.names) if name in self.unknown)]))

    def _reads(self, templates: Iterable[Template]) -> tuple[int, bool, list[str]]:
        """What ``templates`` read that only the run knows: the most tokens it adds, whether it is
        unbounded, and what it is (``steps.x``, names)."""
        extra, unbounded, what = 0, False, []
        for template in templates:
            replies = Counter(ref for ref, attr, _ in template.step_attributes if attr not in _SMALL)
            read: list[tuple[str, int | None, int]] = [  # (what, its worst case, how many times)
                (f"{STEPS}.{ref}", self.worst.get(ref),
                 replies[ref] or int(all(r != ref for r, _, _ in template.step_attributes)))
                for ref in template.step_refs]
            read += [(name, self.unknown[name], 1) for name in sorted(template.names) if name in self.unknown]
            for name, worst, times in read:
                if not times:  # only steps.x.status and the like: no reply in the text
                    continue
                what.append(name)
                if worst is None:
                    unbounded = True
                else:
                    extra += worst * times
        return extra, unbounded, list(dict.fromkeys(what))

    # -- llm steps --

    def _llm(self, step: StepSpec, note: str) -> None:
        resolved = self.resolve(step)
        scopes, partial, notes = self._scopes(step)
        notes.insert(0, note)
        templates = [t for key, t in step.templates() if key in ("prompt", "system")]
        extra, unbounded, what = self._reads(templates)
        history, extra_history, missing = self._history(step)
        if what:
            notes.append(f"reads {', '.join(what)}" + (": no bound for it" if unbounded else ""))
        partial = partial or unbounded or missing
        box = toolbox(step, self.namespace, self.spec.base_dir) if step.tools else None
        if box is not None:
            partial = True
            notes.append(f"tool loop: the first call is counted; up to {box.max_rounds} more rounds resend the "
                         "conversation with the tools' results")
        requests, failed = [], ""
        skip_attachments = step.attachments is not None and bool(self._depends(step.attachments.templates))
        if skip_attachments:
            partial = True
            notes.append("its attachments are named by an earlier step: not counted")
        for scope in scopes:
            try:
                requests.append(self._request(step, resolved, scope, history, box, skip_attachments))
            except StepProblem as exc:  # the run would fail the same way
                failed = f"cannot be built: {exc.kind}: {exc.message}"
        if failed:
            partial = True
            notes.append(failed)
        judges = sum(check.kind == "judge" for check in step.expect)
        if judges:
            partial = True
            notes.append(f"{judges} judge call{'s' if judges > 1 else ''} a result: not counted")
        if step.repeat > 1:
            notes.append(f"{step.repeat} samples a call")
        counted, exact, counted_note = self.counter.tokens(resolved.provider, requests) if requests else (0, True, "")
        calls = len(scopes) * step.repeat
        input_tokens = (counted + (extra + extra_history) * len(requests)) * step.repeat
        output = calls * resolved.max_tokens
        discount = BATCH_DISCOUNT if step.batch and step.for_each is not None else 1.0
        ttl = step_cache_ttl(step)
        pricing = self.spec.pricing
        low = cost(Usage(input_tokens=input_tokens), resolved.model, pricing, discount)
        worst = (Usage(cache_write_tokens=input_tokens, output_tokens=output) if ttl  # the first call writes
                 else Usage(input_tokens=input_tokens, output_tokens=output))
        high = cost(worst, resolved.model, pricing, discount, cache_ttl=ttl)
        self._row(step, model=resolved.model, calls=calls, input_tokens=input_tokens, output_tokens=output,
                  cost_min=low, cost_max=high, batch=discount != 1.0, exact=exact and not failed,
                  bound=bool(extra or extra_history), partial=partial, note=_join(*notes, counted_note))
        self.worst[step.id] = output
        self.sent[step.id] = (requests[0], extra + extra_history) if requests and step.for_each is None else None

    def _matrix(self, step: StepSpec, note: str) -> None:
        """A row per combination (``answer@1``, ...), each counted with its keys and names."""
        base, worst = self.context, 0
        try:
            for number, variant in enumerate(variants(step), 1):
                self.context = ChainMap(dict(variant.matrix_values or {}), base)
                self._llm(replace(variant, id=variant_id(step.id, number)), note)
                worst += self.worst.pop(variant_id(step.id, number)) or 0
        finally:
            self.context = base
        self.worst[step.id] = worst

    def _scopes(self, step: StepSpec) -> tuple[list[Mapping[str, Any]], bool, list[str]]:
        """The scope of each call: one, or one per for_each item (one placeholder item when only
        the run knows the list); whether that is partial; notes."""
        if step.for_each is None:
            return [self.context], False, []
        items = self._items(step)
        if items is None:
            scope = ChainMap({step.loop_var: PLACEHOLDER, "loop": {"index": 0, "length": 1}}, self.context)
            return [scope], True, [f"for_each reads {', '.join(self._depends(step.for_each.templates))}: "
                                   "one item counted, the number of items is known only when it runs"]
        return [ChainMap({step.loop_var: item, "loop": {"index": i, "length": len(items)}}, self.context)
                for i, item in enumerate(items)], False, []

    def _items(self, step: StepSpec) -> list[Any] | None:
        """The for_each list, when it reads nothing of the run (and gives a list)."""
        assert step.for_each is not None
        if self._depends(step.for_each.templates):
            return None
        try:
            items = step.for_each.evaluate(self.context)
        except TemplateProblem:
            return None
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            return None
        return list(items)

    def _history(self, step: StepSpec) -> tuple[tuple[dict[str, Any], ...], int, bool]:
        """The conversation a ``continue:`` step goes on with: the earlier request and a placeholder
        reply; the tokens it may hold beyond that; whether it is missing."""
        if not step.continue_from:
            return (), 0, False
        earlier = self.sent.get(step.continue_from)
        if earlier is None:
            return (), 0, True
        request, extra = earlier
        worst = self.worst.get(step.continue_from) or 0
        return (*request.messages, {"role": "assistant", "content": str(PLACEHOLDER)}), extra + worst, False

    def _request(self, step: StepSpec, resolved: ResolvedStep, scope: Mapping[str, Any],
                 history: tuple[dict[str, Any], ...], box: Any, skip_attachments: bool) -> LLMRequest:
        prompt = render(step, "prompt", scope)
        attachments = () if skip_attachments else self._attachments(step, scope)
        request = build_request(resolved, prompt, scope, history, attachments)
        return replace(request, params={**request.params, **box.api_params()}) if box is not None else request

    def _attachments(self, step: StepSpec, scope: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
        """The step's attachments as blocks; read once a step when they use no name, as the executor does."""
        if step.attachments is not None and not step.attachments.names and step.id in self.read:
            return self.read[step.id]
        blocks = attachment_blocks(step, scope, self.spec.base_dir or Path.cwd())
        if step.attachments is not None and not step.attachments.names:
            self.read[step.id] = blocks
        return blocks

    # -- set, parallel and pipeline steps --

    def _set(self, step: StepSpec) -> None:
        for name, value in step.set_vars.items():
            if self._depends(value.templates):
                extra, unbounded, _ = self._reads(value.templates)
                self.unknown[name] = None if unbounded else extra
                self.set_vars[name] = PLACEHOLDER
                continue
            try:
                self.set_vars[name] = value.evaluate(self.context)
            except TemplateProblem:
                self.unknown[name], self.set_vars[name] = None, PLACEHOLDER

    def _container(self, step: StepSpec, note: str) -> None:
        """A parallel or pipeline step: its steps' rows after its own, times its for_each items."""
        count, partial, scope = 1, False, self.context
        if step.for_each is not None:
            items = self._items(step)
            count, partial = (1, True) if items is None else (len(items), False)
            first = PLACEHOLDER if items is None else items[0] if items else None
            scope = ChainMap({step.loop_var: first, "loop": {"index": 0, "length": count}}, self.context)
        at = len(self.rows)
        self.rows.append(StepEstimate(self._id(step), step.type))
        if step.type == "parallel":
            self.steps(step.children)
            worst = [self.worst.get(child.id) for child in step.children]
        else:
            children, worst = self._pipeline(step, scope)
            self.rows += children
        if step.for_each is not None:
            self.rows[at + 1:] = [row.times(count) for row in self.rows[at + 1:]]
        each = f"its steps below, for each of {count:,} items" if step.for_each is not None else "its steps below"
        if partial:
            each += "; for_each reads the run: counted for one item"
        self.rows[at] = StepEstimate(self._id(step), step.type, partial=partial, note=_join(note, each))
        self.worst[step.id] = None if None in worst else sum(w or 0 for w in worst) * max(count, 1)

    def _pipeline(self, step: StepSpec, scope: Mapping[str, Any]) -> tuple[list[StepEstimate], list[int | None]]:
        """The rows of the pipeline a pipeline step runs, as the executor builds it, and their worst outputs."""
        if step.file is not None:
            path = ((self.spec.base_dir or Path.cwd()) / step.file).resolve()
            child = self.nested.get(str(path)) or load_spec(path)
        else:
            child = step.inline or parse_spec(step.pipeline, SourceMap(f"{self.spec.source}#{step.id}"))
            child = replace(child, base_dir=self.spec.base_dir)
        child = replace(inherit(child, step), pricing={**self.spec.pricing, **child.pricing})
        known, unknown = self._inputs(step, scope)
        walk = _Walk(child, self.resolve, {**self.namespace, **child.vars, **known}, self.namespace, self.nested,
                     self.counter, unknown, prefix=self._id(step))
        walk.steps(child.steps)
        return walk.rows, [walk.worst.get(s.id) for s in child.steps]

    def _inputs(self, step: StepSpec, scope: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int | None]]:
        """A pipeline step's ``inputs``: the values known now, and the rest as placeholders with their bound."""
        if step.inputs is None:
            return {}, {}
        raw = step.inputs.raw
        parts: Mapping[str, Value] = ({str(k): compile_value(v) for k, v in raw.items()} if isinstance(raw, Mapping)
                                      else {"": step.inputs})
        known: dict[str, Any] = {}
        unknown: dict[str, int | None] = {}
        for name, value in parts.items():
            if self._depends(value.templates) and name:
                extra, unbounded, _ = self._reads(value.templates)
                known[name], unknown[name] = PLACEHOLDER, None if unbounded else extra
                continue
            try:
                evaluated = value.evaluate(scope)
            except TemplateProblem:
                continue
            if name:
                known[name] = evaluated
            elif isinstance(evaluated, Mapping):
                known.update({str(k): v for k, v in evaluated.items()})
        return known, unknown


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)
