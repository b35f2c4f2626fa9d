"""An LLMRequest as the Gemini API's ``generateContent`` arguments, or why it cannot be one.

Plain dicts, as ``client.models.generate_content(model=, contents=, config=)`` takes them, so
this module needs no SDK: ``messages`` become ``contents`` (``assistant`` is role ``model``),
``system`` is the ``system_instruction``, ``max_tokens`` is ``max_output_tokens``,
``stop_sequences`` stay, ``output_schema`` asks for JSON (``response_mime_type`` and
``response_json_schema``), and ``params:`` may set any other field of the SDK's
``GenerateContentConfig`` (``temperature``, ``top_p``, ``seed``, ...). What Gemini cannot be
asked through this provider (thinking, tools, attachments, citations, caching, effort) is
refused with the step key to remove, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .._llm import LLMRequest

ROLES = {"user": "user", "assistant": "model"}

UNSUPPORTED_PARAMS = {
    "thinking": "thinking", "thinking_config": "thinking",
    "tools": "tools", "tool_choice": "tools", "tool_config": "tools", "automatic_function_calling": "tools",
    "cache_control": "cache", "cached_content": "cache",
    "output_config": "effort",
    "http_options": "params", "should_return_http_response": "params",
}
"""Request parameters this provider refuses, with the step key that sets them."""

IGNORED_PARAMS = frozenset({"diagnostics"})
"""Parameters the engine adds for the Messages API only (cache diagnostics): nothing to send."""

SET_BY_STEP = frozenset({"system_instruction", "max_output_tokens", "stop_sequences"})
"""Config fields the step's own keys set (system, max_tokens, stop_sequences), not ``params:``."""

_BLOCK_KEYS = {"document": "attachments", "image": "attachments", "tool_use": "tools", "tool_result": "tools",
               "server_tool_use": "tools", "thinking": "thinking", "redacted_thinking": "thinking"}


class Unsupported(Exception):
    """The request asks for something the gemini provider cannot send; the message says what to remove."""


def generate_args(request: LLMRequest, config_fields: Collection[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(contents, config)`` for ``request``. ``config_fields`` are the names
    ``GenerateContentConfig`` knows (read from the SDK by the caller). Raises Unsupported."""
    config: dict[str, Any] = {"max_output_tokens": request.max_tokens}
    for name, value in request.params.items():
        if name in IGNORED_PARAMS:
            continue
        if name in UNSUPPORTED_PARAMS:
            raise Unsupported(_refusal(UNSUPPORTED_PARAMS[name], f"the parameter {name}"))
        if name not in config_fields or name in SET_BY_STEP:
            known = ", ".join(f for f in ("temperature", "top_p", "top_k", "seed", "candidate_count",
                                          "presence_penalty", "frequency_penalty") if f in config_fields)
            raise Unsupported(f"params: {name!r} is not a Gemini generation setting; params: takes the "
                              f"fields of google-genai's GenerateContentConfig ({known}, ...)")
        config[name] = value
    system = _system_text(request.system)
    if system:
        config["system_instruction"] = system
    if request.stop_sequences:
        config["stop_sequences"] = list(request.stop_sequences)
    if request.output_schema is not None:
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = request.output_schema
    return [_content(message) for message in request.messages], config


def count_args(request: LLMRequest) -> list[dict[str, Any]]:
    """The ``contents`` whose tokens ``count_tokens`` counts: the Gemini API (not Vertex) takes no
    system instruction there, so the system text is counted as a first user turn."""
    contents = [_content(message) for message in request.messages]
    system = _system_text(request.system)
    return ([{"role": "user", "parts": [{"text": system}]}] if system else []) + contents


def _system_text(system: str | tuple[dict[str, Any], ...] | None) -> str | None:
    if not system or isinstance(system, str):
        return system or None
    if any("cache_control" in block for block in system):
        raise Unsupported(_refusal("system_cache", "a cache_control mark"))
    return "\n\n".join(block.get("text", "") for block in system)


def _content(message: Mapping[str, Any]) -> dict[str, Any]:
    role = ROLES.get(message.get("role", ""))
    if role is None:
        raise Unsupported(f"a message has the role {message.get('role')!r}; Gemini takes user and assistant turns")
    content = message.get("content")
    if isinstance(content, str):
        return {"role": role, "parts": [{"text": content}]}
    parts = []
    for block in content or ():
        kind = block.get("type")
        if kind != "text":
            raise Unsupported(_refusal(_BLOCK_KEYS.get(kind, "prompt"), f"{kind} blocks"))
        if "cache_control" in block:
            raise Unsupported(_refusal("cache", "a cache_control mark"))
        parts.append({"text": block["text"]})  # citations of an earlier reply are not sent back
    return {"role": role, "parts": parts}


def _refusal(step_key: str, what: str) -> str:
    sent_as = f" (sent as {what})" if what != step_key else ""
    return (f"provider gemini does not support the step's {step_key}{sent_as}; "
            f"remove {step_key}: from the step, or use provider: claude")


REFUSED_STEP_KEYS = ("thinking", "effort", "tools", "attachments", "cache", "system")
"""Step keys whose use this provider refuses when the pipeline is read (``system`` only when cached)."""


def refused_key(step: Any) -> tuple[str, str] | None:
    """The first key of llm step ``step`` the gemini provider cannot honour, and why; None if none.
    Found when the pipeline is read, so the error points at the key, before any call."""
    used = {"thinking": step.thinking is not None and step.thinking is not False, "effort": step.effort is not None,
            "tools": bool(step.tools), "attachments": step.attachments is not None,
            "cache": bool(step.cache), "system": bool(step.system_cache)}
    for key in REFUSED_STEP_KEYS:
        if used[key]:
            what = "a cache_control mark" if key == "system" else key
            return key, _refusal("system cache" if key == "system" else key, what)
    return None
