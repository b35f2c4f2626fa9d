"""What an attachment's bytes are: PDFs and images told by their magic bytes, not their names.

Private to :mod:`pipeline_nb._attachments`. :func:`sniff` names the kind of some bytes,
:func:`kind_of_suffix` the kind a file name promises, :func:`image_size` reads an image's
width and height from its header (without decoding it), and :func:`pdf_pages` counts the
page objects of a PDF. A count or a size that cannot be read is None: the API then decides,
rather than a guess of ours refusing a file it would take.
"""

from __future__ import annotations

import re
import struct

PDF = "application/pdf"
TEXT = "text/plain"
PNG, JPEG, GIF, WEBP = "image/png", "image/jpeg", "image/gif", "image/webp"
IMAGE_TYPES = (PNG, JPEG, GIF, WEBP)
"""The image media types the Messages API takes."""

NAMES = {PDF: "a PDF", TEXT: "text", PNG: "a PNG image", JPEG: "a JPEG image", GIF: "a GIF image",
         WEBP: "a WebP image"}
SUFFIX_OF = {PDF: ".pdf", PNG: ".png", JPEG: ".jpg", GIF: ".gif", WEBP: ".webp"}

_BINARY_SUFFIXES = {".pdf": PDF, ".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".gif": GIF, ".webp": WEBP}
TEXT_SUFFIXES = frozenset({
    ".txt", ".text", ".md", ".markdown", ".rst", ".org", ".adoc", ".tex", ".bib", ".log",
    ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf",
    ".html", ".htm", ".xml", ".svg", ".css",
    ".py", ".pyi", ".ipynb", ".r", ".jl", ".js", ".ts", ".java", ".c", ".h", ".cpp", ".hpp", ".go",
    ".rs", ".rb", ".sh", ".sql",
})
"""Suffixes attached as a plain-text document (read as UTF-8)."""

_NOT_TAKEN = (  # formats people try to attach that the API does not read: a better message than "unknown"
    (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive (.docx, .xlsx and .pptx are ZIP archives)"),
)
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn markers; C4/C8/CC are not frames


def kind_of_suffix(suffix: str) -> str | None:
    """The media type a file suffix promises (``.JPG`` counts as ``.jpg``), or None if unknown."""
    suffix = suffix.lower()
    return _BINARY_SUFFIXES.get(suffix) or (TEXT if suffix in TEXT_SUFFIXES else None)


def known_suffixes() -> str:
    """The suffixes understood, for an error message."""
    return f"{', '.join(_BINARY_SUFFIXES)} and text ({', '.join(sorted(TEXT_SUFFIXES))})"


def sniff(data: bytes) -> str | None:
    """The media type the bytes announce (PDF or an image the API takes), or None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


def describe(data: bytes) -> str:
    """What the bytes look like, in words: ``a PNG image``, ``a TIFF image``, or their first bytes."""
    kind = sniff(data)
    if kind:
        return NAMES[kind]
    for magic, name in _NOT_TAKEN:
        if data.startswith(magic):
            return name
    return f"bytes starting {data[:8].hex(' ')}" if data else "no bytes at all"


def image_size(data: bytes, media_type: str) -> tuple[int, int] | None:
    """(width, height) in pixels read from the header, or None if the header cannot be read."""
    try:
        if media_type == PNG and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if media_type == GIF:
            return struct.unpack("<HH", data[6:10])
        if media_type == WEBP:
            return _webp_size(data)
        if media_type == JPEG:
            return _jpeg_size(data)
    except struct.error:  # a header cut short
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: canvas size minus one, 24 bits each
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20:21] == b"\x2f":  # lossless: 14 bits each, minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: after the frame tag and start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the segments to the first frame header (SOFn), which holds height then width."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data started without a frame header, or a broken one
            return None
        at += 2 + length
    return None


def pdf_pages(data: bytes) -> int:
    """The number of ``/Type /Page`` objects (0 when they hide in compressed object streams)."""
    return len(_PAGE.findall(data))
