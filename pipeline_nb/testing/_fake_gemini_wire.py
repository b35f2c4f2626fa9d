"""What :class:`~pipeline_nb.testing._fake_gemini.FakeGemini` says on the wire, as plain data:
its scripts and faults, the checks the real Gemini API makes before answering, and the JSON of
``GenerateContentResponse`` chunks, ``countTokens`` answers and Google's error bodies.

Private: import FakeGemini from ``pipeline_nb.testing``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from ._fake_reply import _WORDS
from .._structured import schema_instance
from ._fake_scripts import Matcher, RecordedRequest, _matches

#: ``/{version}/models/{model}:{method}`` as the SDK builds it (v1 by default, v1beta when asked).
ROUTE = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:?]+):(generateContent|streamGenerateContent|countTokens)$")
#: Fault kinds that only make sense for a streamed response.
STREAM_FAULTS = frozenset({"cut", "stream_error", "stall"})
#: Aliases for ``kind="http"`` with a fixed status.
HTTP_ALIASES = {"rate_limit": 429, "unavailable": 503, "server_error": 500}
#: Google's status name (``error.status``) for each HTTP status, and its usual words.
STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). "
                               "Please use API Key or other form of API consumer identity to call this API."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
#: Top-level fields of a ``generateContent`` request body; any other is a 400, as the real API says.
REQUEST_FIELDS = frozenset({"contents", "systemInstruction", "generationConfig", "safetySettings", "tools",
                            "toolConfig", "cachedContent", "model", "serviceTier", "store"})
@dataclass
class GeminiReply:
    """A scripted reply (see ``FakeGemini.reply``)."""

    text: str
    when: Matcher = None
    times: Optional[int] = None
    delay: float = 0.0
    chunks: Optional[list[str]] = None
    usage: Optional[tuple[int, ...]] = None
    finish_reason: str = "STOP"
    model: Optional[str] = None
    used: int = 0

    def live(self) -> bool:
        return self.times is None or self.used < self.times

    def applies_to(self, req: RecordedRequest) -> bool:
        return _matches(self.when, req)


@dataclass
class GeminiFault:
    """A scripted failure (see ``FakeGemini.fault``)."""

    kind: str
    when: Matcher = None
    times: Optional[int] = 1
    after: int = 2
    status: Optional[int] = None
    message: Optional[str] = None
    retry_after: Union[int, float, None] = None
    stall_seconds: float = 30.0
    used: int = 0

    def live(self) -> bool:
        return self.times is None or self.used < self.times

    def applies_to(self, req: RecordedRequest) -> bool:
        if req.path.split("?", 1)[0].endswith(":countTokens"):  # only a callable `when` may fail a count
            return self.kind == "http" and callable(self.when) and bool(self.when(req))
        if self.kind in STREAM_FAULTS and not req.stream:
            return False
        return _matches(self.when, req)


def make_fault(kind: str, **kw: Any) -> GeminiFault:
    """A :class:`GeminiFault`, its alias resolved and its arguments checked."""
    if kind in HTTP_ALIASES:
        kw["status"] = kw.get("status") or HTTP_ALIASES[kind]
        kind = "http"
    if kind != "http" and kind not in STREAM_FAULTS:
        raise ValueError(f"unknown fault kind {kind!r}; one of http, {', '.join(sorted(HTTP_ALIASES))}, "
                         f"{', '.join(sorted(STREAM_FAULTS))}")
    if kind == "http" and not kw.get("status"):
        raise ValueError('fault("http") needs status=')
    if kind == "stream_error":
        kw["status"] = kw.get("status") or 503
    return GeminiFault(kind, **kw)


def pick(scripts: list[Any], req: RecordedRequest, consume: bool = True) -> Any:
    """The first live script of ``scripts`` that applies to ``req`` (its use counted if ``consume``), or None."""
    for script in scripts:
        if script.live() and script.applies_to(req):
            script.used += consume
            return script
    return None


def texts(body: dict[str, Any]) -> list[str]:
    """Every text part of the request: its system instruction, then each turn's."""
    found = []
    for content in [body.get("systemInstruction"), *(body.get("contents") or [])]:
        if not isinstance(content, dict):
            continue
        for part in content.get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(part["text"])
    return found


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last ``user`` turn (a turn without a role is the user's)."""
    for content in reversed(body.get("contents") or []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return "\n".join(p["text"] for p in content.get("parts") or () if isinstance(p, dict)
                             and isinstance(p.get("text"), str))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's token count of a request's text: a token per 4 characters, plus one."""
    return sum(len(text) // 4 for text in texts(body)) + 1


def problem(body: Any, method: str) -> Optional[str]:
    """Why the real API would answer this body with a 400 ``INVALID_ARGUMENT``, or None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    if method == "countTokens":
        unknown = sorted(set(body) - {"contents", "generateContentRequest"})
    else:
        unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for n, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            return f"* GenerateContentRequest.contents[{n}].role: Please use a valid role: user, model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.contents[{n}].parts: contents.parts must not be empty."
    config = body.get("generationConfig") or {}
    tokens = config.get("maxOutputTokens")
    if tokens is not None and (not isinstance(tokens, int) or tokens < 1):
        return "* GenerateContentRequest.generation_config.max_output_tokens: must be a positive integer."
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if schema is not None and config.get("responseMimeType") != "application/json":
        return ("* GenerateContentRequest.generation_config.response_mime_type: a response schema needs "
                "response_mime_type application/json.")
    return None


def error_json(status: int, message: Optional[str] = None, retry_after: Union[int, float, None] = None) -> dict[str, Any]:
    """Google's error body: ``{"error": {"code", "message", "status", "details"?}}``."""
    name, words = STATUSES.get(status, ("UNKNOWN", "Unknown error."))
    error: dict[str, Any] = {"code": status, "message": message or words, "status": name}
    if retry_after is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
    return {"error": error}


@dataclass
class Planned:
    """What one request is answered with: its text pieces, finish reason, usage and ids."""

    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    output_tokens: int
    thoughts_tokens: int
    model: str
    response_id: str
    delay: float

    def chunk(self, piece: str, last: bool) -> dict[str, Any]:
        """One ``GenerateContentResponse``: a candidate with ``piece``; the last one finishes it."""
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens,
                                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]}
        if last:
            candidate["finishReason"] = self.finish_reason
            usage["candidatesTokenCount"] = self.output_tokens
            if self.thoughts_tokens:
                usage["thoughtsTokenCount"] = self.thoughts_tokens
            usage["totalTokenCount"] = self.prompt_tokens + self.output_tokens + self.thoughts_tokens
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": self.model,
                "responseId": self.response_id}

    def chunks(self) -> list[dict[str, Any]]:
        """The stream's chunks, one per piece (one empty one for an empty reply)."""
        pieces = self.pieces or [""]
        return [self.chunk(piece, n == len(pieces) - 1) for n, piece in enumerate(pieces)]

    def whole(self) -> dict[str, Any]:
        """The answer of ``generateContent``: the whole text in one part."""
        return self.chunk("".join(self.pieces), True)


def _default_text(req: RecordedRequest) -> str:
    """An unscripted reply: ``Fake reply to: <prompt>``, or a JSON value of the request's response
    schema when it asks for one, so a structured step works unscripted."""
    config = req.body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if schema is not None:
        return json.dumps(schema_instance(schema, f"Fake reply to: {req.prompt}"))
    return f"Fake reply to: {req.prompt}"


def plan(reply: Optional[GeminiReply], req: RecordedRequest, model: str, response_id: str) -> Planned:
    """The answer to ``req``: the scripted reply (unscripted: ``"Fake reply to: " + prompt``), cut
    at the first stop sequence (finish ``STOP``) or after ``maxOutputTokens`` pieces (``MAX_TOKENS``)."""
    text = reply.text if reply is not None else _default_text(req)
    pieces = list(reply.chunks) if reply is not None and reply.chunks is not None else _WORDS.findall(text)
    finish = reply.finish_reason if reply is not None else "STOP"
    config = req.body.get("generationConfig") or {}
    for stop in config.get("stopSequences") or ():
        joined = "".join(pieces)
        if stop and stop in joined:
            pieces, finish = _WORDS.findall(joined[:joined.index(stop)]), "STOP"
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and len(pieces) > limit:
        pieces, finish = pieces[:limit], "MAX_TOKENS"
    usage = reply.usage if reply is not None and reply.usage is not None else None
    prompt, output, thoughts = (*usage, 0)[:3] if usage else (prompt_tokens(req.body), len(pieces), 0)
    return Planned(pieces, finish, prompt, output, thoughts, (reply.model if reply and reply.model else model),
                   response_id, reply.delay if reply is not None else 0.0)
