"""``ctx.invoke``: an llm call from inside a python step, streamed under its own id (``<step>.invoke<n>``).

Its keywords are step keys, checked as YAML's are; ``tools=`` also takes functions and Tools as
they are. What it does not set it takes from its python step (and so from ``defaults``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._errors import PipelineError
from ._llm_call import EmitEvent
from ._results import StepResult
from ._spec import StepSpec, parse_spec
from ._step_ids import call_id
from ._templates import literal
from ._toolbox import ToolBox, toolbox
from ._yaml import SourceMap
from .streaming._events import Event, Response

INHERITED = ("provider", "model", "base_url", "max_tokens", "mock_delay", "retries", "retry_backoff",
             "retry_after_cap", "read_timeout")
"""Keys ``ctx.invoke`` takes from its python step (and defaults) unless passed."""

RunLLM = Callable[[StepSpec, StepResult, Mapping[str, Any], str, EmitEvent, ToolBox | None], None]


def invoker(step: StepSpec, result: StepResult, run_llm: RunLLM, emit: EmitEvent, namespace: Mapping[str, Any],
            base_dir: Path | None) -> Callable[..., Response]:
    """The ``invoke`` of ``step``'s StepContext: each call runs through ``run_llm`` and adds its usage
    and cost to ``result``; a call that fails raises PipelineError."""
    calls = iter(range(1, 1_000_000))

    def invoke(prompt: str, *, stream: bool, on_event: Callable[[Event], Any] | None, **params: Any) -> Response:
        call_spec = llm_step(prompt, {"stream": stream, **params}, f"{result.id}.invoke")
        box = toolbox(call_spec, namespace, base_dir) if call_spec.tools else None
        inherited = {key: getattr(step, key) for key in INHERITED if key not in params and getattr(step, key) is not None}
        call_result = StepResult(call_id(result.id, next(calls)))
        run_llm(replace(call_spec, **inherited), call_result, {}, prompt,
                emit if on_event is None else _tee(emit, on_event), box)
        result.usage = result.usage + call_result.usage
        if call_result.cost is not None:
            result.cost = (result.cost or 0.0) + call_result.cost
        result.tool_calls += call_result.tool_calls
        if call_result.status != "ok":
            raise PipelineError(f"ctx.invoke failed: {call_result.error or call_result.status}")
        return Response(call_result.id, call_result.attempts, call_result.text, call_result.usage,
                        call_result.stop_reason, call_result.model, None, call_result.output, call_result.content)

    return invoke


def llm_step(prompt: str, params: Mapping[str, Any], source: str) -> StepSpec:
    """An llm step (id ``invoke``) from keyword arguments: ``prompt`` and ``system`` are sent as they
    are, not rendered; ``tools`` may hold functions and Tools; the other keys are checked as YAML's are."""
    params = dict(params)
    system = params.pop("system", None)
    tools = tuple(params.get("tools") or ())
    if tools:
        params["tools"] = [t if isinstance(t, (str, Mapping)) else "function" for t in tools]
    data = {"name": "invoke", "steps": [{"id": "invoke", "type": "llm", "prompt": "", **params}]}
    step = parse_spec(data, SourceMap(source)).steps[0]
    return replace(step, tools=tools, prompt=literal(prompt), system=literal(system) if system is not None else None)


def _tee(emit: EmitEvent, on_event: Callable[[Event], Any]) -> EmitEvent:
    def both(event: Event) -> None:
        emit(event)
        on_event(event)

    return both
