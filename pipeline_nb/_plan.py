"""Plan-time checks beyond the spec itself: what python steps call, and the nested pipeline files.

A misspelt ``call:``, argument name or ``file:`` would otherwise surface only when its step
runs, after the paid steps before it. Each is found here, before any call, with its line:col.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ._attachments import static_problem
from ._context import Step
from ._errors import PipelineSpecError
from ._loader import load_spec
from ._matrix_spec import variants
from ._names import resolve_name
from ._results import StepResult
from ._spec import PipelineSpec, StepSpec
from ._toolbox import toolbox


def check_calls(spec: PipelineSpec, namespace: Mapping[str, Any]) -> None:
    """Raise PipelineSpecError for a python step whose ``call`` cannot be found or would refuse its ``args``
    (in ``spec`` and the inline pipelines it holds)."""
    for step in spec.all_steps():
        if step.type == "python":
            _check_call(step, namespace)
        elif step.inline is not None:
            check_calls(step.inline, namespace)


def check_tools(spec: PipelineSpec, namespace: Mapping[str, Any]) -> None:
    """Raise PipelineSpecError for an llm step whose ``tools:`` cannot be resolved (in ``spec`` and its
    inline pipelines): a tool that cannot be found or described, two of one name, a bad tool_choice."""
    for step in spec.all_steps():
        if step.type == "llm" and step.tools:
            toolbox(step, namespace, spec.base_dir)
        elif step.inline is not None:
            check_tools(replace(step.inline, base_dir=spec.base_dir), namespace)


def check_expectations(spec: PipelineSpec, namespace: Mapping[str, Any],
                       model_of: Callable[[StepSpec], str]) -> None:
    """Raise PipelineSpecError for an expectation that cannot work: a ``python`` check whose function
    cannot be found, a ``cost`` limit on a model without a price (in every combination of a matrix)."""
    for step in spec.all_steps():
        for expectation in step.expect:
            if expectation.kind == "python":
                try:
                    resolve_name(expectation.value.raw, namespace)
                except LookupError as exc:
                    raise PipelineSpecError(
                        f"expect {expectation.name!r}: {expectation.value.raw!r} cannot be found: {exc}",
                        location=expectation.location, step_id=step.id,
                        hint="define the function in the kernel before this cell, or name it as module:function",
                    ) from None
            elif expectation.kind == "cost" and step.type == "llm":
                for variant in variants(step):
                    model = model_of(variant)
                    if model not in spec.pricing:
                        raise PipelineSpecError(
                            f"expect {expectation.name!r}: model {model!r} has no price, so its cost is unknown",
                            location=expectation.location, step_id=step.id,
                            hint=f"add pricing: {{{model}: {{input: 3.0, output: 15.0}}}} to defaults "
                                 "(USD per million tokens)")
        if step.inline is not None:
            check_expectations(step.inline, namespace, model_of)


def _check_call(step: StepSpec, namespace: Mapping[str, Any]) -> None:
    assert step.call is not None
    try:
        target = resolve_name(step.call, namespace)
    except LookupError as exc:
        names = [name for name, value in namespace.items() if callable(value) and not name.startswith("_")]
        close = difflib.get_close_matches(step.call, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PipelineSpecError(
            f"call {step.call!r} cannot be found: {exc}", location=step.where("call"), step_id=step.id,
            hint=hint + "define the function in the kernel before this cell, or name it as module:function",
        ) from None
    if isinstance(target, type) and issubclass(target, Step):
        return  # a Step reads ctx.args as it likes
    if not callable(target):
        raise PipelineSpecError(
            f"call {step.call!r} is a {type(target).__name__}, not a function or Step class",
            location=step.where("call"), step_id=step.id, hint="name a function, or a pipeline_nb.Step subclass",
        )
    raw = step.args.raw if step.args is not None else {}
    if isinstance(raw, Mapping):  # the argument names are written out: check them against the signature
        _check_arguments(step, target, [str(name) for name in raw])


def _check_arguments(step: StepSpec, target: Callable[..., Any], names: list[str]) -> None:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: it will tell at run time
        return
    parameters = signature.parameters
    if "ctx" in parameters and "ctx" not in names:
        names = [*names, "ctx"]
    try:
        signature.bind(**dict.fromkeys(names))
    except TypeError:
        pass
    else:
        return
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    accepted = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [] if takes_any else [n for n in names if n not in accepted]
    where, label = step.where("args"), f"{step.call}{signature}"
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        raise PipelineSpecError(
            f"args has {unknown[0]!r}, which {label} does not take", location=where, step_id=step.id,
            hint=(f"did you mean {close[0]!r}? " if close else "") + f"it takes: {', '.join(accepted) or 'nothing'}",
        )
    missing = [n for n, p in parameters.items() if p.default is p.empty and n not in names
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise PipelineSpecError(
            f"args lacks {missing[0]!r}, which {label} needs", location=where, step_id=step.id,
            hint=f"add {missing[0]}: under args:",
        )
    raise PipelineSpecError(f"{label} cannot be called with keyword arguments only", location=where,
                            step_id=step.id, hint="wrap it in a function that takes keyword arguments")


MAX_DEPTH = 8
"""How deeply pipeline steps may nest."""


def load_nested(spec: PipelineSpec, namespace: Mapping[str, Any]) -> dict[str, PipelineSpec]:
    """Every pipeline file ``spec`` names in a ``file:`` step, loaded now, by resolved path.

    A missing, unreadable or broken child file, a file that includes itself and names a
    child uses that nothing defines are PipelineSpecErrors before any call, not step
    failures after the paid steps before them."""
    loaded: dict[str, PipelineSpec] = {}
    top = (str(Path(spec.source).resolve()),) if spec.base_dir is not None else ()
    _load_children(spec, namespace, top, loaded, depth=0)
    return loaded


def _load_children(spec: PipelineSpec, namespace: Mapping[str, Any], stack: tuple[str, ...],
                   loaded: dict[str, PipelineSpec], depth: int) -> None:
    for step in spec.all_steps():
        if step.type != "pipeline":
            continue
        if step.file is None:
            assert step.inline is not None
            child, key = replace(step.inline, base_dir=spec.base_dir), f"{spec.source}#{step.id}"
        else:
            path = ((spec.base_dir or Path.cwd()) / step.file).resolve()
            key = str(path)
            if key in stack:
                chain = " → ".join(Path(p).name for p in (*stack, key))
                raise PipelineSpecError(f"pipeline recursion: {chain}", location=step.where("file"),
                                        step_id=step.id, hint="a pipeline may not include itself, directly or not")
            if not path.is_file() and not path.exists():
                raise PipelineSpecError(
                    f"file {step.file!r} does not exist (looked for {path})", location=step.where("file"),
                    step_id=step.id, hint="a file: path is relative to the pipeline's own file, or for a cell, "
                                          "a string or a dict, to the working directory (the notebook's)",
                )
            child = loaded.get(key) or load_spec(path)
            loaded[key] = child
        if depth >= MAX_DEPTH:
            raise PipelineSpecError(f"pipelines nest more than {MAX_DEPTH} deep",
                                    location=step.where("file" if step.file else "pipeline"), step_id=step.id,
                                    hint="flatten the nesting")
        if step.inputs is None or isinstance(step.inputs.raw, Mapping):  # the child's names are known now
            inputs = step.inputs.raw if step.inputs is not None else {}
            child.check_names({*map(str, inputs), *namespace})
        _load_children(child, namespace, (*stack, key), loaded, depth + 1)


def check_step_attributes(spec: PipelineSpec) -> None:
    """Raise PipelineSpecError for ``steps.<id>.<attribute>`` naming no attribute of a step's result."""
    known = sorted(STEP_ATTRIBUTES)
    for step in spec.all_steps():
        for key, template in step.templates():
            for ref, attribute, line in template.step_attributes:
                if attribute in STEP_ATTRIBUTES:
                    continue
                close = difflib.get_close_matches(attribute, known, n=1)
                raise PipelineSpecError(
                    f"{key} uses steps.{ref}.{attribute}, which a step's result does not have",
                    location=step.where(key, line), step_id=step.id,
                    hint=(f"did you mean steps.{ref}.{close[0]}? " if close else "")
                    + "a step has: " + ", ".join(a for a in known if a in _COMMON) + ", and " + ", ".join(
                        a for a in known if a not in _COMMON),
                )
        if step.inline is not None:
            check_step_attributes(step.inline)


STEP_ATTRIBUTES = frozenset(
    {f.name for f in fields(StepResult)} | {name for name in dir(StepResult) if not name.startswith("_")})
"""What a template may read from ``steps.<id>``: the public attributes of StepResult."""
_COMMON = ("text", "output", "status", "usage")


def check_thinking(step: StepSpec, max_tokens: int) -> None:
    """A thinking budget the API would refuse: it must be below the step's ``max_tokens``."""
    budget = step.thinking.get("budget_tokens") if isinstance(step.thinking, Mapping) else None
    if budget is not None and budget >= max_tokens:
        raise PipelineSpecError(
            f"thinking.budget_tokens ({budget}) must be below max_tokens ({max_tokens})",
            location=step.where("thinking"), step_id=step.id,
            hint=f"raise max_tokens above {budget} (thinking and the answer share it), or lower the budget",
        )


INHERITED = ("provider", "model", "base_url", "max_tokens", "retries", "retry_backoff", "retry_after_cap",
             "timeout", "read_timeout")
"""What a nested pipeline's steps take from the pipeline step that runs them, unless they set it."""


def inherit(child: PipelineSpec, parent: StepSpec) -> PipelineSpec:
    """``child`` with every step that does not set an INHERITED key given the parent step's own
    (written on it, or in its pipeline's ``defaults``, or inherited in turn)."""
    settings = {key: getattr(parent, key) for key in INHERITED if key in parent.key_locations}
    if not settings:
        return child
    return replace(child, steps=tuple(_inherited(step, settings, parent) for step in child.steps))


def _inherited(step: StepSpec, settings: Mapping[str, Any], parent: StepSpec) -> StepSpec:
    missing = {key: value for key, value in settings.items() if key not in step.key_locations}
    children = tuple(_inherited(child, settings, parent) for child in step.children)
    if not missing and children == step.children:
        return step
    where = {key: parent.key_locations[key] for key in missing}  # errors about them point at the parent
    return replace(step, **missing, children=children, key_locations={**where, **step.key_locations})


def check_attachments(spec: PipelineSpec) -> None:
    """Every attachment known before the run (a path without a template) exists, is of a kind the API
    takes and is within its limits; else a PipelineSpecError at the step's ``attachments``."""
    for step in spec.all_steps():
        if step.attachments is None:
            if step.inline is not None:
                check_attachments(replace(step.inline, base_dir=spec.base_dir))
            continue
        problem = static_problem(step.attachments.raw, spec.base_dir or Path.cwd())
        if problem is not None:
            index, message, hint = problem
            raise PipelineSpecError(message if index < 0 else f"attachments[{index}]: {message}",
                                    location=step.where("attachments"), step_id=step.id, hint=hint)
