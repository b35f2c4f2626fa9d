"""A run's budget (``max_cost:`` in ``defaults``, USD): no call starts that could take the run past it.

Before a call goes out, :meth:`Budget.reserve` takes its worst case: the input, estimated on the
spot (``_rough_tokens``: characters / 4, never a network call), priced at the cache-write rate
when the request marks a cache breakpoint, plus all of ``max_tokens`` as output, at the model's
price in ``defaults.pricing``. A call whose worst case would take spent + in flight past
``max_cost`` is refused (:class:`BudgetExceeded`) and never sent. When it ends,
:meth:`Budget.settle` replaces the reservation by what the reply's usage says it cost.

The guarantee is as good as the input estimate: text that tokenizes denser than 4 characters a
token (code, numbers, non-Latin scripts) can cost a little more than reserved; the next call then
sees the true spend. Web searches (USD per 1,000) are settled when they happen but not reserved.

A model with no price cannot be budgeted: :func:`require_price` refuses such a step before the
run, and :meth:`Budget.reserve` refuses a call to one (a ``--model`` override, a ``ctx.invoke``)
at run time. :class:`BudgetProvider` puts a provider behind a budget, as CassetteProvider puts
one behind a cassette. It goes outside the cassette, so that a reply replayed from a cassette
counts as it did when it was recorded (a replay stops where the recording did), and inside a
resume, so that a reply reused from an earlier run costs nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import PipelineSpecError
from ._batch_step import BATCH_DISCOUNT
from ._llm import (TEXT, THINKING, TOOL_INPUT, BatchOutcome, BatchProvider, BatchStatus, CancelToken, Emit,
                   LLMRequest, Provider, ProviderError)
from ._llm_call import cost
from ._rough_tokens import CHARS_PER_TOKEN, rough_input_tokens
from ._spec import StepSpec
from .content import Reply, Usage

Pricing = Mapping[str, Mapping[str, float]]


class BudgetExceeded(Exception):
    """A call was refused: its worst case would take spent + in flight past ``max_cost`` (USD)."""

    def __init__(self, spent: float, in_flight: float, worst: float, max_cost: float) -> None:
        self.spent, self.in_flight, self.worst, self.max_cost = spent, in_flight, worst, max_cost
        super().__init__(
            f"not started: this call could cost up to {usd(worst)}, and with {usd(spent)} spent and "
            f"{usd(in_flight)} in flight that passes max_cost {usd(max_cost)}; raise max_cost: in defaults "
            "(or lower max_tokens, which sets the worst case) to go on")


class UnpricedModel(Exception):
    """A call to a model that ``defaults.pricing`` does not price: it cannot be budgeted."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"not started: model {model!r} has no price in defaults.pricing, so a call to it cannot "
                         f"be kept within max_cost; add {_pricing_example(model)} to defaults, or remove max_cost")


@dataclass(frozen=True)
class Reservation:
    """One call's hold on the budget, until :meth:`Budget.settle` replaces it by its cost."""

    model: str
    worst: float
    """USD: the input estimate plus ``max_tokens`` of output."""
    input_tokens: int
    """The input estimate the worst case was priced with."""
    discount: float = 1.0
    cache_ttl: str | None = None


class Budget:
    """``max_cost`` USD for one run, shared by every step and thread. ``spent`` is what settled
    calls cost; ``in_flight`` the worst cases of the calls still running."""

    def __init__(self, max_cost: float, pricing: Pricing) -> None:
        if not (isinstance(max_cost, (int, float)) and math.isfinite(max_cost) and max_cost > 0):
            raise ValueError(f"max_cost must be a positive number of USD, got {max_cost!r}")
        self.max_cost, self.pricing = float(max_cost), pricing
        self._lock = threading.Lock()
        self._spent = 0.0
        self._in_flight = 0.0

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def in_flight(self) -> float:
        with self._lock:
            return self._in_flight

    def describe(self) -> str:
        """``$0.0123 of $5.00 spent`` (and what is in flight, while calls run), for a view."""
        with self._lock:
            spent, in_flight = self._spent, self._in_flight
        held = f", {usd(in_flight)} in flight" if in_flight > 1e-12 else ""
        return f"{usd(spent)} of {usd(self.max_cost)} spent{held}"

    def reserve(self, request: LLMRequest, discount: float = 1.0) -> Reservation:
        """Hold ``request``'s worst case (times ``discount``: 0.5 in a batch); raise BudgetExceeded
        when it does not fit, UnpricedModel when its model has no price."""
        input_tokens, ttl = rough_input_tokens(request), _cache_ttl(request)
        usage = (Usage(cache_write_tokens=input_tokens, output_tokens=request.max_tokens) if ttl
                 else Usage(input_tokens=input_tokens, output_tokens=request.max_tokens))
        worst = cost(usage, request.model, self.pricing, discount, cache_ttl=ttl)
        if worst is None:
            raise UnpricedModel(request.model)
        with self._lock:
            if self._spent + self._in_flight + worst > self.max_cost + 1e-12:  # float sums must not refuse an exact fit
                raise BudgetExceeded(self._spent, self._in_flight, worst, self.max_cost)
            self._in_flight += worst
        return Reservation(request.model, worst, input_tokens, discount, ttl)

    def settle(self, reservation: Reservation, usage: Usage | None) -> float:
        """Release ``reservation`` and add what the call cost: ``usage`` at its model's price (None:
        nothing was billed). Returns that cost."""
        priced = None if usage is None else cost(usage, reservation.model, self.pricing, reservation.discount,
                                                   cache_ttl=reservation.cache_ttl)
        spent = priced or 0.0
        with self._lock:
            self._in_flight = max(0.0, self._in_flight - reservation.worst)
            self._spent += spent
        return spent


def require_price(pricing: Pricing, step: StepSpec, model: str) -> None:
    """Before the run: with ``max_cost`` set, an llm step's model must have a price."""
    if model not in pricing:
        raise PipelineSpecError(
            f"max_cost is set, but model {model!r} has no price, so its calls cannot be budgeted",
            location=step.where("model"), step_id=step.id,
            hint=f"add {_pricing_example(model)} to defaults (USD per million tokens), or remove max_cost",
        )


class BudgetProvider:
    """Wraps a provider: each call reserves its worst case first and settles its cost after;
    a call that does not fit fails with ``budget_exceeded`` (not retried) and is never sent."""

    def __init__(self, inner: Provider, budget: Budget) -> None:
        self.inner, self.budget = inner, budget
        self.name = inner.name

    def check(self, request: LLMRequest) -> None:
        self.inner.check(request)

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        reservation = self._reserve(request)
        received = [0]  # characters streamed: what a call that breaks off may still be billed for

        def counted(piece: Any, kind: str = TEXT, index: int = 0) -> None:
            if kind in (TEXT, THINKING, TOOL_INPUT):
                received[0] += len(piece)
            emit(piece, kind, index)

        try:
            reply = self.inner.complete(request, counted, cancel)
        except BaseException as exc:
            self.budget.settle(reservation, _billed_after(exc, reservation, received[0]))
            raise
        self.budget.settle(reservation, reply.usage)
        return reply

    def _reserve(self, request: LLMRequest, discount: float = 1.0) -> Reservation:
        try:
            return self.budget.reserve(request, discount)
        except (BudgetExceeded, UnpricedModel) as exc:
            raise ProviderError("budget_exceeded", str(exc), retryable=False) from None

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[BatchOutcome]:
        """Sends as many requests as the budget holds (in order, at the batch discount); the rest
        fail with ``budget_exceeded``."""
        if not isinstance(self.inner, BatchProvider):
            raise ProviderError("batch_unsupported", f"provider {self.name!r} cannot send batches; "
                                "use provider: claude (or mock), or remove batch: true", retryable=False)
        reservations: list[Reservation] = []
        refused: ProviderError | None = None
        for request in requests:
            try:
                reservations.append(self._reserve(request, BATCH_DISCOUNT))
            except ProviderError as exc:
                refused = exc
                break
        sent = list(requests[:len(reservations)])
        try:
            outcomes = self.inner.batch(sent, on_status, cancel, poll_interval) if sent else []
        except BaseException:  # the batch as a whole failed or was cancelled: its items' usage is unknown
            for reservation in reservations:
                self.budget.settle(reservation, None)
            raise
        for reservation, outcome in zip(reservations, outcomes):
            self.budget.settle(reservation, outcome.usage if isinstance(outcome, Reply) else None)
        return [*outcomes, *([refused] * (len(requests) - len(sent)))]  # type: ignore[list-item]


def _billed_after(exc: BaseException, reservation: Reservation, received: int) -> Usage | None:
    """What a call that raised may have been billed: nothing when the API refused it (an HTTP error)
    or it was never sent; else, to be safe, its input and the output streamed so far (it broke off,
    timed out or was stopped, perhaps after the API had started on it)."""
    if isinstance(exc, ProviderError) and (exc.status not in (None, 200) or exc.type in _NEVER_SENT):
        return None
    return Usage(input_tokens=reservation.input_tokens, output_tokens=-(-received // CHARS_PER_TOKEN))


_NEVER_SENT = frozenset({"connection_error", "missing_api_key", "streaming_required", "cassette_miss"})


def _cache_ttl(request: LLMRequest) -> str | None:
    """The longest cache TTL the request marks (its writes cost the most), or None without a breakpoint."""
    marks = [request.params.get("cache_control")]
    system = request.system if isinstance(request.system, tuple) else ()
    tools = request.params.get("tools") or ()
    for block in (*system, *tools, *(b for m in request.messages if isinstance(m["content"], list)
                                     for b in m["content"])):
        if isinstance(block, Mapping):
            marks.append(block.get("cache_control"))
    ttls = [mark.get("ttl", "5m") for mark in marks if isinstance(mark, Mapping)]
    return ("1h" if "1h" in ttls else "5m") if ttls else None


def _pricing_example(model: str) -> str:
    return f"pricing: {{{model}: {{input: <USD>, output: <USD>}}}}"


def usd(amount: float) -> str:
    """Dollars with cents; below a dollar, four decimals, or six below a hundredth of a cent (one call)."""
    if amount >= 1:
        return f"${amount:,.2f}"
    return f"${amount:.4f}" if amount >= 1e-4 or not amount else f"${amount:.6f}"
