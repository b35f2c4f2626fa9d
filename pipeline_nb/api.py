"""The Python API: ``run`` a pipeline, ``invoke`` one LLM call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .engine import RunOptions, execute
from .errors import StepError
from .results import PipelineRun
from ._yaml import SourceMap
from .spec import load_spec, parse_spec
from .streaming.events import Event, Response
from .templates import literal

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
) -> PipelineRun:
    """Run a pipeline from YAML text, a path to a YAML file, or a dict.

    ``vars`` override the spec's ``vars``; ``provider``/``model``/``stream`` override every
    step; ``on_event`` is a handler or any callable taking an Event. With ``raise_on_error``
    a failed step raises StepError, whose ``.run`` keeps every result.
    """
    spec = load_spec(source)
    options = RunOptions(
        vars=dict(vars or {}),
        namespace=dict(namespace or {}),
        provider=provider,
        model=model,
        stream=stream,
        handlers=[on_event] if on_event is not None else [],
    )
    result = execute(spec, options)
    if raise_on_error:
        raise_for_status(result)
    return result


def raise_for_status(run: PipelineRun) -> None:
    """Raise StepError if a step failed or a handler raised; do nothing for a clean run."""
    problems = [f"step '{s.id}' failed: {s.error}" for s in run.steps.values() if s.status == "error"]
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

    ``params`` are llm step keys (``system``, ``max_tokens``, ``stop_sequences``, ...).
    The prompt is sent as is, not rendered as a template.
    """
    data: dict[str, Any] = {"name": "invoke", "steps": [{"id": "invoke", "type": "llm", "prompt": "", **params}]}
    spec = parse_spec(data, SourceMap("<invoke>"))
    spec = replace(spec, steps=(replace(spec.steps[0], prompt=literal(prompt)),))
    result = execute(spec, RunOptions(provider=provider, model=model, stream=stream,
                                      handlers=[on_event] if on_event is not None else []))
    raise_for_status(result)
    step_result = result.steps["invoke"]
    return Response("invoke", step_result.attempts, step_result.text, step_result.usage,
                    step_result.stop_reason, step_result.model, None, step_result.output)
