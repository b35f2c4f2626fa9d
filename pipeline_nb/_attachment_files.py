"""The API's limits on attachments, and reading an attachment file within them.

Private to :mod:`pipeline_nb._attachments`, which re-exports the limits. :func:`read_attachment`
turns a file into a block: only a regular file is opened (a FIFO would block), without
blocking, and no more of it is read than its kind may hold. :func:`make_block` checks any
bytes or text against the limits of one attachment, :func:`check_request` a whole request's.
A refusal names the file and the limit, never the content (a file may be a secret).
"""

from __future__ import annotations

import base64
import difflib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from . import _attachment_kinds as kinds
from ._pipeline_file import _KINDS, _read_at_most
from .content import Document, Image

MAX_REQUEST_BYTES = 32_000_000
"""The API's request size limit (32 MB, read as decimal: the stricter reading)."""
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
"""The API's limit for one image, counted on its base64 text (5 MiB)."""
MAX_IMAGE_BYTES = MAX_IMAGE_BASE64_BYTES // 4 * 3
"""The largest image file within ``MAX_IMAGE_BASE64_BYTES`` once encoded (3,932,160 bytes)."""
MAX_PDF_BYTES = MAX_REQUEST_BYTES // 4 * 3
"""The largest PDF whose base64 text fits in a request (24,000,000 bytes)."""
MAX_TEXT_BYTES = MAX_REQUEST_BYTES
"""The largest text document (its UTF-8 bytes)."""
MAX_IMAGE_SIDE = 8000
"""An image's width and height, in pixels."""
MANY_IMAGES = 20
MAX_IMAGE_SIDE_MANY = 2000
"""The side limit when a request has more than ``MANY_IMAGES`` images."""
MAX_IMAGES = 100
"""Images in one request (the API's lowest figure; some models take 600)."""
MAX_PDF_PAGES = 100
"""PDF pages in one request."""
LONG_EDGE_SEEN = 1568
"""The API scales a longer edge down to this: more pixels cost bytes, not quality."""

Attachment = Union[Document, Image]
_TTLS = ("5m", "1h")
_MAX_SIBLINGS = 10_000  # a did-you-mean looks at no more names than this in a folder
_SMALLER = (f"save it smaller: the model sees at most about {LONG_EDGE_SEEN} px on the long edge, "
            "and JPEG is smaller than PNG for photos")


class AttachmentProblem(ValueError):
    """An attachment that cannot be sent: ``message`` says what and where, ``hint`` how to fix it.
    ``index`` is the attachment's position when a check of a whole list found it."""

    def __init__(self, message: str, hint: str | None = None, *, index: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.index = message, hint, index


def cache_ttl(value: Any) -> str | None:
    """A ``cache:`` setting as a TTL: true is ``5m``; false or None is no caching."""
    if value is None or value is False:
        return None
    if value is True:
        return "5m"
    if isinstance(value, str) and value in _TTLS:
        return value
    raise AttachmentProblem(f"cache must be true, '5m' or '1h', not {value!r}",
                            "true caches for 5 minutes, '1h' for an hour (its writes cost more)")


def payload_size(attachment: Attachment) -> int:
    """The bytes the attachment adds to a request: its base64 text, or its text as UTF-8."""
    if attachment.media_type == kinds.TEXT:
        return len(attachment.data.encode("utf-8", "surrogatepass"))
    return len(attachment.data)


def check_request(attachments: Sequence[Attachment], positions: Sequence[int] | None = None) -> None:
    """Raise AttachmentProblem if one request's attachments together break a limit: total size,
    PDF pages, image count, image sides. ``positions`` are the attachments' item indexes (default
    0, 1, 2...); the problem's ``index`` is that of the attachment that goes over."""
    where = list(positions) if positions is not None else list(range(len(attachments)))
    total = pages = 0
    for at, attachment in enumerate(attachments):
        total += payload_size(attachment)
        if total > MAX_REQUEST_BYTES:
            raise AttachmentProblem(
                f"attachment {where[at] + 1} takes the attachments to {total:,} bytes, over the API's request "
                f"limit of {MAX_REQUEST_BYTES:,} bytes (PDFs and images count base64-encoded)",
                "attach fewer or smaller files, or split the work over several steps", index=where[at])
        if attachment.media_type == kinds.PDF and len(attachments) > 1:  # a lone PDF was counted when made
            pages += kinds.pdf_pages(base64.b64decode(attachment.data))
            if pages > MAX_PDF_PAGES:
                raise AttachmentProblem(
                    f"attachment {where[at] + 1} takes the PDFs to {pages:,} pages, over the API's limit of "
                    f"{MAX_PDF_PAGES} pages in one request",
                    "attach fewer pages, or split the work over several steps", index=where[at])
    images = [at for at, a in enumerate(attachments) if isinstance(a, Image)]
    if len(images) > MAX_IMAGES:
        raise AttachmentProblem(f"{len(images)} images: the API takes at most {MAX_IMAGES} in one request",
                                "split the images over several steps", index=where[images[MAX_IMAGES]])
    if len(images) > MANY_IMAGES:
        for at in images:
            image = attachments[at]
            size = kinds.image_size(base64.b64decode(image.data), image.media_type)
            if size and max(size) > MAX_IMAGE_SIDE_MANY:
                raise AttachmentProblem(
                    f"attachment {where[at] + 1} is {size[0]}x{size[1]} px: with more than {MANY_IMAGES} "
                    f"images in a request the API takes at most {MAX_IMAGE_SIDE_MANY} px on a side",
                    f"resize the images, or attach at most {MANY_IMAGES}", index=where[at])


def make_block(data: bytes | str, kind: str, shown: str, title: str | None, citations: bool,
               ttl: str | None) -> Attachment:
    """The block for ``data`` (text, or the bytes of media type ``kind``), checked against the
    limits of one attachment; ``shown`` names it in a refusal."""
    if not data:
        raise AttachmentProblem(f"cannot attach {shown}: it is empty", "check that it is the one you meant")
    if isinstance(data, str):
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_TEXT_BYTES:
            raise _too_large(shown, kinds.TEXT, size)
        return Document(kinds.TEXT, data, title, citations, ttl)
    if len(data) > _raw_limit(kind):
        raise _too_large(shown, kind, len(data))
    encoded = base64.b64encode(data).decode("ascii")
    if kind == kinds.PDF:
        pages = kinds.pdf_pages(data)
        if pages > MAX_PDF_PAGES:
            raise AttachmentProblem(f"cannot attach {shown}: {pages:,} pages, over the API's limit of "
                                    f"{MAX_PDF_PAGES} PDF pages in one request",
                                    "split it and attach the pages needed (a for_each can take the parts)")
        return Document(kind, encoded, title, citations, ttl)
    if title is not None or citations:
        raise AttachmentProblem(f"cannot attach {shown} with a title or citations: they apply to "
                                "documents (PDF, text), not to images", "drop 'title' and 'citations'")
    size = kinds.image_size(data, kind)
    if size and max(size) > MAX_IMAGE_SIDE:
        raise AttachmentProblem(f"cannot attach {shown}: {size[0]}x{size[1]} px, over the API's limit of "
                                f"{MAX_IMAGE_SIDE} px on a side", _SMALLER)
    return Image(kind, encoded, ttl)


def read_attachment(path: Path, shown: str, title: str | None, citations: bool, ttl: str | None,
                    within: Path | None = None) -> Attachment:
    """The file at ``path`` as a block (``shown`` names it); see ``attachment_from_path``."""
    if within is not None:
        root = within.resolve()
        if root not in path.resolve().parents:
            raise AttachmentProblem(f"cannot attach {shown}: it is outside {root}",
                                    "attach files inside the pipeline's folder")
    info = _stat_regular(path, shown)
    kind = kinds.kind_of_suffix(path.suffix)
    if kind is None:
        looks = kinds.sniff(_read(path, shown, 16))
        rename = f"; its bytes are {kinds.NAMES[looks]}: rename it to {kinds.SUFFIX_OF[looks]}" if looks else ""
        what = f"the suffix {path.suffix!r} is" if path.suffix else "a name without a suffix is"
        raise AttachmentProblem(f"cannot attach {shown}: {what} not a kind of file known{rename}",
                                f"known: {kinds.known_suffixes()}")
    limit = _raw_limit(kind)
    if info.st_size > limit:
        raise _too_large(shown, kind, info.st_size)
    data = _read(path, shown, limit)
    if len(data) > limit:  # it grew since stat, or reports no size (/proc)
        raise _too_large(shown, kind, len(data))
    found = kinds.sniff(data)
    if kind == kinds.TEXT:
        return make_block(_decode(data, shown, found), kind, shown, title or path.name, citations, ttl)
    if found != kind:
        raise _mismatch(shown, kind, found, data)
    documented = kind == kinds.PDF  # an image has no title: the file name is not forced on it
    return make_block(data, kind, shown, title or path.name if documented else title, citations, ttl)


def _stat_regular(path: Path, shown: str) -> os.stat_result:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise AttachmentProblem(f"attachment not found: {shown}", _nearby(path)) from None
    except OSError as exc:
        raise AttachmentProblem(f"cannot read attachment {shown}: {exc.strerror or exc}") from None
    _check_regular(info, shown)
    return info


def _check_regular(info: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "a special file")
        hint = "name a file inside it" if stat.S_ISDIR(info.st_mode) else "name a regular file"
        raise AttachmentProblem(f"cannot attach {shown}: it is {kind}, not a regular file", hint)


def _read(path: Path, shown: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes, opened without blocking (should a FIFO be swapped in since stat)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            _check_regular(info, shown)
            return _read_at_most(handle, limit + 1, info.st_size)
    except OSError as exc:
        raise AttachmentProblem(f"cannot read attachment {shown}: {exc.strerror or exc}") from None


def _nearby(path: Path) -> str:
    """Where to look: a file with a close name, or that the folder is missing."""
    parent = path.parent
    if not parent.is_dir():
        return f"the folder {parent} does not exist either; paths are relative to the pipeline's folder"
    try:
        with os.scandir(parent) as entries:
            names = [entry.name for _, entry in zip(range(_MAX_SIBLINGS), entries)]
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=1)
    return f"did you mean {str(path.with_name(close[0]))!r}?" if close else f"no such file in {parent}"


def _decode(data: bytes, shown: str, found: str | None) -> str:
    text = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # a BOM is not part of the text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        if found:
            raise AttachmentProblem(f"cannot attach {shown} as text: it holds {kinds.NAMES[found]}",
                                    f"rename it to {kinds.SUFFIX_OF[found]}") from None
        offset = exc.start + len(data) - len(text)
        before = text[:exc.start].decode("utf-8")  # valid up to the bad byte, by definition
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        raise AttachmentProblem(
            f"cannot attach {shown} as text: invalid UTF-8, byte 0x{data[offset]:02x} at offset {offset:,} "
            f"(line {line}, column {column})",
            "save it as UTF-8; a binary file can be attached only as a PDF or a PNG, JPEG, GIF or WebP image",
        ) from None


def _mismatch(shown: str, kind: str, found: str | None, data: bytes) -> AttachmentProblem:
    if kind == kinds.PDF and found is None:
        return AttachmentProblem(f"cannot attach {shown}: not a valid PDF, it does not start with %PDF- "
                                 f"(it holds {kinds.describe(data)})", "export it again as PDF")
    fix = f"rename it to {kinds.SUFFIX_OF[found]}" if found else f"save it again as {kinds.NAMES[kind]}"
    return AttachmentProblem(f"cannot attach {shown}: its name says {kinds.NAMES[kind]} but it holds "
                             f"{kinds.describe(data)}", fix)


def _raw_limit(kind: str) -> int:
    if kind in kinds.IMAGE_TYPES:
        return MAX_IMAGE_BYTES
    return MAX_PDF_BYTES if kind == kinds.PDF else MAX_TEXT_BYTES


def _too_large(shown: str, kind: str, size: int) -> AttachmentProblem:
    if kind in kinds.IMAGE_TYPES:
        return AttachmentProblem(
            f"cannot attach {shown}: {size:,} bytes, over the API's limit for one image "
            f"({MAX_IMAGE_BASE64_BYTES:,} bytes base64-encoded, so {MAX_IMAGE_BYTES:,} bytes)", _SMALLER)
    if kind == kinds.PDF:
        return AttachmentProblem(
            f"cannot attach {shown}: {size:,} bytes, over the API's request limit of {MAX_REQUEST_BYTES:,} "
            f"bytes once base64-encoded (a PDF may be at most {MAX_PDF_BYTES:,} bytes)",
            f"split it and attach the pages needed (at most {MAX_PDF_PAGES} pages in a request)")
    return AttachmentProblem(f"cannot attach {shown}: {size:,} bytes of text, over the API's request limit "
                             f"of {MAX_REQUEST_BYTES:,} bytes",
                             "attach the part needed, or summarise it in an earlier step")
