"""Running steps on the worker thread: render, call, retry, and report events.

Nothing here touches handlers or displays: every event goes to ``emit``, which the
engine's main thread drains. Failures are collected as values on the StepResult.
"""

from __future__ import annotations

import threading
import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .llm import Cancelled, CancelToken, LLMRequest, LLMResult, Provider, ProviderError
from .results import ErrorInfo, PipelineRun, StepResult
from .spec import PipelineSpec, StepSpec
from .streaming.events import DELTA, DONE, RETRY, STEP_END, STEP_START, Chunk, Event, Response, RetryInfo
from .templates import STEPS, TemplateProblem

EmitEvent = Callable[[Event], None]


@dataclass(frozen=True)
class ResolvedStep:
    """A step with its provider, model and stream flag settled."""

    spec: StepSpec
    provider: Provider
    provider_name: str
    model: str
    max_tokens: int
    stream: bool


class KeyedTemplateProblem(Exception):
    """A template of step key ``key`` failed to render."""

    def __init__(self, key: str, problem: TemplateProblem) -> None:
        super().__init__(str(problem))
        self.key, self.problem = key, problem


class Executor:
    """Runs a pipeline's steps in order; one instance per run."""

    def __init__(
        self,
        spec: PipelineSpec,
        run: PipelineRun,
        steps: Mapping[str, ResolvedStep],
        context: Mapping[str, Any],
        emit: EmitEvent,
        cancel: CancelToken,
    ) -> None:
        self.spec, self.run, self.steps = spec, run, steps
        self.context = ChainMap({STEPS: run.steps}, context)
        self.emit, self.cancel = emit, cancel
        self.received: list[str] = []
        """The text the running attempt has received so far."""

    def run_all(self) -> None:
        failed: list[str] = []
        for step in self.spec.steps:
            if self.cancel.cancelled:
                return
            result = self.run.steps[step.id]
            blockers = [s for s in self._uses(step) if self.run.steps[s].status != "ok"]
            if failed and not (step.continue_on_error and not blockers):
                result.status, result.note = "skipped", f"skipped: step {failed[0]!r} failed"
                self.emit(Event(STEP_END, result))
                continue
            self.run_step(self.steps[step.id], result)
            if result.status == "interrupted":
                return
            if result.status == "error":
                failed.append(step.id)

    def _uses(self, step: StepSpec) -> list[str]:
        return [ref for t in (step.prompt, step.system) if t for ref in t.step_refs]

    def run_step(self, resolved: ResolvedStep, result: StepResult) -> None:
        """Run one llm step, with retries, and leave its outcome on ``result``."""
        step = resolved.spec
        started = time.monotonic()
        result.status, result.model = "running", resolved.model
        self.emit(Event(STEP_START, result))
        token = CancelToken()
        unlink = self.cancel.on_cancel(token.cancel)
        timer = threading.Timer(step.timeout, token.cancel) if step.timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            request = self._request(resolved)
            self._attempts(resolved, request, result, token, started)
        except KeyedTemplateProblem as exc:
            where = step.where(exc.key, exc.problem.line)
            _fail(result, "template_error", f"{exc.problem}" + (f" (at {where})" if where else ""))
        except Exception as exc:  # a bug must not lose the run: report it on the step
            _fail(result, type(exc).__name__, str(exc))
        finally:
            if timer:
                timer.cancel()
            unlink()
            result.duration = time.monotonic() - started
            self.emit(Event(STEP_END, result))

    def _request(self, resolved: ResolvedStep) -> LLMRequest:
        step = resolved.spec
        assert step.prompt is not None
        options = {k: getattr(step, k) for k in ("mock_response", "mock_delay", "read_timeout")}
        return LLMRequest(
            provider=resolved.provider_name,
            model=resolved.model,
            messages=({"role": "user", "content": self._render(step, "prompt")},),
            max_tokens=resolved.max_tokens,
            system=self._render(step, "system") if step.system else None,
            stop_sequences=step.stop_sequences,
            stream=resolved.stream,
            base_url=step.base_url,
            options={k: v for k, v in options.items() if v is not None},
        )

    def _render(self, step: StepSpec, key: str) -> str:
        try:
            return getattr(step, key).render(self.context)
        except TemplateProblem as exc:
            raise KeyedTemplateProblem(key, exc) from None

    def _attempts(
        self, resolved: ResolvedStep, request: LLMRequest, result: StepResult, token: CancelToken, started: float
    ) -> None:
        step, emit = resolved.spec, self.emit
        step_id = step.id
        for attempt in range(1, step.retries + 2):
            result.attempts = attempt
            parts: list[str] = []
            self.received = parts
            append = parts.append

            def on_delta(text: str, _attempt: int = attempt) -> None:
                append(text)
                emit(Event(DELTA, Chunk(step_id, _attempt, len(parts), text)))

            try:
                answer = resolved.provider.complete(request, on_delta, token)
            except Cancelled:
                result.text = "".join(parts)
                self._stopped(step, result)
                return
            except ProviderError as exc:
                result.text = "".join(parts)
                if not exc.retryable or attempt > step.retries:
                    gave_up = f"; gave up after {attempt} attempts" if attempt > 1 else ""
                    _fail(result, exc.type, exc.message + gave_up, exc.request_id)
                    return
                delay = _backoff(step, exc, attempt)
                if step.timeout and time.monotonic() + delay - started > step.timeout:
                    _fail(result, exc.type, f"{exc.message}; not retried: the step's timeout of "
                          f"{step.timeout:g} s would pass first", exc.request_id)
                    return
                result.text, result.note = "", f"retry {attempt}/{step.retries} after {exc.type}"
                emit(Event(RETRY, RetryInfo(step_id, attempt, step.retries, exc.type, delay)))
                if token.wait(delay):
                    self._stopped(step, result)
                    return
                continue
            self._succeed(result, answer, attempt)
            emit(Event(DONE, Response(step_id, attempt, answer.text, answer.usage, answer.stop_reason,
                                      answer.model, answer.request_id, result.output)))
            return

    def _stopped(self, step: StepSpec, result: StepResult) -> None:
        """The step's token fired: the run was interrupted, or the step timed out."""
        if self.cancel.cancelled:
            interrupted(result)
        else:
            _fail(result, "timeout", f"the step took longer than its timeout of {step.timeout:g} s")

    @staticmethod
    def _succeed(result: StepResult, answer: LLMResult, attempt: int) -> None:
        result.text = answer.text
        result.output = answer.text
        result.usage = answer.usage
        result.stop_reason = answer.stop_reason
        result.model = answer.model or result.model
        result.status = "ok"
        result.note = f"ok after {attempt} attempts" if attempt > 1 else ""


def interrupted(result: StepResult) -> None:
    """Mark ``result`` interrupted; its text so far is kept."""
    result.status = "interrupted"
    result.note = f"interrupted: the {len(result.text)} characters received before it are kept"


def _backoff(step: StepSpec, exc: ProviderError, attempt: int) -> float:
    """Seconds before the next attempt: the server's ``retry-after`` (capped), else exponential backoff."""
    if exc.retry_after is not None:
        return min(exc.retry_after, step.retry_after_cap)
    base, cap = step.retry_backoff
    return min(cap, base * 2 ** (attempt - 1))


def _fail(result: StepResult, kind: str, message: str, request_id: str | None = None) -> None:
    result.status = "error"
    result.error = ErrorInfo(kind, message, request_id)

