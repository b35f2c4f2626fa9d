"""What a conversation with Claude is made of: content blocks, their usage, and a finished reply.

A block is one piece of a message: :class:`Text` (with the :class:`Citation` s that back it),
:class:`Thinking` (with its signature, which must go back to the API unchanged),
:class:`ToolUse` and :class:`ToolResult` (the tool loop), :class:`Document` and :class:`Image`
(attachments). Each block's ``to_api()`` is the Messages API's own dict, and
:func:`block_from_api` reads any of them back, so the SDK call, the cassette and the run's
results share one vocabulary. A :class:`Reply` is a finished call; its ``.text`` is derived
from its text blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union

__all__ = [
    "Block", "Citation", "Document", "Image", "RedactedThinking", "Reply", "ServerToolResult", "ServerToolUse",
    "Text", "Thinking", "ToolResult", "ToolUse", "Usage", "citations_of", "text_of", "thinking_of"]

_RANGES = {
    "char_location": ("start_char_index", "end_char_index"),
    "page_location": ("start_page_number", "end_page_number"),
    "content_block_location": ("start_block_index", "end_block_index"),
    "search_result_location": ("start_block_index", "end_block_index"),
}



_SERVER_COUNTS = ("web_search_requests", "web_fetch_requests")


@dataclass(frozen=True, repr=False)
class Usage:
    """Token counts of one call, a step, or a whole run. Cache writes and reads are input tokens
    billed at their own rates; ``input_tokens`` counts only the uncached rest. Server tools
    (web search, web fetch) are billed per request."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    web_search_requests: int = 0
    web_fetch_requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                     self.cache_write_tokens + other.cache_write_tokens,
                     self.cache_read_tokens + other.cache_read_tokens,
                     self.web_search_requests + other.web_search_requests,
                     self.web_fetch_requests + other.web_fetch_requests)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __repr__(self) -> str:  # the server tool counts only when there are some
        counts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                  if f.name not in _SERVER_COUNTS or getattr(self, f.name)]
        return f"Usage({', '.join(counts)})"

    def to_api(self) -> dict[str, Any]:
        usage: dict[str, Any] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cache_write_tokens or self.cache_read_tokens:
            usage.update(cache_creation_input_tokens=self.cache_write_tokens,
                         cache_read_input_tokens=self.cache_read_tokens)
        if self.web_search_requests or self.web_fetch_requests:
            usage["server_tool_use"] = {"web_search_requests": self.web_search_requests,
                                        "web_fetch_requests": self.web_fetch_requests}
        return usage

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """From the SDK's Usage object or the API's dict (missing counts are 0)."""
        get = usage.get if isinstance(usage, Mapping) else lambda name: getattr(usage, name, None)
        server = get("server_tool_use") or {}
        count = server.get if isinstance(server, Mapping) else lambda name: getattr(server, name, None)
        return cls(get("input_tokens") or 0, get("output_tokens") or 0,
                   get("cache_creation_input_tokens") or 0, get("cache_read_input_tokens") or 0,
                   count("web_search_requests") or 0, count("web_fetch_requests") or 0)


@dataclass(frozen=True)
class Citation:
    """A passage of an attached document that backs a piece of the answer.

    ``location`` is the API's kind (``char_location`` for text, ``page_location`` for a PDF);
    ``start``/``end`` are its range: characters, pages (1-based, end exclusive) or blocks."""

    cited_text: str
    document_index: int
    document_title: str | None = None
    location: str = "char_location"
    start: int | None = None
    end: int | None = None

    def to_api(self) -> dict[str, Any]:
        cited: dict[str, Any] = {"type": self.location, "cited_text": self.cited_text,
                                 "document_index": self.document_index, "document_title": self.document_title}
        if self.location in _RANGES:
            first, last = _RANGES[self.location]
            cited.update({first: self.start, last: self.end})
        return cited

    @classmethod
    def from_api(cls, cited: Any) -> Citation:
        data = _as_dict(cited)
        first, last = _RANGES.get(data.get("type", ""), ("", ""))
        return cls(data.get("cited_text", ""), data.get("document_index", 0), data.get("document_title"),
                   data.get("type", "char_location"), data.get(first), data.get(last))


@dataclass(frozen=True)
class Text:
    type: ClassVar[str] = "text"
    text: str
    citations: tuple[Citation, ...] = ()

    def to_api(self) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "text", "text": self.text}
        if self.citations:
            block["citations"] = [c.to_api() for c in self.citations]
        return block


@dataclass(frozen=True)
class Thinking:
    """Claude's reasoning before its answer; sent back in a later turn, it must keep its signature."""

    type: ClassVar[str] = "thinking"
    thinking: str
    signature: str = ""

    def to_api(self) -> dict[str, Any]:
        return {"type": "thinking", "thinking": self.thinking, "signature": self.signature}


@dataclass(frozen=True)
class RedactedThinking:
    """Reasoning the API returned encrypted: kept only to be sent back."""

    type: ClassVar[str] = "redacted_thinking"
    data: str

    def to_api(self) -> dict[str, Any]:
        return {"type": "redacted_thinking", "data": self.data}


@dataclass(frozen=True)
class ToolUse:
    type: ClassVar[str] = "tool_use"
    id: str
    name: str
    input: Mapping[str, Any] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        return {"type": "tool_use", "id": self.id, "name": self.name, "input": dict(self.input)}


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer to a :class:`ToolUse`: text, or a tuple of :class:`Text` and :class:`Image`
    blocks (a figure, say), which the API receives as its list of blocks."""

    type: ClassVar[str] = "tool_result"
    tool_use_id: str
    content: str | tuple[Block, ...] = ""
    is_error: bool = False

    def to_api(self) -> dict[str, Any]:
        blocks = isinstance(self.content, (tuple, list))
        content = [b.to_api() for b in self.content] if blocks else self.content
        return {"type": "tool_result", "tool_use_id": self.tool_use_id, "content": content,
                "is_error": self.is_error}


@dataclass(frozen=True)
class Document:
    """An attached document: a PDF (``data`` in base64) or plain text (``data`` as is)."""

    type: ClassVar[str] = "document"
    media_type: str
    data: str
    title: str | None = None
    citations: bool = False
    cache: str | None = None
    """The cache TTL (``5m`` or ``1h``) when this block is marked for caching."""

    def to_api(self) -> dict[str, Any]:
        kind = "text" if self.media_type == "text/plain" else "base64"
        block: dict[str, Any] = {"type": "document",
                                 "source": {"type": kind, "media_type": self.media_type, "data": self.data}}
        if self.title:
            block["title"] = self.title
        if self.citations:
            block["citations"] = {"enabled": True}
        return _cached(block, self.cache)


@dataclass(frozen=True)
class Image:
    type: ClassVar[str] = "image"
    media_type: str
    data: str
    """Base64."""
    cache: str | None = None

    def to_api(self) -> dict[str, Any]:
        block = {"type": "image", "source": {"type": "base64", "media_type": self.media_type, "data": self.data}}
        return _cached(block, self.cache)


@dataclass(frozen=True)
class ServerToolUse:
    """A call of a tool the API runs itself (``web_search``, ``web_fetch``, ``code_execution``)."""

    type: ClassVar[str] = "server_tool_use"
    id: str
    name: str
    input: Mapping[str, Any] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        return {"type": "server_tool_use", "id": self.id, "name": self.name, "input": dict(self.input)}


@dataclass(frozen=True)
class ServerToolResult:
    """What a server tool returned (``web_search_tool_result``, ...): kept as the API sent it, since
    it goes back unchanged in a later turn (search results carry encrypted content)."""

    kind: str
    """The API's block type, e.g. ``web_search_tool_result``."""
    tool_use_id: str
    content: Any = None

    @property
    def type(self) -> str:  # type: ignore[override]
        return self.kind

    def to_api(self) -> dict[str, Any]:
        return {"type": self.kind, "tool_use_id": self.tool_use_id, "content": self.content}


SERVER_RESULT_TYPES = frozenset({"web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
                                 "bash_code_execution_tool_result", "text_editor_code_execution_tool_result"})

Block = Union[Text, Thinking, RedactedThinking, ToolUse, ToolResult, ServerToolUse, ServerToolResult, Document,
              Image]


def block_from_api(block: Any) -> Block:
    """A block from the SDK's object or the API's dict; an unknown kind raises ValueError."""
    data = _as_dict(block)
    kind = data.get("type")
    if kind == "text":
        return Text(data.get("text", ""), tuple(Citation.from_api(c) for c in data.get("citations") or ()))
    if kind == "thinking":
        return Thinking(data.get("thinking", ""), data.get("signature", ""))
    if kind == "redacted_thinking":
        return RedactedThinking(data.get("data", ""))
    if kind == "tool_use":
        return ToolUse(data["id"], data["name"], data.get("input") or {})
    if kind == "tool_result":
        content = data.get("content", "")
        if isinstance(content, (list, tuple)):  # blocks (text, images) rather than a string
            content = tuple(block_from_api(b) for b in content)
        return ToolResult(data["tool_use_id"], content, bool(data.get("is_error")))
    if kind == "server_tool_use":
        return ServerToolUse(data["id"], data["name"], data.get("input") or {})
    if kind in SERVER_RESULT_TYPES:
        return ServerToolResult(kind, data["tool_use_id"], data.get("content"))
    source = data.get("source") or {}
    ttl = (data.get("cache_control") or {}).get("ttl", "5m") if data.get("cache_control") else None
    if kind == "document":
        return Document(source.get("media_type", "text/plain"), source.get("data", ""), data.get("title"),
                        bool((data.get("citations") or {}).get("enabled")), ttl)
    if kind == "image":
        return Image(source.get("media_type", ""), source.get("data", ""), ttl)
    raise ValueError(f"unknown content block type {kind!r}")


def text_of(blocks: Iterable[Block]) -> str:
    """The answer: the text blocks joined."""
    return "".join(b.text for b in blocks if isinstance(b, Text))


def thinking_of(blocks: Iterable[Block]) -> str:
    """Claude's thinking before its answer: the thinking blocks joined."""
    return "".join(b.thinking for b in blocks if isinstance(b, Thinking))


def citations_of(blocks: Iterable[Block]) -> tuple[Citation, ...]:
    """The passages of attached documents that back the answer, in order."""
    return tuple(c for b in blocks if isinstance(b, Text) for c in b.citations)


@dataclass(frozen=True)
class Reply:
    """A finished call: its content blocks, usage, why it stopped, the model and the request id."""

    content: tuple[Block, ...]
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    model: str | None = None
    request_id: str | None = None
    cache_miss_reason: str | None = None
    """Why the prompt cache was not read, when the request asked the API to say."""
    id: str | None = None
    """The message's id (``msg_...``): a later request can ask the API to compare its cache with it."""
    reused_from: str | None = field(default=None, compare=False)
    """The id of the earlier run this reply was taken from (``--resume``), instead of calling."""

    @classmethod
    def of_text(cls, text: str, usage: Usage | None = None, stop_reason: str | None = "end_turn",
                model: str | None = None, request_id: str | None = None) -> Reply:
        """A reply that is one text block (what a plain provider returns)."""
        return cls((Text(text),) if text else (), usage or Usage(), stop_reason, model, request_id)

    @property
    def text(self) -> str:
        return text_of(self.content)

    @property
    def thinking(self) -> str:
        return thinking_of(self.content)

    @property
    def citations(self) -> tuple[Citation, ...]:
        return citations_of(self.content)

    def to_api(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"content": [b.to_api() for b in self.content], "usage": self.usage.to_api(),
                                 "stop_reason": self.stop_reason, "model": self.model}
        if self.cache_miss_reason:
            reply["cache_miss_reason"] = self.cache_miss_reason
        if self.id:
            reply["id"] = self.id
        return reply

    @classmethod
    def from_api(cls, reply: Mapping[str, Any], request_id: str | None = None) -> Reply:
        return cls(tuple(block_from_api(b) for b in reply.get("content") or ()), Usage.from_api(reply.get("usage") or {}),
                   reply.get("stop_reason"), reply.get("model"), request_id, reply.get("cache_miss_reason"),
                   reply.get("id"))


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    return obj.model_dump(exclude_none=False) if hasattr(obj, "model_dump") else dict(vars(obj))


def _cached(block: dict[str, Any], ttl: str | None) -> dict[str, Any]:
    if ttl:
        block["cache_control"] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
    return block
