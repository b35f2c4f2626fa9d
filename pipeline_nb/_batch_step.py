"""A for_each llm step sent as Message Batches: every item's request in one asynchronous batch."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import _llm_call as llm_call
from ._llm import BatchProvider, BatchStatus, Cancelled, ProviderError
from ._llm_call import fail
from ._request import build_request
from ._results import StepResult
from ._spec import StepSpec
from .streaming._events import DONE, PROGRESS, Event, Response

if TYPE_CHECKING:
    from ._execute import Executor

BATCH_DISCOUNT = 0.5
"""Message Batches cost half the price of interactive calls."""


def run_batch(executor: Executor, step: StepSpec, result: StepResult, items: list[Any], results: list[StepResult],
              context: Mapping[str, Any]) -> None:
    """Send every item's request as Message Batches; progress goes out as the counts move."""
    resolved = replace(executor.resolve(step), stream=False)
    requests, scopes = [], []
    for index, (item_result, item) in enumerate(zip(results, items)):
        scope = executor.item_scope(step, item, index, len(items), context)
        scopes.append(scope)
        requests.append(build_request(resolved, llm_call.render(step, "prompt", scope), scope,
                                      attachments=executor.attachments(step, scope)))
        item_result.status, item_result.model = "running", resolved.model

    def on_status(status: BatchStatus) -> None:
        result.note = status.describe()
        if result.id in executor.run.steps:  # a combination's progress is counted by its step's
            executor.emit(Event(PROGRESS, replace(result)))

    started = time.monotonic()
    try:
        if not isinstance(resolved.provider, BatchProvider):
            raise ProviderError("batch_unsupported", f"provider {resolved.provider_name!r} cannot send batches; "
                                "use provider: claude (or mock), or remove batch: true", retryable=False)
        outcomes = resolved.provider.batch(requests, on_status, executor.cancel, step.batch_poll_interval)
    except Cancelled:
        for item_result in results:
            llm_call.interrupted(item_result)
        return
    except ProviderError as exc:
        outcomes = [exc] * len(requests)
    for item_result, request, outcome, scope in zip(results, requests, outcomes, scopes):
        item_result.attempts, item_result.duration = 1, time.monotonic() - started
        if isinstance(outcome, ProviderError):
            fail(item_result, outcome.type, outcome.message, outcome.request_id)
        else:
            llm_call.succeed(item_result, outcome, 1, request)
            item_result.cost = llm_call.cost(outcome.usage, item_result.model, executor.spec.pricing, BATCH_DISCOUNT)
            executor.emit(Event(DONE, Response(item_result.id, 1, outcome.text, outcome.usage, outcome.stop_reason,
                                               outcome.model, outcome.request_id, item_result.output,
                                               outcome.content)))
        executor.evaluator.evaluate(step, item_result, scope, item_result.duration)
