"""One canonical request: an llm step, rendered, as the Messages API's parameters.

Everything a step asks of the API (its prompt and attachments, system, thinking, effort,
caching, output schema, ``params`` and ``extra_body``) becomes part of one LLMRequest here.
Its ``api_params()`` is what the SDK sends and what the cassette key is made of.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._attachments import AttachmentProblem, attachment_for, check_request, parse_item
from ._llm import LLMRequest
from ._llm_call import ResolvedStep, StepProblem, render
from ._spec import StepSpec

CACHE_TTLS = ("5m", "1h")


def build_request(
    resolved: ResolvedStep, prompt: str, context: Mapping[str, Any], history: tuple[dict[str, Any], ...] = (),
    attachments: tuple[dict[str, Any], ...] = (), previous_message_id: str | None = None,
) -> LLMRequest:
    """The request for ``prompt`` (after ``attachments``, as content blocks), after ``history``.
    With ``previous_message_id``, the API is asked why the cache missed, compared with that message."""
    step = resolved.spec
    options = {k: getattr(step, k) for k in ("mock_response", "mock_delay", "read_timeout")}
    content: str | list[dict[str, Any]] = [*attachments, {"type": "text", "text": prompt}] if attachments else prompt
    return LLMRequest(
        provider=resolved.provider_name,
        model=resolved.model,
        messages=(*history, {"role": "user", "content": content}),
        max_tokens=resolved.max_tokens,
        system=_system(step, context),
        stop_sequences=step.stop_sequences,
        output_schema=dict(step.output_schema) if step.output_schema is not None else None,
        stream=resolved.stream,
        base_url=step.base_url,
        options={k: v for k, v in options.items() if v is not None},
        params={**api_extras(step), **({"diagnostics": {"previous_message_id": previous_message_id}}
                                        if previous_message_id else {})},
        extra_body=dict(step.extra_body) if step.extra_body else None,
    )


def attachment_blocks(step: StepSpec, context: Mapping[str, Any], base_dir: Path) -> tuple[dict[str, Any], ...]:
    """The step's attachments, rendered, as content blocks; a problem fails the step (``invalid_attachment``)."""
    if step.attachments is None:
        return ()
    made, number = [], 0
    try:
        for number, (raw, value) in enumerate(zip(step.attachments.raw, step.attachments.evaluate(context))):
            made.append(attachment_for(parse_item(raw), value["file"] if isinstance(value, Mapping) else value,
                                       base_dir))
        check_request(made)
    except AttachmentProblem as exc:
        index = exc.index if exc.index is not None else number
        hint = f"; {exc.hint}" if exc.hint else ""
        raise StepProblem("invalid_attachment", f"attachments[{index}]: {exc.message}{hint}", "attachments") from None
    return tuple(block.to_api() for block in made)


def _system(step: StepSpec, context: Mapping[str, Any]) -> str | tuple[dict[str, Any], ...] | None:
    """The system prompt: text, or (marked for caching) one text block with its cache mark."""
    if not step.system:
        return None
    text = render(step, "system", context)
    ttl = cache_ttl(step.system_cache)
    if not ttl:
        return text
    return ({"type": "text", "text": text, "cache_control": _cache_control(ttl)},)


def _cache_control(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}


def api_extras(step: StepSpec) -> dict[str, Any]:
    """The API parameters a step sets beyond the prompt: ``params``, thinking, effort, caching."""
    extras: dict[str, Any] = dict(step.params or {})
    thinking = thinking_param(step.thinking)
    if thinking is not None:
        extras["thinking"] = thinking
    if step.effort:
        extras["output_config"] = {**extras.get("output_config", {}), "effort": step.effort}
    ttl = cache_ttl(step.cache)
    if ttl:
        extras["cache_control"] = _cache_control(ttl)
    return extras


def thinking_param(thinking: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``thinking:`` as the API's parameter: true is adaptive; a budget is manual; none or false sends none."""
    if not thinking:
        return None
    if thinking is True:
        return {"type": "adaptive"}
    if "budget_tokens" in thinking:
        return {"type": "enabled", "budget_tokens": thinking["budget_tokens"]}
    return {"type": "adaptive", **({"display": thinking["display"]} if "display" in thinking else {})}


def step_cache_ttl(step: StepSpec) -> str | None:
    """The TTL a step caches with: its own ``cache:``, else its system's, else its first attachment's."""
    raw = step.attachments.raw if step.attachments is not None else ()
    marks = [step.cache, step.system_cache, *(item.get("cache") for item in raw if isinstance(item, Mapping))]
    return next((ttl for ttl in map(cache_ttl, marks) if ttl), None)


def cache_ttl(cache: bool | str | None) -> str | None:
    """``cache:`` as a TTL: true is the API's default, 5 minutes."""
    if cache is True:
        return "5m"
    return cache if cache in CACHE_TTLS else None
