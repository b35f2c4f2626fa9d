"""Counting an estimate's requests: the provider's count_tokens, once per distinct request.

:func:`count_input_tokens` asks the provider behind any wrapper (a cassette, a budget); one with no
count_tokens, or whose count fails, gets 4 characters a token (``_rough_tokens``), flagged. A
:class:`RequestCounter` counts each distinct request once, at most ``EXACT_ITEMS`` a step (the
rest scaled from their length), and asks a provider that failed no more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._cassette import request_key
from ._llm import LLMRequest, Provider, ProviderError, TokenCounter
from ._rough_tokens import rough_input_tokens

EXACT_ITEMS = 50
"""Distinct requests of one step counted by the provider; a for_each of 10,000 items then costs
50 count_tokens calls, and the rest are scaled from their length."""


class Counted(NamedTuple):
    """A request's input tokens and whether the API's own count gave them (not a guess); ``failed``:
    counting failed, as ``note`` says (the provider is not asked again in this estimate)."""

    tokens: int
    exact: bool
    note: str = ""
    failed: bool = False


Count = Callable[[Provider, LLMRequest], Counted]


def count_input_tokens(provider: Provider, request: LLMRequest) -> Counted:
    """``request``'s input tokens from ``provider``'s count_tokens (behind any cassette or budget
    wrapper); 4 characters a token when it has none, or when counting fails."""
    counter = _counter_of(provider)
    if counter is None:
        return Counted(rough_input_tokens(request), False)
    try:
        return Counted(counter.count_tokens(request), counter.counts_exactly)
    except ProviderError as exc:
        return Counted(rough_input_tokens(request), False, f"count_tokens failed ({exc.type}: {exc.message}); "
                       "input estimated at 4 characters a token", failed=True)


def _counter_of(provider: Any) -> TokenCounter | None:
    while not isinstance(provider, TokenCounter) and hasattr(provider, "inner"):  # CassetteProvider, BudgetProvider
        provider = provider.inner
    return provider if isinstance(provider, TokenCounter) else None


@dataclass
class RequestCounter:
    """Counts requests once each, at most ``limit`` a step with the provider, and remembers what failed."""

    count: Count
    limit: int

    def __post_init__(self) -> None:
        self.known: dict[str, Counted] = {}
        self.warnings: list[str] = []
        self._failed: dict[int, Counted] = {}
        """By provider: its failed count, so that a provider with no key is asked once, not per item."""

    def tokens(self, provider: Provider, requests: list[LLMRequest]) -> tuple[int, bool, str]:
        """Total input tokens of ``requests``, whether all were counted exactly, and a note."""
        keys = [request_key(r) for r in requests]
        first = dict(zip(keys, requests))
        fresh = [k for k in first if k not in self.known]
        for key in fresh[:self.limit]:
            failed = self._failed.get(id(provider))
            counted = self.count(provider, first[key]) if failed is None else failed._replace(
                tokens=rough_input_tokens(first[key]))
            if counted.failed and failed is None:  # said once, in the warnings
                self.warnings.append(f"provider {provider.name!r}: {counted.note}")
                counted = self._failed[id(provider)] = counted._replace(note="")
            self.known[key] = counted
        done = [k for k in first if k in self.known]
        scale = (sum(self.known[k].tokens for k in done) / max(1, sum(rough_input_tokens(first[k]) for k in done))
                 if done else 1.0)
        guessed = {k: round(rough_input_tokens(first[k]) * scale) for k in first if k not in self.known}
        total = sum(self.known[k].tokens if k in self.known else guessed[k] for k in keys)
        notes = list(dict.fromkeys(self.known[k].note for k in done if self.known[k].note))
        if guessed:
            notes.append(f"{len(first) - len(guessed):,} of {len(first):,} distinct requests counted, "
                         "the rest scaled by length")
        exact = not guessed and all(self.known[k].exact for k in done)
        return total, exact, "; ".join(notes)
