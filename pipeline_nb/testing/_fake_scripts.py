"""Scripts, faults, request records and error bodies for :mod:`pipeline_nb.testing._fake_anthropic`.

Private: import the public names from ``fake_anthropic``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ._fake_content import Attachment, attachments, tool_result_text, tool_results
from ._fake_tools import ServerCall, ToolCall

Matcher = Union[None, str, Callable[["RecordedRequest"], bool]]

#: Fault kinds that only make sense for a streamed response.
STREAM_FAULTS = frozenset({"overloaded", "cut", "close", "stall", "malformed"})
#: Fault kinds that only apply to an item of a Message Batch: its result has this type.
BATCH_FAULTS = frozenset({"expired", "canceled"})
#: Where Message Batches are created (and, under it, retrieved, canceled and read).
BATCHES_PATH = "/v1/messages/batches"
#: Where input tokens are counted (``messages.count_tokens``).
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
#: Aliases for ``kind="http"`` with a fixed status.
HTTP_ALIASES = {"rate_limit": 429, "overloaded_http": 529, "server_error": 500}
#: The ``error.type`` the real API uses for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_DEFAULT_MESSAGES = {
    400: "Invalid request",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    529: "Overloaded",
}
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "proxy-authorization"})


@dataclass
class RecordedRequest:
    """One request the fake received. ``headers`` keys are lower-case; secrets are ``"<redacted>"``.

    An item of a Message Batch is recorded like a non-streamed ``POST /v1/messages`` whose
    ``body`` is the item's ``params`` (headers: the batch's), with ``batch_id`` and
    ``custom_id`` set; both are None for every other request.

    ``documents`` and ``images`` are the request's ``document`` and ``image`` blocks (of
    every message, in order), read from ``body``: media type, decoded size, title, whether
    citations are enabled, ``cache_control``; ``images`` includes those a ``tool_result``
    returns. ``prompt`` is only the text blocks of the last user message; ``tool_results``
    are its ``tool_result`` blocks (as sent), and ``tools`` the request's ``tools``.
    """

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    prompt: str = ""
    stream: bool = False
    batch_id: Optional[str] = None
    custom_id: Optional[str] = None
    documents: list[Attachment] = field(init=False, repr=False)
    images: list[Attachment] = field(init=False, repr=False)
    tool_results: list[dict[str, Any]] = field(init=False, repr=False)
    tools: list[dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        found = attachments(self.body)
        self.documents = [a for a in found if a.kind == "document"]
        self.images = [a for a in found if a.kind == "image"]
        self.tool_results = tool_results(self.body)
        tools = self.body.get("tools")
        self.tools = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def redact(headers: dict[str, str]) -> dict[str, str]:
    """Lower-case header names and hide credential values."""
    return {k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def _matches(when: Matcher, req: RecordedRequest) -> bool:
    if when is None:
        return True
    if isinstance(when, str):  # the prompt, or what a tool returned in the same turn
        return when in req.prompt or any(when in tool_result_text(b) for b in req.tool_results)
    return bool(when(req))


@dataclass
class Reply:
    """A scripted reply (see ``FakeAnthropic.reply``)."""

    text: str
    when: Matcher = None
    times: Optional[int] = None
    delay: float = 0.0
    chunks: Optional[list[str]] = None
    usage: Optional[tuple[int, int]] = None
    stop_reason: str = "end_turn"
    model: Optional[str] = None
    thinking: Optional[str] = None
    signature: Optional[str] = None
    cite: tuple[tuple[str, str], ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    server_tools: tuple[ServerCall, ...] = ()
    used: int = 0

    def live(self) -> bool:
        return self.times is None or self.used < self.times


#: What ``reply(cite=...)`` takes: a quote, or a list of quotes and ``(span, quote)`` pairs.
CiteArg = Union[None, str, Sequence[Union[str, tuple[str, str]]]]


def make_cites(cite: CiteArg, text: str) -> tuple[tuple[str, str], ...]:
    """``cite`` as ``(span, quote)`` pairs, each span checked to be part of ``text``."""
    if cite is None:
        return ()
    items = [cite] if isinstance(cite, str) else list(cite)
    pairs: list[tuple[str, str]] = []
    for item in items:
        pair = (item, item) if isinstance(item, str) else tuple(item)
        if len(pair) != 2 or not all(isinstance(p, str) and p for p in pair):
            msg = f"cite= takes quotes and (span, quote) pairs of non-empty strings, got {item!r}"
            raise ValueError(msg)
        if pair[0] not in text:
            msg = (f"cite: {pair[0]!r} is not in the reply text {text!r}; give (span, quote) to cite "
                   "a quote the reply does not contain")
            raise ValueError(msg)
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


@dataclass
class Fault:
    """A scripted failure (see ``FakeAnthropic.fault``)."""

    kind: str
    when: Matcher = None
    times: Optional[int] = 1
    after: int = 2
    status: Optional[int] = None
    retry_after: Union[int, float, str, None] = None
    error_type: Optional[str] = None
    message: Optional[str] = None
    stall_seconds: float = 30.0
    used: int = 0

    def live(self) -> bool:
        return self.times is None or self.used < self.times

    def applies_to(self, req: RecordedRequest) -> bool:
        if req.method == "POST" and req.path.split("?", 1)[0] in (BATCHES_PATH, COUNT_TOKENS_PATH):
            # Creating a batch or counting tokens: only an http fault with a callable `when` can
            # refuse it, so None and substrings keep meaning "the message requests".
            return self.kind == "http" and callable(self.when) and bool(self.when(req))
        if (self.kind in STREAM_FAULTS and not req.stream) or (self.kind in BATCH_FAULTS and req.batch_id is None):
            return False
        return _matches(self.when, req)


def make_fault(kind: str, **kw: Any) -> Fault:
    """Build a :class:`Fault`, resolving aliases and checking arguments."""
    if kind in HTTP_ALIASES:
        kw["status"] = kw.get("status") or HTTP_ALIASES[kind]
        kind = "http"
    if kind != "http" and kind not in STREAM_FAULTS | BATCH_FAULTS:
        raise ValueError(f"unknown fault kind {kind!r}")
    if kind == "http" and not kw.get("status"):
        raise ValueError('fault("http") needs status=')
    return Fault(kind, **kw)


def pick(scripts: list, req: RecordedRequest, consume: bool) -> Any:
    """First live script in ``scripts`` matching ``req`` (counting a use if ``consume``), or None."""
    for s in scripts:
        ok = s.applies_to(req) if isinstance(s, Fault) else _matches(s.when, req)
        if s.live() and ok:
            if consume:
                s.used += 1
            return s
    return None


def error_obj(status: int, error_type: Optional[str], message: Optional[str]) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}`` as the real API says it for ``status``."""
    etype = error_type or ERROR_TYPES.get(status, "api_error")
    msg = message or _DEFAULT_MESSAGES.get(status, "Error")
    return {"type": "error", "error": {"type": etype, "message": msg}}


def error_body(status: int, error_type: Optional[str], message: Optional[str], request_id: str) -> bytes:
    """The JSON body the real API sends with an error status."""
    return json.dumps({**error_obj(status, error_type, message), "request_id": request_id}).encode()
