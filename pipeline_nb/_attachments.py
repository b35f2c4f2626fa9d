"""Attachments: the files and kernel objects an llm step sends before its prompt, as the
:class:`~pipeline_nb.content.Document` and :class:`~pipeline_nb.content.Image` blocks of the API.

An llm step's ``attachments:`` list holds, per item:

- a path, relative to the pipeline's folder, maybe templated: ``papers/{{ name }}.pdf``;
- a mapping ``{file: <path>, title: <text>, citations: <bool>, cache: true | 5m | 1h}``;
- exactly one expression, ``"{{ fig }}"``, whose value is attached as an object.

A file is known by its magic bytes as well as its suffix (a ``.png`` holding a JPEG is refused,
not sent): a PDF becomes a PDF document, a PNG, JPEG, GIF or WebP file an image, a text-like
file (``.txt``, ``.md``, ``.csv``, ``.json``, ``.py``, ...) a plain-text document read as strict
UTF-8. An object becomes one by its type: ``bytes`` (a PDF or an image), ``str`` (text),
``pathlib.Path`` (that file), a PIL image or a matplotlib figure (PNG), a pandas DataFrame (CSV
text). PIL, matplotlib and pandas are never imported here: an object is recognised by its
class's module and converted through its own methods. So ``"{{ notes }}"`` holding a str is a
text document, while ``file: "{{ notes_path }}"`` names a file.

The API's limits, checked before any call (the values are in ``_attachment_files``):
``MAX_REQUEST_BYTES`` (a request, 32 MB), ``MAX_IMAGE_BASE64_BYTES`` (one image, 5 MiB in
base64, so a file of at most ``MAX_IMAGE_BYTES``), ``MAX_IMAGE_SIDE`` (8000 px; 2000 px,
``MAX_IMAGE_SIDE_MANY``, with more than ``MANY_IMAGES`` = 20 images), ``MAX_IMAGES`` (100 in a
request) and ``MAX_PDF_PAGES`` (100 in a request). Every refusal is an :class:`AttachmentProblem`
naming the file or the object, what is wrong and how to fix it, never the content.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from . import _attachment_kinds as kinds
from ._attachment_files import (
    MANY_IMAGES,
    MAX_IMAGE_BASE64_BYTES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    MAX_IMAGE_SIDE_MANY,
    MAX_IMAGES,
    MAX_PDF_BYTES,
    MAX_PDF_PAGES,
    MAX_REQUEST_BYTES,
    MAX_TEXT_BYTES,
    Attachment,
    AttachmentProblem,
    cache_ttl,
    check_request,
    make_block,
    payload_size,
    read_attachment,
)
from ._schema import _describe
from .content import Document, Image
from ._values import _SINGLE_EXPRESSION

__all__ = ["MANY_IMAGES", "MAX_IMAGES", "MAX_IMAGE_BASE64_BYTES", "MAX_IMAGE_BYTES", "MAX_IMAGE_SIDE",
           "MAX_IMAGE_SIDE_MANY", "MAX_PDF_BYTES", "MAX_PDF_PAGES", "MAX_REQUEST_BYTES", "MAX_TEXT_BYTES",
           "Attachment", "AttachmentItem", "AttachmentProblem", "attachment_for", "attachment_from_object",
           "attachment_from_path", "cache_ttl", "check_request", "parse_item", "payload_size", "static_problem"]

KEYS = ("file", "title", "citations", "cache")
"""The keys of the mapping form."""
_SYNONYMS = {"path": "file", "filename": "file", "src": "file", "source": "file", "name": "title",
             "cache_control": "cache", "citation": "citations"}
_FORMS = "e.g. '- paper.pdf', '- {file: paper.pdf, citations: true}' or '- \"{{ fig }}\"'"


def attachment_from_path(path: Path, *, title: str | None = None, citations: bool = False,
                         cache: bool | str | None = None, within: Path | None = None) -> Attachment:
    """The file at ``path`` as a Document (PDF, text) or an Image; a document's title defaults to
    the file name. With ``within``, a path that resolves outside that folder is refused.

    Raises AttachmentProblem: missing, not a regular file, unknown or mismatched type, invalid
    content (a PDF without ``%PDF-``, text that is not UTF-8), or over one of the API's limits."""
    return read_attachment(Path(path), str(path), title, citations, cache_ttl(cache), within)


def attachment_from_object(value: Any, *, title: str | None = None, citations: bool = False,
                           cache: bool | str | None = None) -> Attachment:
    """A kernel object as a Document or an Image: bytes (PDF or image), str (text), a Path (that
    file), a PIL image or a matplotlib figure or Axes (PNG), a pandas DataFrame or Series (CSV).
    A Document or Image is returned as it is. Anything else raises AttachmentProblem."""
    ttl = cache_ttl(cache)
    if isinstance(value, (Document, Image)):
        return value
    if isinstance(value, (PurePath, os.PathLike)):
        return read_attachment(Path(value), str(value), title, citations, ttl)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        kind = kinds.sniff(data)
        if kind is None:
            raise AttachmentProblem(f"cannot attach {len(data):,} bytes of {kinds.describe(data)}: bytes must "
                                    "be a PDF or a PNG, JPEG, GIF or WebP image",
                                    "for text, attach a str (bytes.decode('utf-8'))")
        return make_block(data, kind, f"the {len(data):,} bytes", title, citations, ttl)
    if isinstance(value, str):
        return make_block(value, kinds.TEXT, f"the text ({len(value):,} characters)", title, citations, ttl)
    library = type(value).__module__.partition(".")[0]
    if library == "PIL" and hasattr(value, "save"):
        png = _png(value, "save", "the PIL image", format="PNG")
        return make_block(png, kinds.PNG, "the PIL image", title, citations, ttl)
    if library == "matplotlib":
        figure = value if hasattr(value, "savefig") else getattr(value, "figure", None)  # an Axes: its figure
        if hasattr(figure, "savefig"):
            png = _png(figure, "savefig", "the matplotlib figure", format="png")
            return make_block(png, kinds.PNG, "the matplotlib figure", title, citations, ttl)
    if library == "pandas" and hasattr(value, "to_csv"):
        keep_index = type(getattr(value, "index", None)).__name__ != "RangeIndex"  # 0, 1, 2... says nothing
        text = value.to_csv(index=keep_index)
        return make_block(text, kinds.TEXT, f"the {type(value).__name__} as CSV", title, citations, ttl)
    raise AttachmentProblem(f"cannot attach a {type(value).__module__}.{type(value).__qualname__}",
                            "attach a path, bytes of a PDF or PNG/JPEG/GIF/WebP image, a str (as text), "
                            "a PIL image, a matplotlib figure or a pandas DataFrame")


def _png(owner: Any, method: str, shown: str, **options: Any) -> bytes:
    """PNG bytes from ``owner.<method>(buffer, **options)`` (PIL's save, matplotlib's savefig)."""
    buffer = io.BytesIO()
    try:
        getattr(owner, method)(buffer, **options)
    except Exception as exc:  # the library's own failure (a CMYK image, say): name it, keep it one line
        raise AttachmentProblem(f"cannot attach {shown}: saving it as PNG failed: {type(exc).__name__}: {exc}",
                                "convert it yourself and attach the bytes (PNG or JPEG)") from None
    return buffer.getvalue()


# -- the YAML list -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AttachmentItem:
    """One item of ``attachments:``, read from what was written (its templates not yet rendered)."""

    source: str
    """A path, maybe templated, or (``is_file`` false) one ``{{ expression }}``."""
    is_file: bool
    title: str | None = None
    citations: bool = False
    cache: str | None = None
    """The cache TTL, ``5m`` or ``1h``, or None."""

    @property
    def is_static(self) -> bool:
        """A path with no template: checked before the run."""
        return self.is_file and not any(mark in self.source for mark in ("{{", "{%", "{#"))


def parse_item(raw: Any) -> AttachmentItem:
    """One item as written in the YAML list; AttachmentProblem if it is not one of the three forms."""
    if isinstance(raw, str):
        if not raw.strip():
            raise AttachmentProblem("an attachment path is empty", _FORMS)
        return AttachmentItem(raw, is_file=_SINGLE_EXPRESSION.match(raw) is None)
    if not isinstance(raw, Mapping):
        raise AttachmentProblem(f"an attachment must be a path, a mapping with 'file' or one "
                                f"'{{{{ expression }}}}', not {_describe(raw)}", _FORMS)
    for key in raw:
        if key not in KEYS:
            guess = _SYNONYMS.get(str(key)) or next(iter(difflib.get_close_matches(str(key), KEYS, n=1)), None)
            raise AttachmentProblem(f"unknown attachment key {key!r}",
                                    (f"did you mean {guess!r}? " if guess else "") + f"known: {', '.join(KEYS)}")
    file, title, citations = raw.get("file"), raw.get("title"), raw.get("citations", False)
    if "file" not in raw:
        raise AttachmentProblem("an attachment mapping needs 'file'", "e.g. {file: paper.pdf, citations: true}")
    if not isinstance(file, str) or not file.strip():
        raise AttachmentProblem(f"'file' must be a path, not {_describe(file)}", "e.g. file: papers/a.pdf")
    if title is not None and not isinstance(title, str):
        raise AttachmentProblem(f"'title' must be text, not {_describe(title)}", "quote it: title: \"2025\"")
    if not isinstance(citations, bool):
        raise AttachmentProblem(f"'citations' must be true or false, not {_describe(citations)}",
                                "citations: true lets the answer cite passages of this document")
    return AttachmentItem(file, True, title, citations, cache_ttl(raw.get("cache")))


def attachment_for(item: AttachmentItem, value: Any, base_dir: Path, *, within: Path | None = None) -> Attachment:
    """The attachment of ``item`` once its template gave ``value`` (``item.source`` if static).

    Text from a path item names a file relative to ``base_dir``; any other value, and every
    value of a bare ``{{ expression }}``, is attached as an object. ``within`` refuses files
    outside that folder."""
    if item.is_file and isinstance(value, str):
        if not value.strip():
            raise AttachmentProblem(f"the path {item.source!r} gave an empty file name", _FORMS)
        return read_attachment(base_dir / value, value, item.title, item.citations, item.cache, within)
    if isinstance(value, (PurePath, os.PathLike)):
        return read_attachment(Path(value), str(value), item.title, item.citations, item.cache, within)
    return attachment_from_object(value, title=item.title, citations=item.citations, cache=item.cache)


def static_problem(raw: Any, base_dir: Path) -> tuple[int, str, str | None] | None:
    """The first problem in an ``attachments:`` list known before the run, as (item index,
    message, hint), or None: an item that is none of the forms, a bad key or value, a file
    (without template) that is missing, unknown, invalid or over a limit, or files that
    together break a request's limit. The index is -1 when ``raw`` is not a list."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        return -1, f"attachments must be a list, not {_describe(raw)}", f"one item per line, {_FORMS}"
    made: list[Attachment] = []
    positions: list[int] = []
    for index, raw_item in enumerate(raw):
        try:
            item = parse_item(raw_item)
            if item.is_static:
                made.append(attachment_for(item, item.source, base_dir))
                positions.append(index)
        except AttachmentProblem as problem:
            return _over_request(made, positions) or (index, problem.message, problem.hint)
    return _over_request(made, positions)


def _over_request(made: Sequence[Attachment], positions: Sequence[int]) -> tuple[int, str, str | None] | None:
    try:
        check_request(made, positions)
    except AttachmentProblem as problem:
        assert problem.index is not None
        return problem.index, problem.message, problem.hint
    return None
