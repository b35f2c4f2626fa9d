"""The claude provider: the official anthropic SDK, streamed or not.

The only module that imports ``anthropic``. The SDK's own retries are off
(``max_retries=0``): the engine retries, so handlers see every retry and the
``retry-after`` cap applies. Errors come out classified as ProviderError.
A cancel shuts down the provider's sockets, which wakes a worker blocked on a
read (closing a stream from another thread does not).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import anthropic
import httpx2

from ._raw_stream import read_reply
from ..content import Reply, Usage, block_from_api
from .._results import API_ERROR_TYPES
from .. import _rate_limit as rate_limit
from ._http import Sockets
from .._rate_limit import retry_after
from .._llm import BatchOutcome, BatchStatus, Cancelled, CancelToken, Emit, LLMRequest, ProviderError

KEY_ENV = "ANTHROPIC_API_KEY"

_FIXES = {
    400: "the request was rejected as invalid; check the step's model, max_tokens and prompt",
    401: f"the API key was not accepted; check {KEY_ENV}",
    403: f"this key may not use this model or feature; check {KEY_ENV} and the model name",
    404: "not found; check the model name and base_url",
    413: "the request is too large; shorten the prompt or the earlier text it includes",
}
_RETRYABLE_STATUS = {408, 409, 429} | set(range(500, 600))
MAX_RATE_LIMITED_SENDS = 50
"""Sends of one call the rate limiter may absorb (429s, each after its pause) before the 429
reaches the step's retries as a failed attempt: a key that stays limited does not hang a step."""
MAX_BATCH_REQUESTS = 100_000
"""The Message Batches API's limit per batch; larger batches are split."""
COUNT_TOKENS_PARAMS = frozenset(inspect.signature(anthropic.resources.messages.Messages.count_tokens).parameters) - {
    "self", "output_format", "extra_headers", "extra_query", "extra_body", "timeout"}
"""The request parameters ``messages.count_tokens`` takes (read from the SDK's signature): the API
refuses the others (``max_tokens: Extra inputs are not permitted``)."""


class ClaudeProvider:
    """Calls the Messages API through ``anthropic.Anthropic`` (one client per endpoint, timeout and
    key, shared by every provider of the process)."""

    name = "claude"
    counts_exactly = True
    """``count_tokens`` is the API's own count."""

    def __init__(self) -> None:
        # process-wide, so a cell reuses the connections of the one before (no new TCP and TLS
        # handshakes); a cancel shuts their sockets down, which the next request reopens
        self._clients, self._sockets = _CLIENTS, _SOCKETS

    def check(self, request: LLMRequest) -> None:
        if not (os.environ.get(KEY_ENV) or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise ProviderError(
                "missing_api_key",
                f"{KEY_ENV} is not set; export it (or use provider: mock to run offline)",
                retryable=False,
            )

    def _client(self, request: LLMRequest) -> anthropic.Anthropic:
        read_timeout = request.options.get("read_timeout")
        # the SDK reads the key and the endpoint from the environment when the client is made
        credentials = hashlib.sha256("\0".join(os.environ.get(name, "") for name in (
            KEY_ENV, "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")).encode()).hexdigest()
        key = (request.base_url, read_timeout, credentials)
        client = self._clients.get(key)
        if client is None:
            timeout = httpx2.Timeout(600.0, connect=10.0, read=read_timeout) if read_timeout else anthropic.NOT_GIVEN
            http = anthropic.DefaultHttpxClient(event_hooks={"request": [self._sockets.trace_request]})
            client = anthropic.Anthropic(base_url=request.base_url, max_retries=0, timeout=timeout, http_client=http)
            self._clients[key] = client
        return client

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        """Send ``request`` through the process's rate limiter for its endpoint and key: a 429 the
        limiter handles (it pauses every caller until the reset) is sent again after the pause
        without reaching the step's retries, up to ``MAX_RATE_LIMITED_SENDS`` times."""
        client = self._client(request)
        params = _params(request)
        limiter = (rate_limit.limiter_for(str(client.base_url), client.api_key or client.auth_token)
                   if rate_limit.enabled() else None)
        unregister = cancel.on_cancel(self._sockets.shutdown)
        try:
            return rate_limit.send_limited(
                limiter, cancel, lambda admitted: self._send(client, params, request.stream, emit, cancel, admitted),
                _outcome, MAX_RATE_LIMITED_SENDS)
        finally:
            unregister()

    def _send(self, client: anthropic.Anthropic, params: dict[str, Any], stream: bool, emit: Emit,
              cancel: CancelToken, limiter: rate_limit.RateLimiter | None) -> Reply:
        """One request; its reply's headers (success or error) go to ``limiter``."""
        try:
            if stream:
                return _stream(client, params, emit, cancel, limiter)
            raw = client.messages.with_raw_response.create(**params)
            if limiter is not None:
                limiter.observe(raw.headers, raw.status_code)
            message = raw.parse()
            return _reply(message, getattr(message, "_request_id", None) or raw.headers.get("request-id"))
        except ProviderError:
            raise
        except Exception as exc:
            if cancel.cancelled:
                raise Cancelled() from None
            if limiter is not None and isinstance(exc, anthropic.APIStatusError):
                limiter.observe(exc.response.headers, exc.status_code)
            raise classify(exc) from None

    def count_tokens(self, request: LLMRequest) -> int:
        """The API's own count of ``request``'s input tokens (``messages.count_tokens``: no model call,
        no charge). Sent without what count_tokens does not take (``max_tokens``, ``stop_sequences``,
        ``metadata``, ...) and without ``extra_body``, whose fields may be ones only ``create`` knows."""
        params = {k: v for k, v in request.api_params().items() if k in COUNT_TOKENS_PARAMS}
        try:
            return self._client(request).messages.count_tokens(**params).input_tokens
        except Exception as exc:
            raise classify(exc) from None

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[BatchOutcome]:
        """Send ``requests`` as Message Batches (split at 100,000), poll until all end, and
        match the results back by ``custom_id``."""
        batches = self._client(requests[0]).messages.batches
        ids: list[str] = []
        try:
            for start in range(0, len(requests), MAX_BATCH_REQUESTS):
                chunk = requests[start:start + MAX_BATCH_REQUESTS]
                created = batches.create(requests=[{"custom_id": f"item-{start + i}", "params": {**r.api_params(), **(r.extra_body or {})}}
                                                   for i, r in enumerate(chunk)])
                ids.append(created.id)
        except Exception as exc:
            raise classify(exc) from None
        on_status(BatchStatus(processing=len(requests), batch_ids=tuple(ids)))
        return self.attach(requests, ids, on_status, cancel, poll_interval)

    def attach(self, requests: Sequence[LLMRequest], batch_ids: Sequence[str],
               on_status: Callable[[BatchStatus], None], cancel: CancelToken,
               poll_interval: float) -> list[BatchOutcome]:
        """The outcomes of ``requests``, sent earlier as the batches ``batch_ids`` (their custom ids
        ``item-<index>``): poll them until all end, then read their results. A run resumed after its
        kernel died comes back here instead of sending its batches again."""
        batches = self._client(requests[0]).messages.batches
        try:
            _poll(batches, list(batch_ids), on_status, cancel, poll_interval)
            outcomes: list[BatchOutcome | None] = [None] * len(requests)
            for batch_id in batch_ids:
                for entry in batches.results(batch_id):
                    index = int(entry.custom_id.removeprefix("item-"))
                    if index < len(outcomes):
                        outcomes[index] = _batch_outcome(entry.result, batch_id)
        except (ProviderError, Cancelled):
            raise
        except Exception as exc:
            raise classify(exc) from None
        missing = ProviderError("missing_result", "the batch ended without a result for this request",
                                retryable=False)
        return [missing if outcome is None else outcome for outcome in outcomes]


_CLIENTS: dict[tuple[str | None, float | None, str], anthropic.Anthropic] = {}


def _poll(batches: Any, ids: list[str], on_status: Callable[[BatchStatus], None], cancel: CancelToken,
          poll_interval: float) -> None:
    """Retrieve the batches every ``poll_interval`` s until all have ended; cancel them on cancel."""
    failures = 0
    while True:
        try:
            states = [batches.retrieve(batch_id) for batch_id in ids]
            failures = 0
        except Exception as exc:
            error = classify(exc)
            failures += 1
            if not error.retryable or failures > 5:
                raise error from None
        else:
            counts = [state.request_counts for state in states]
            on_status(BatchStatus(*(sum(getattr(c, name) for c in counts) for name in
                                    ("processing", "succeeded", "errored", "canceled", "expired")),
                                  batch_ids=tuple(ids)))
            if all(state.processing_status == "ended" for state in states):
                return
        if cancel.wait(poll_interval):
            for batch_id in ids:
                try:
                    batches.cancel(batch_id)
                except Exception:  # an ended batch cannot be canceled; stopping must not fail
                    pass
            raise Cancelled()


def _batch_outcome(result: Any, batch_id: str) -> BatchOutcome:
    if result.type == "succeeded":
        return _reply(result.message, None)
    if result.type == "errored":
        error = result.error.error
        return ProviderError(error.type, f"{error.message} (in batch {batch_id})", retryable=False)
    if result.type == "expired":
        return ProviderError("expired", f"batch {batch_id} expired (24 h) before this request ran; run it again",
                             retryable=False)
    return ProviderError("canceled", f"batch {batch_id} was canceled before this request ran", retryable=False)


_SOCKETS = Sockets()


def _params(request: LLMRequest) -> dict[str, Any]:
    """The SDK call's keyword arguments: the request's API parameters, and its extra body."""
    params = request.api_params()
    if request.extra_body:
        params["extra_body"] = dict(request.extra_body)
    return params


def _outcome(error: ProviderError) -> str:
    """What a failed call tells the rate limiter."""
    if error.status == 429:
        return rate_limit.RATE_LIMITED
    if error.status == 529 or error.type == "overloaded_error":
        return rate_limit.OVERLOADED
    return rate_limit.OTHER


def _stream(client: anthropic.Anthropic, params: dict[str, Any], emit: Emit, cancel: CancelToken,
            limiter: rate_limit.RateLimiter | None = None) -> Reply:
    """Stream the call, reading the API's raw events (``_raw_stream``): every block delta goes to
    ``emit`` as it arrives. The reply's headers go to ``limiter``."""
    with client.messages.create(stream=True, **params) as stream:
        headers = stream.response.headers
        if limiter is not None:
            limiter.observe(headers, stream.response.status_code)
        request_id = headers.get("request-id")
        try:
            reply, message = read_reply(stream, emit, request_id)
        except Exception as exc:
            if cancel.cancelled:
                raise Cancelled() from None
            raise classify(exc, request_id) from None
        if cancel.cancelled:  # a shut-down socket can also end a stream quietly
            raise Cancelled()
    if reply.stop_reason is None:
        raise ProviderError(
            "incomplete_stream", "the stream ended before message_stop", retryable=True,
            request_id=reply.request_id,
        )
    return replace(reply, cache_miss_reason=_cache_miss(message))


def _reply(message: Any, request_id: str | None) -> Reply:
    return Reply(tuple(block_from_api(block) for block in message.content), Usage.from_api(message.usage),
                 message.stop_reason, message.model, request_id, _cache_miss(message), getattr(message, "id", None))


def _cache_miss(message: Any) -> str | None:
    """Why the prompt cache was missed, in words, when the request asked (``diagnostics``)."""
    reason = getattr(getattr(message, "diagnostics", None), "cache_miss_reason", None)
    if reason is None:
        return None
    missed = getattr(reason, "cache_missed_input_tokens", None)
    words = reason.type.replace("_", " ")
    return f"{words} ({missed} input tokens not read from the cache)" if missed else words


def classify(exc: Exception, request_id: str | None = None) -> ProviderError:
    """Turn an SDK or transport exception into a ProviderError that says what to do.
    ``request_id`` is the id of the stream that broke, for errors that do not carry one."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        kind = exc.type if exc.type in API_ERROR_TYPES else "api_error"
        message = exc.api_message or str(exc)
        if exc.type and kind != exc.type:  # a type the API added since: keep its name in the words
            message = f"{exc.type}: {message}"
        if status == 200:  # an `event: error` in the middle of a stream
            return ProviderError(kind, message, retryable=True, request_id=exc.request_id, status=status)
        fix = _rejected_key(message) if status == 400 else None
        fix = fix or _FIXES.get(status)
        return ProviderError(
            kind,
            f"{message} (HTTP {status}){f'; {fix}' if fix else ''}",
            retryable=status in _RETRYABLE_STATUS,
            request_id=exc.request_id,
            retry_after=retry_after(exc.response.headers),
            status=status,
        )
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError("timeout", "the request timed out", retryable=True, request_id=request_id)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError("connection_error", f"could not reach the API: {exc.message}", retryable=True)
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError("read_timeout", "the stream stalled past the read timeout", retryable=True,
                             request_id=request_id)
    if isinstance(exc, httpx2.TransportError):
        return ProviderError("connection_lost", f"the stream broke off: {type(exc).__name__}", retryable=True,
                             request_id=request_id)
    if isinstance(exc, json.JSONDecodeError):  # from a malformed SSE event
        return ProviderError("malformed_stream", f"the stream sent invalid data: {exc}", retryable=True,
                             request_id=request_id)
    if isinstance(exc, ValueError) and "Streaming is required" in str(exc):  # the SDK refused before sending
        return ProviderError("streaming_required", f"{exc} (set stream: true on the step, or lower max_tokens)",
                             retryable=False)
    if isinstance(exc, TypeError) and "api_key" in str(exc).lower():
        return ProviderError("missing_api_key", f"{KEY_ENV} is not set", retryable=False)
    return ProviderError(type(exc).__name__, str(exc), retryable=False, request_id=request_id)


_PARAM_KEYS = {"thinking": "thinking", "output_config.effort": "effort", "output_config.format": "output_schema",
               "cache_control": "cache", "system": "system", "max_tokens": "max_tokens", "model": "model",
               "stop_sequences": "stop_sequences", "messages": "prompt, attachments or continue"}
"""The step key behind each request parameter a 400 can name (others come from ``params:``)."""


def _rejected_key(message: str) -> str | None:
    """For a 400 that names the parameter it rejects (``thinking.budget_tokens: ...``), which step key to fix."""
    match = re.match(r"\s*([a-z_]+(?:\.[a-z_0-9]+)*)\s*:", message)
    if match is None:
        return None
    path = match[1]
    key = _PARAM_KEYS.get(".".join(path.split(".")[:2])) or _PARAM_KEYS.get(path.split(".")[0])
    if key is None:
        return f"the API rejected the parameter {path!r}: check params: (or extra_body:) on the step"
    return f"the API rejected the step's {key}: check it"
