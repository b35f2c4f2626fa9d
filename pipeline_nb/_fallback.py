"""``fallback_model:``: a call that failed because of its model's service (overloaded, rate-limited,
unavailable, cut off), after every retry, is tried once more with another model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ._llm import CancelToken, LLMRequest
from ._llm_call import ResolvedStep
from ._results import StepResult
from .content import Reply

FALLS_BACK_ON = frozenset({"overloaded_error", "api_error", "rate_limit_error", "not_found_error", "timeout_error",
                           "connection_error", "connection_lost", "incomplete_stream", "malformed_stream",
                           "read_timeout"})
"""Error types a fallback model may help with: the model's service failed, not the request."""

Call = Callable[[ResolvedStep, LLMRequest], "Reply | None"]


def with_fallback(call: Call, resolved: ResolvedStep, request: LLMRequest, result: StepResult,
                  cancel: CancelToken) -> Reply | None:
    """``call(resolved, request)``; if it fails with one of FALLS_BACK_ON and the step has a
    ``fallback_model``, the same request once more to that model (with its own retries). The
    result's note says so; its usage is the call that answered."""
    reply = call(resolved, request)
    fallback = resolved.spec.fallback_model
    if (reply is not None or result.status != "error" or not fallback or fallback == request.model
            or result.error is None or result.error.type not in FALLS_BACK_ON or cancel.cancelled):
        return reply
    first = result.error
    result.status, result.error = "running", None
    reply = call(replace(resolved, model=fallback), replace(request, model=fallback))
    if reply is not None:
        result.note = ", ".join(filter(None, (f"fell back to {fallback} after {first.type}", result.note)))
    elif result.error is not None:  # both failed: say what the first model did too
        result.error = replace(result.error, message=f"{result.error.message} (after {request.model} failed: "
                                                     f"{first.type})")
    return reply
