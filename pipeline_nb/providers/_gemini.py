"""The gemini provider: Google's Gemini API through the google-genai SDK, streamed or not.

The only module that imports ``google.genai``, and only when a call is checked or made, so
pipeline_nb works (and replays gemini cassettes) without it. The SDK's own retries are off
(its default): the engine retries, so handlers see every retry. Errors come out classified
as ProviderError. The HTTP client is one of ours (httpx2, as the claude provider's), so a
cancel can shut its sockets down, which wakes a worker blocked on a read.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import httpx2

from ._http import Sockets
from .._rate_limit import retry_after
from ._gemini_request import Unsupported, count_args, generate_args, refused_key
from .. import _rate_limit as rate_limit
from .._llm import TEXT, THINKING, Cancelled, CancelToken, Emit, LLMRequest, ProviderError
from ..content import Reply, Text, Thinking, Usage

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BASE_URL_ENVS = ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
INSTALL = "pip install 'pipeline_nb[gemini]'"
DEFAULT_TIMEOUT = 600.0
"""Seconds each phase of a request (connect, read, ...) may take without ``read_timeout``."""
MAX_RATE_LIMITED_SENDS = 50
"""As the claude provider's: 429s the rate limiter may absorb before one reaches the step's retries."""

STOP_REASONS = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens", "SAFETY": "refusal", "RECITATION": "refusal",
                "BLOCKLIST": "refusal", "PROHIBITED_CONTENT": "refusal", "SPII": "refusal",
                "IMAGE_SAFETY": "refusal", "IMAGE_PROHIBITED_CONTENT": "refusal", "MODEL_ARMOR": "refusal"}
"""Gemini's ``finishReason`` in the Messages API's words; any other is kept, lower-cased."""

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               503: "overloaded_error", 504: "timeout_error"}
"""This project's error type for each HTTP status Gemini answers with (other 5xx: ``api_error``)."""
_RETRYABLE_STATUS = {408, 429} | set(range(500, 600))
_FIXES = {
    400: "the request was rejected as invalid; check the step's model, max_tokens, output_schema and params",
    401: "the API key was not accepted; check GEMINI_API_KEY",
    403: "this key may not use this model; check GEMINI_API_KEY and the model name",
    404: "not found; check the model name (e.g. gemini-2.5-flash) and base_url",
}


def _sdk() -> Any:
    """``google.genai``, or a ProviderError that says how to install it."""
    try:
        genai = importlib.import_module("google.genai")
    except ImportError:
        raise ProviderError("missing_package", f"provider gemini needs the google-genai package: {INSTALL}",
                            retryable=False) from None
    return genai


def _api_key() -> str | None:
    return next((os.environ[name].strip() for name in KEY_ENVS if os.environ.get(name, "").strip()), None)


class GeminiProvider:
    """Calls ``generateContent`` / ``streamGenerateContent`` through ``google.genai.Client`` (one
    client per endpoint, timeout and key, shared by every provider of the process)."""

    name = "gemini"
    counts_exactly = True
    """``count_tokens`` is the API's own count (the system text counted as a first user turn)."""

    def __init__(self) -> None:
        self._clients, self._sockets = _CLIENTS, _SOCKETS

    def refuse(self, step: Any) -> tuple[str, str] | None:
        """The key of llm step ``step`` this provider cannot honour, and why (None: it can): the engine
        refuses the pipeline with its line:col before any call."""
        return refused_key(step)

    def check(self, request: LLMRequest) -> None:
        _sdk()
        if _api_key() is None:
            raise ProviderError("missing_api_key", "GEMINI_API_KEY (or GOOGLE_API_KEY) is not set; export it "
                                "(or use provider: mock to run offline)", retryable=False)

    def _client(self, request: LLMRequest) -> tuple[Any, str]:
        """The SDK client for ``request``'s endpoint, and that endpoint (for the rate limiter)."""
        genai = _sdk()
        key = _api_key()
        if key is None:
            self.check(request)
        base_url = request.base_url or next((os.environ[n] for n in BASE_URL_ENVS if os.environ.get(n)), None)
        timeout = float(request.options.get("read_timeout") or DEFAULT_TIMEOUT)
        cache_key = (base_url, timeout, hashlib.sha256((key or "").encode()).hexdigest())
        client = self._clients.get(cache_key)
        if client is None:
            http = httpx2.Client(event_hooks={"request": [self._sockets.trace_request]})
            # the SDK passes this timeout (ms) with every request, over the httpx client's own
            options = genai.types.HttpOptions(base_url=base_url, timeout=int(timeout * 1000), httpx_client=http)
            client = self._clients[cache_key] = genai.Client(api_key=key, vertexai=False, http_options=options)
        return client, base_url or "https://generativelanguage.googleapis.com"

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        """Send ``request`` through the process's rate limiter for its endpoint and key, as the
        claude provider does: a 429 the limiter handles is sent again after its pause."""
        genai = _sdk()
        try:
            contents, config = generate_args(request, genai.types.GenerateContentConfig.model_fields)
        except Unsupported as exc:
            raise ProviderError("invalid_request_error", str(exc), retryable=False) from None
        if request.extra_body:  # fields the SDK does not know, merged into the request body as they are
            config["http_options"] = {"extra_body": dict(request.extra_body)}
        client, endpoint = self._client(request)
        limiter = rate_limit.limiter_for(endpoint, _api_key()) if rate_limit.enabled() else None
        unregister = cancel.on_cancel(self._sockets.shutdown)
        try:
            return rate_limit.send_limited(
                limiter, cancel, lambda admitted: _send(client, request, contents, config, emit, cancel, admitted),
                _outcome, MAX_RATE_LIMITED_SENDS)
        finally:
            unregister()

    def count_tokens(self, request: LLMRequest) -> int:
        """The API's count of ``request``'s input tokens (``countTokens``: no model call, no charge)."""
        try:
            contents = count_args(request)
        except Unsupported as exc:
            raise ProviderError("invalid_request_error", str(exc), retryable=False) from None
        client, _ = self._client(request)
        try:
            return client.models.count_tokens(model=request.model, contents=contents).total_tokens or 0
        except Exception as exc:
            raise classify(exc) from None


_CLIENTS: dict[tuple[str | None, float, str], Any] = {}
_SOCKETS = Sockets()


def _send(client: Any, request: LLMRequest, contents: list[dict[str, Any]], config: dict[str, Any], emit: Emit,
          cancel: CancelToken, limiter: rate_limit.RateLimiter | None) -> Reply:
    """One request, streamed or not; its reply's headers (success or error) go to ``limiter``."""
    reader = _Reader(emit if request.stream else None)
    try:
        if request.stream:
            chunks = client.models.generate_content_stream(model=request.model, contents=contents, config=config)
            try:
                reader.read(chunks, limiter)
            finally:
                chunks.close()
        else:
            reader.read([client.models.generate_content(model=request.model, contents=contents, config=config)],
                        limiter)
    except Exception as exc:
        if cancel.cancelled:
            raise Cancelled() from None
        error = classify(exc, reader.response_id)
        if limiter is not None and error.status is not None:
            limiter.observe({"retry-after": str(error.retry_after)} if error.retry_after is not None else {},
                            error.status)
        raise error from None
    if cancel.cancelled:  # a shut-down socket can also end a stream quietly
        raise Cancelled()
    return reader.reply(request.model)


class _Reader:
    """A reply assembled from ``GenerateContentResponse`` chunks (one when not streamed): every
    text part is emitted as it arrives; thought parts (only sent when thoughts are asked for) are
    thinking; the last ``usageMetadata`` and ``finishReason`` win (they are cumulative)."""

    def __init__(self, emit: Emit | None) -> None:
        self.emit = emit
        self.blocks: list[tuple[str, list[str]]] = []
        self.finish: str | None = None
        self.blocked: str | None = None
        self.usage: Any = None
        self.model: str | None = None
        self.response_id: str | None = None

    def read(self, chunks: Iterable[Any], limiter: rate_limit.RateLimiter | None) -> None:
        for number, chunk in enumerate(chunks):
            if number == 0 and limiter is not None and chunk.sdk_http_response is not None:
                limiter.observe(chunk.sdk_http_response.headers or {}, 200)
            self.model = chunk.model_version or self.model
            self.response_id = chunk.response_id or self.response_id
            self.usage = chunk.usage_metadata or self.usage
            feedback = chunk.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                self.blocked = _name(feedback.block_reason)
            if not chunk.candidates:
                continue
            candidate = chunk.candidates[0]
            for part in (candidate.content.parts if candidate.content and candidate.content.parts else ()):
                if part.text:
                    self._piece(THINKING if part.thought else TEXT, part.text)
            if candidate.finish_reason is not None:
                self.finish = _name(candidate.finish_reason)

    def _piece(self, kind: str, text: str) -> None:
        if not self.blocks or self.blocks[-1][0] != kind:
            self.blocks.append((kind, []))
        self.blocks[-1][1].append(text)
        if self.emit is not None:
            self.emit(text, kind, len(self.blocks) - 1)

    def reply(self, model: str) -> Reply:
        if self.blocked is not None and self.finish is None:  # the prompt itself was refused
            self.finish = "SAFETY"
        if self.finish is None:
            raise ProviderError("incomplete_stream", "the stream ended before a finishReason", retryable=True,
                                request_id=self.response_id)
        content = tuple(Thinking("".join(pieces)) if kind == THINKING else Text("".join(pieces))
                        for kind, pieces in self.blocks)
        return Reply(content, usage_of(self.usage), STOP_REASONS.get(self.finish, self.finish.lower()),
                     self.model or model, self.response_id, None, self.response_id)


def _name(value: Any) -> str:
    """An SDK enum (or an unknown value the SDK kept as a string) by its API name."""
    return getattr(value, "value", None) or str(value)


def usage_of(metadata: Any) -> Usage:
    """Gemini's ``usageMetadata`` as Usage: cached prompt tokens are cache reads, the rest input;
    thoughts are billed as output, so they count as output tokens."""
    if metadata is None:
        return Usage()
    cached = metadata.cached_content_token_count or 0
    prompt = (metadata.prompt_token_count or 0) + (metadata.tool_use_prompt_token_count or 0)
    return Usage(input_tokens=max(0, prompt - cached),
                 output_tokens=(metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0),
                 cache_read_tokens=cached)


def classify(exc: Exception, request_id: str | None = None) -> ProviderError:
    """Turn an SDK or transport exception into a ProviderError that says what to do."""
    errors = importlib.import_module("google.genai.errors")
    if isinstance(exc, errors.APIError):
        status = int(exc.code or 0)
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        fix = _FIXES.get(status)
        words = f"{exc.status}: {exc.message}" if exc.status else str(exc.message or exc)
        return ProviderError(kind, f"{words} (HTTP {status}){f'; {fix}' if fix else ''}",
                             retryable=status in _RETRYABLE_STATUS, request_id=request_id,
                             retry_after=_server_delay(exc), status=status)
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError("read_timeout", "the API was silent past the read timeout", retryable=True,
                             request_id=request_id)
    if isinstance(exc, httpx2.ConnectError):
        return ProviderError("connection_error", f"could not reach the Gemini API: {exc}", retryable=True)
    if isinstance(exc, httpx2.TransportError):
        return ProviderError("connection_lost", f"the stream broke off: {type(exc).__name__}", retryable=True,
                             request_id=request_id)
    if isinstance(exc, json.JSONDecodeError):  # a chunk of the stream that is not JSON
        return ProviderError("malformed_stream", f"the stream sent invalid data: {exc}", retryable=True,
                             request_id=request_id)
    return ProviderError(type(exc).__name__, str(exc), retryable=False, request_id=request_id)


def _server_delay(exc: Any) -> float | None:
    """Seconds the API asks to wait: a ``retry-after`` header, else the error's
    ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is not None:
        seconds = retry_after(headers)
        if seconds is not None:
            return seconds
    details = exc.details.get("error", exc.details).get("details") if isinstance(exc.details, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*([\d.]+)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


def _outcome(error: ProviderError) -> str:
    """What a failed call tells the rate limiter (Gemini says overloaded with a 503)."""
    if error.status == 429:
        return rate_limit.RATE_LIMITED
    return rate_limit.OVERLOADED if error.status == 503 else rate_limit.OTHER
