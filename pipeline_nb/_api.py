"""The Python API: ``run`` a pipeline, ``invoke`` one LLM call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._engine import RunOptions, estimate_spec, execute
from ._estimate_report import Estimate
from ._errors import ChecksFailed, StepError
from ._results import PipelineRun
from ._loader import load_spec
from ._invoke import llm_step
from ._spec import PipelineSpec
from .streaming._events import DONE, Event, Response

OnEvent = Callable[[Event], Any]


def run(
    source: str | Path | Mapping[str, Any],
    *,
    vars: Mapping[str, Any] | None = None,
    provider: str | None = None,
    on_event: OnEvent | Any | None = None,
    model: str | None = None,
    stream: bool | None = None,
    namespace: Mapping[str, Any] | None = None,
    raise_on_error: bool = True,
    cassette: str | Path | None = None,
    cassette_mode: str | None = None,
    cassette_pace: bool = False,
    journal: str | Path | None = None,
    resume: PipelineRun | str | bool | None = None,
    rerun: Sequence[str] = (),
    max_cost: float | None = None,
    estimate: bool = False,
    check: bool = False,
) -> PipelineRun | Estimate:
    """Run a pipeline from YAML text, a path to a YAML file, or a dict.

    ``vars`` override the spec's ``vars``; ``provider``/``model``/``stream`` override every
    step; ``on_event`` is a handler (or handler class) or any callable taking an Event.
    With ``raise_on_error`` a failed step raises StepError, whose ``.run`` keeps every result.
    ``cassette``/``cassette_mode`` record or replay replies; ``cassette_pace`` records the pace
    of streamed replies and replays at it instead of as fast as possible.
    ``journal`` is the run journal's path (or ``"off"``). ``resume`` (a run, a run id, or True for
    the journal's last run of this name) takes every reply whose request matches one of that run's
    instead of calling; ``rerun`` names steps that call anyway, with every step that reads them.
    ``max_cost`` (USD, over ``defaults.max_cost``) is the run's budget. With ``estimate`` nothing is
    called: the result is an Estimate of every step's calls, input tokens and cost range. With
    ``check`` a failed expectation raises ChecksFailed (after any StepError), its ``.run`` kept.
    """
    spec = load_spec(source)
    options = RunOptions(
        vars=dict(vars or {}),
        namespace=dict(namespace or {}),
        provider=provider,
        model=model,
        stream=stream,
        handlers=_handlers(on_event),
        cassette=str(cassette) if cassette else None,
        cassette_mode=cassette_mode,
        cassette_pace=cassette_pace,
        journal=str(journal) if journal else None,
        origin=str(source) if isinstance(source, Path) else None,
        resume=resume,
        rerun=tuple(rerun),
        max_cost=max_cost,
    )
    if estimate:
        return estimate_spec(spec, options)
    result = execute(spec, options)
    _again(result, source, options, raise_on_error)
    if raise_on_error:
        raise_for_status(result)
    if check:
        raise_for_checks(result)
    return result


def raise_for_checks(run: PipelineRun) -> None:
    """Raise ChecksFailed naming the checks that did not all pass; do nothing when every one did."""
    checks = run.checks
    if checks.ok:
        return
    failing = [f"{r.step}{f' [{r.variant}]' if r.variant else ''}: {r.name} {r}" for r in checks.rates() if not r.ok]
    shown = "; ".join(failing[:5]) + (f"; and {len(failing) - 5} more" if len(failing) > 5 else "")
    raise ChecksFailed(f"{len(checks.failed)} of {len(checks)} checks failed: {shown}", run=run)


def _again(result: PipelineRun, source: Any, options: RunOptions, raise_on_error: bool) -> None:
    """Let ``result.rerun(step)`` run ``source`` again as it was, reusing ``result``'s replies."""
    def again(steps: Sequence[str]) -> PipelineRun:
        rerun_options = replace(options, resume=result, rerun=tuple(steps))
        again_result = execute(load_spec(source), rerun_options)
        _again(again_result, source, rerun_options, raise_on_error)
        if raise_on_error:
            raise_for_status(again_result)
        return again_result

    result._again = again


def _handlers(on_event: OnEvent | Any | None) -> list[Any]:
    """``on_event`` as a handler list; a handler class is instantiated, as in ``stream_handler:``."""
    if on_event is None:
        return []
    return [on_event() if isinstance(on_event, type) else on_event]


def raise_for_status(run: PipelineRun) -> None:
    """Raise StepError if a step failed or a handler raised; do nothing for a clean run."""
    # a parallel step's error repeats its children's, which are listed themselves
    problems = [f"step '{s.id}' failed: {s.error}" for s in run.steps.values()
                if s.status == "error" and not (s.error and s.error.type == "child_failed")]
    problems += [f"handler {e}" for e in run.handler_errors]
    if problems:
        kept = sum(1 for s in run.steps.values() if s.status == "ok")
        message = "; ".join(problems) + f" ({kept} of {len(run.steps)} steps succeeded; results are kept on .run)"
        raise StepError(message, run=run)


def invoke(
    prompt: str,
    *,
    stream: bool = False,
    on_event: OnEvent | Any | None = None,
    provider: str | None = None,
    model: str | None = None,
    **params: Any,
) -> Response:
    """One LLM call, the Python form of the guide's ``Pipeline.LLM.invoke!``.

    ``params`` are llm step keys (``system``, ``max_tokens``, ``stop_sequences``, ``tools``, ...).
    The prompt and system are sent as they are, not rendered as templates.
    Returns the call's ``done`` Response; raises StepError if the call failed.
    """
    step = llm_step(prompt, params, "<invoke>")
    spec = PipelineSpec(name="invoke", steps=(step,), source="<invoke>")
    done: list[Response] = []

    def keep_done(event: Event) -> None:
        if event.kind == DONE:
            done.append(event.data)

    handlers = [keep_done, *_handlers(on_event)]
    result = execute(spec, RunOptions(provider=provider, model=model, stream=stream, handlers=handlers))
    raise_for_status(result)
    return done[-1]


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; raises ValueError naming a malformed pair."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--var expects KEY=VALUE with KEY a name, got {pair!r}")
        result[key.strip()] = value
    return result
