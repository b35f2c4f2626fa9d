"""Citations for :mod:`pipeline_nb.testing._fake_anthropic`: where a quote is in the
request's documents, and how a reply's text splits into blocks around cited sentences.

Private. A scripted citation is ``(span, quote)``: ``span`` is part of the reply's text,
``quote`` is text of a document that has ``citations: {"enabled": true}``. The quote is
looked up in those documents in order: found in a text document, it is a
``char_location`` (0-based ``start_char_index``, exclusive ``end_char_index``); found in a
PDF (its bytes read as latin-1), a ``page_location`` whose page is the number of
``/Type /Page`` objects before it (1-based; ``end_page_number`` is exclusive). A quote found
nowhere cites page 1 of the first such PDF, or, with no PDF, is not cited.

As the real API does, the sentence of the reply holding a cited span becomes a text block
of its own with its ``citations``; the text around it stays in plain blocks.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ._fake_content import Attachment

#: A scripted citation: (span of the reply text, quote of a document).
Cite = tuple[str, str]

_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s|$)|$)", re.S)


def locate(quote: str, documents: list[Attachment]) -> Optional[dict[str, Any]]:
    """The citation object for ``quote``, or None (see the module docstring)."""
    citable = [(i, d) for i, d in enumerate(documents) if d.citations and d.kind == "document"]
    for index, doc in citable:
        at = doc.text.find(quote) if doc.source_type in ("text", "base64") else -1
        if at < 0:
            continue
        base = {"type": "char_location", "cited_text": quote, "document_index": index,
                "document_title": doc.title, "file_id": None}
        if doc.source_type == "text":
            return {**base, "start_char_index": at, "end_char_index": at + len(quote)}
        page = max(1, len(_PAGE.findall(doc.data[:at])))
        return {**base, "type": "page_location", "start_page_number": page, "end_page_number": page + 1}
    for index, doc in citable:
        if doc.source_type == "base64":
            return {"type": "page_location", "cited_text": quote, "document_index": index,
                    "document_title": doc.title, "file_id": None, "start_page_number": 1, "end_page_number": 2}
    return None


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentences of ``text`` that overlap ``[start, end)``."""
    lo, hi = start, end
    for m in _SENTENCE.finditer(text):
        if m.end() > start and m.start() < end:
            lo, hi = min(lo, m.start()), max(hi, m.end())
    return lo, hi


def split(text: str, cites: list[Cite], documents: list[Attachment]) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """``text`` as consecutive ``(start, end, citations)`` spans covering all of it; a span
    with citations is one cited sentence (or several, when one citation spans them)."""
    cited: list[tuple[int, int, list[dict[str, Any]]]] = []
    for span, quote in cites:
        at = text.find(span)
        citation = locate(quote, documents) if at >= 0 else None
        if citation is None:
            continue
        lo, hi = _sentence_around(text, at, at + len(span))
        for k, (s, e, found) in enumerate(cited):
            if s < hi and lo < e:  # overlaps a cited span already: one block, both citations
                cited[k] = (min(s, lo), max(e, hi), found + [citation])
                break
        else:
            cited.append((lo, hi, [citation]))
    spans: list[tuple[int, int, list[dict[str, Any]]]] = []
    pos = 0
    for s, e, found in sorted(cited):
        if s > pos:
            spans.append((pos, s, []))
        spans.append((max(s, pos), e, found))
        pos = max(pos, e)
    if pos < len(text) or not spans:
        spans.append((pos, len(text), []))
    return spans
