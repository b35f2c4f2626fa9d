"""What a Messages request holds, as :mod:`pipeline_nb.testing._fake_anthropic` reads it.

Private. The prompt text, the tool results of the last user turn, the attachments
(documents and images, including images a tool result returns) and the prompt as a
sequence of blocks, each with a token estimate, in the order the API builds its prompt
prefix: ``tools``, then ``system``, then ``messages``.

Token estimates (the fake has no tokenizer): one token per word of text; a text document
counts the words of its data, a PDF the words of its bytes read as latin-1, an image its
decoded bytes / 750 (at least 1; the real API counts width x height / 750); anything else
the words of its JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

_WORD = re.compile(r"\S+")
_IMAGE_BYTES_PER_TOKEN = 750


def words(text: str) -> int:
    """The fake's token estimate for ``text``: its number of words."""
    return len(_WORD.findall(text))


def _text_of(content: Any) -> str:
    """A message's or tool result's content as text: a string, or its ``text`` blocks joined by newlines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(b["text"] for b in content
                     if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))


def _last_user_content(body: dict[str, Any]) -> Any:
    messages = body.get("messages")
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return msg.get("content")
    return None


def last_user_text(body: dict[str, Any]) -> str:
    """Text of the last ``user`` message: a string, or its ``text`` blocks joined by newlines."""
    return _text_of(_last_user_content(body))


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of the last ``user`` message, in order."""
    content = _last_user_content(body)
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def tool_result_text(block: dict[str, Any]) -> str:
    """The text a ``tool_result`` block returns (its string content, or its ``text`` blocks)."""
    return _text_of(block.get("content"))


def decode_base64(data: Any) -> Optional[bytes]:
    """``data`` decoded, or None when it is not a base64 string."""
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass
class Attachment:
    """A ``document`` or ``image`` block of a request, where the request put it.

    ``size`` is the decoded size in bytes (base64 data, or the UTF-8 of a text document),
    None for a source the fake does not read (url, file, content). ``data`` holds those
    bytes; ``text`` is what the fake searches for citations.
    """

    kind: str
    source_type: Optional[str]
    media_type: Optional[str]
    size: Optional[int]
    message_index: int
    block_index: int
    title: Optional[str] = None
    citations: bool = False
    cache_control: Optional[dict[str, Any]] = None
    data: bytes = field(default=b"", repr=False)

    @property
    def text(self) -> str:
        """A text document's text; a PDF's bytes read as latin-1; else ``""``."""
        if self.source_type == "text":
            return self.data.decode("utf-8")
        return self.data.decode("latin-1")

    @property
    def tokens(self) -> int:
        if self.kind == "image":
            return max(1, (self.size or 0) // _IMAGE_BYTES_PER_TOKEN)
        return words(self.text)


def attachment(block: dict[str, Any], message_index: int, block_index: int) -> Optional[Attachment]:
    """The :class:`Attachment` for a ``document``/``image`` block, else None."""
    kind = block.get("type")
    if kind not in ("document", "image"):
        return None
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    stype, data = source.get("type"), b""
    if stype == "base64":
        data = decode_base64(source.get("data")) or b""
    elif stype == "text" and isinstance(source.get("data"), str):
        data = source["data"].encode("utf-8")
    readable = stype in ("base64", "text")
    citations = block.get("citations")
    return Attachment(
        kind, stype if isinstance(stype, str) else None, source.get("media_type"),
        len(data) if readable else None, message_index, block_index,
        title=block.get("title") if isinstance(block.get("title"), str) else None,
        citations=isinstance(citations, dict) and citations.get("enabled") is True,
        cache_control=block.get("cache_control") if isinstance(block.get("cache_control"), dict) else None,
        data=data,
    )


def content_blocks(body: dict[str, Any]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(message_index, role, block)`` for every block of every message; string content
    is one ``text`` block."""
    messages = body.get("messages")
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(msg, dict):
            continue
        role, content = str(msg.get("role")), msg.get("content")
        if isinstance(content, str):
            yield i, role, {"type": "text", "text": content}
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    yield i, role, block


def attachments(body: dict[str, Any]) -> list[Attachment]:
    """Every document and image of the request, in order (a document's place in this
    list, counting documents only, is its ``document_index``), and the images a
    ``tool_result`` returns (at the index of that ``tool_result`` block)."""
    found: list[Attachment] = []
    messages = body.get("messages")
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        content = msg.get("content") if isinstance(msg, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict):
                continue
            a = attachment(block, i, j)
            if a is not None:
                found.append(a)
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                found += [a for a in (attachment(b, i, j) for b in block["content"]
                                      if isinstance(b, dict) and b.get("type") == "image") if a is not None]
    return found


@dataclass(frozen=True)
class PromptBlock:
    """One block of the prompt prefix: where it is, what it is (``key``, without its
    ``cache_control``), its token estimate, and its ``cache_control`` if it has one."""

    section: str
    key: str
    tokens: int
    cache_control: Optional[dict[str, Any]]


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return words(block["text"])
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return words(block["thinking"])
    found = attachment(block, 0, 0)
    if found is not None:
        return found.tokens
    return words(json.dumps(block))


def _prompt_block(section: str, block: dict[str, Any], role: Optional[str] = None) -> PromptBlock:
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    key = json.dumps([section, role, bare], sort_keys=True, separators=(",", ":"))
    cc = block.get("cache_control")
    tokens = words(json.dumps(bare)) if section == "tools" else _block_tokens(bare)
    return PromptBlock(section, key, tokens, cc if isinstance(cc, dict) else None)


def prompt_blocks(body: dict[str, Any]) -> list[PromptBlock]:
    """The prompt as the API caches it: tools, system, then each message's blocks. A
    top-level ``cache_control`` marks the last block (when that has none of its own)."""
    blocks: list[PromptBlock] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            blocks.append(_prompt_block("tools", tool))
    system = body.get("system")
    if isinstance(system, str) and system:
        blocks.append(_prompt_block("system", {"type": "text", "text": system}))
    elif isinstance(system, list):
        blocks += [_prompt_block("system", b) for b in system if isinstance(b, dict)]
    blocks += [_prompt_block("messages", b, role) for _, role, b in content_blocks(body)]
    top = body.get("cache_control")
    if isinstance(top, dict) and blocks and blocks[-1].cache_control is None:
        last = blocks[-1]
        blocks[-1] = PromptBlock(last.section, last.key, last.tokens, top)
    return blocks
