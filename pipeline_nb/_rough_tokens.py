"""Token counts without a tokenizer or a network call: rough, cheap, and meant to err high.

For the budget's worst case before each call, and for an estimate's items beyond those counted
exactly. Text counts a token per ``CHARS_PER_TOKEN`` characters (English runs about 4 to 5 a
token with Claude's tokenizer; code, numbers and non-Latin scripts run fewer, so they can count
above this); an image counts ``IMAGE_TOKENS``, about what the API bills an image at its default
size limit; a PDF counts ``PDF_PAGE_TOKENS`` a page (its text and the page's image).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from ._attachment_kinds import pdf_pages
from ._llm import LLMRequest

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1_600
"""The API scales a large image down to about 1.15 megapixels, which it bills ~1,600 tokens."""
PDF_PAGE_TOKENS = 3_000


def rough_input_tokens(request: LLMRequest) -> int:
    """A rough count of ``request``'s input: its system prompt, tools and every message's blocks."""
    system = request.system
    tokens = text_tokens(system) if isinstance(system, str) else sum(map(block_tokens, system or ()))
    tools = request.params.get("tools")
    tokens += text_tokens(json.dumps(tools, default=str)) if tools else 0
    for message in request.messages:
        content = message.get("content")
        tokens += text_tokens(content) if isinstance(content, str) else sum(map(block_tokens, content or ()))
    return tokens


def text_tokens(text: str) -> int:
    """A token per ``CHARS_PER_TOKEN`` characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def block_tokens(block: Mapping[str, Any]) -> int:
    """A rough count of one content block (text, thinking, image, document, tool use or result)."""
    kind = block.get("type")
    if kind == "text":
        return text_tokens(str(block.get("text", "")))
    if kind == "thinking":
        return text_tokens(str(block.get("thinking", "")))
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        return _document_tokens(block.get("source") or {})
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return sum(block_tokens(part) for part in content if isinstance(part, Mapping))
        return text_tokens(str(content or ""))
    return text_tokens(json.dumps(block, default=str))  # tool_use and anything newer: its JSON


def _document_tokens(source: Mapping[str, Any]) -> int:
    data = source.get("data")
    if not isinstance(data, str):  # a url or file source: its size is unknown here
        return PDF_PAGE_TOKENS
    if source.get("type") != "base64":
        return text_tokens(data)
    try:
        pages = pdf_pages(base64.b64decode(data))
    except (binascii.Error, ValueError):
        pages = 0
    # page objects may hide in compressed object streams: then the base64 text's length must do
    return pages * PDF_PAGE_TOKENS if pages else text_tokens(data)
