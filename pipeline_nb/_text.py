"""Text for people: the start of a long text on one line, and a value as one line of JSON."""

from __future__ import annotations

import json
from typing import Any

EXCERPT = 100
"""Characters of a text that an excerpt keeps, by default."""


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The start of ``text`` on one line: whitespace runs become one space, cut at ``limit``."""
    head = text[: limit * 8]  # a for_each's text may be megabytes; its start is enough
    line = " ".join(head.split())
    if len(line) <= limit and len(head) == len(text):
        return line
    return line[: limit - 1].rstrip() + "…"


def compact_json(value: Any) -> str:
    """``value`` as JSON on one line; what JSON cannot say (an image, a date) as its ``str``."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # a circular value, or a key that is not a string
        return str(value)
