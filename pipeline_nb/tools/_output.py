"""What a tool returned, as the content of its ``tool_result`` block.

:func:`tool_output` turns any Python value into text or image blocks the API takes: a str as
it is, ``None`` as nothing, dicts, lists, dataclasses and pydantic models as JSON, a PIL image
or a matplotlib figure (or Axes) as a PNG image, image bytes as that image, other bytes as a
short note, and anything else as its ``repr``. PIL and matplotlib are never imported here: an
object is recognised by its class's module and rendered through its own methods. Text longer
than the limit is cut, with a visible note the model reads; an image larger than the model
sees is scaled down first.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import io
import json
from typing import Any, Union

from .. import _attachment_kinds as kinds
from ..content import Image, Text

MAX_TOOL_OUTPUT = 100_000
"""Characters of a tool's text output sent to the model; the rest is cut, with a note."""
LONG_EDGE = 1568
"""Pixels on an image's longer edge: the API scales larger images down to about this anyway."""
MAX_IMAGE_BYTES = 5 * 1024 * 1024 // 4 * 3
"""The largest image the API takes in one block (5 MiB once base64-encoded)."""
MAX_IMAGE_EDGE = 8000
"""Pixels on an image's longer edge beyond which the API refuses it."""

Content = Union[str, tuple[Union[Text, Image], ...]]


def tool_output(value: Any, limit: int = MAX_TOOL_OUTPUT) -> tuple[Content, str | None]:
    """``(content, note)``: the tool_result content for ``value``, and a note when something was
    cut or scaled (the note is in the content too, so the model knows)."""
    if value is None:
        return "", None
    if isinstance(value, str):
        return _cut(value, limit)
    if isinstance(value, (Text, Image)):
        value = (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (Text, Image)) for v in value):
        return _blocks(tuple(value), limit)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes(bytes(value))
    library = type(value).__module__.partition(".")[0]
    if library == "PIL" and hasattr(value, "save") and hasattr(value, "size"):
        return _pil_image(value)
    if library == "matplotlib":
        figure = value if hasattr(value, "savefig") else getattr(value, "figure", None)  # an Axes: its figure
        if hasattr(figure, "savefig"):
            return _figure(figure)
    if isinstance(value, (dict, list, tuple)) or _is_record(value):
        try:
            return _cut(json.dumps(_plain(value), ensure_ascii=False, default=_plain_or_str), limit)
        except (ValueError, TypeError, RecursionError):  # a cycle, a key JSON cannot hold: show it as Python does
            pass
    return _cut(repr(value), limit)


def _cut(text: str, limit: int) -> tuple[str, str | None]:
    if len(text) <= limit:
        return text, None
    note = f"[truncated: {len(text):,} characters, the first {limit:,} shown]"
    return f"{text[:limit]}\n{note}", note


def _blocks(blocks: tuple[Text | Image, ...], limit: int) -> tuple[Content, str | None]:
    """Blocks as they are, the text in them cut at ``limit`` characters in all."""
    kept: list[Text | Image] = []
    left, total = limit, sum(len(b.text) for b in blocks if isinstance(b, Text))
    for block in blocks:
        if isinstance(block, Text):
            if left <= 0:
                continue
            if len(block.text) > left:
                block = Text(block.text[:left])
            left -= len(block.text)
        kept.append(block)
    if total <= limit:
        return blocks, None
    note = f"[truncated: {total:,} characters, the first {limit:,} shown]"
    return (*kept, Text(note)), note


def _bytes(data: bytes) -> tuple[Content, str | None]:
    block = image_or_note(data)
    return ((block,) if isinstance(block, Image) else block), None


def image_or_note(data: bytes) -> Image | str:
    """``data`` as an image block if it is an image the API takes (PNG, JPEG, GIF or WebP, its type
    read from its bytes; at most MAX_IMAGE_BYTES and MAX_IMAGE_EDGE pixels a side), else a short
    note, for the model, saying why it is not sent."""
    kind = kinds.sniff(data)
    if kind in kinds.IMAGE_TYPES:
        size = kinds.image_size(data, kind)
        if len(data) <= MAX_IMAGE_BYTES and (size is None or max(size) <= MAX_IMAGE_EDGE):
            return _image(data, kind)
        return f"[{kinds.NAMES[kind]} of {len(data):,} bytes, too large to send; return a smaller image]"
    return (f"[{len(data):,} bytes of binary data ({kinds.describe(data)}), not shown; return text, JSON "
            "or an image instead]")


def _pil_image(picture: Any) -> tuple[Content, str | None]:
    note = None
    width, height = picture.size
    if max(width, height) > LONG_EDGE:
        scale = LONG_EDGE / max(width, height)
        smaller = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = picture.resize(smaller)
        note = f"[image scaled from {width}x{height} to {smaller[0]}x{smaller[1]} pixels]"
    buffer = io.BytesIO()
    try:
        picture.save(buffer, format="PNG")
    except (OSError, ValueError):  # CMYK, 32-bit, float...: modes PNG cannot hold
        buffer = io.BytesIO()
        picture = picture.convert("RGBA")
        picture.save(buffer, format="PNG")
    data, kind = buffer.getvalue(), kinds.PNG
    if len(data) > MAX_IMAGE_BYTES:  # a photo-like image: JPEG is a fraction of the size
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="JPEG", quality=85)
        data, kind = buffer.getvalue(), kinds.JPEG
    blocks: tuple[Text | Image, ...] = (_image(data, kind),)
    return ((*blocks, Text(note)) if note else blocks), note


def _figure(figure: Any) -> tuple[Content, str | None]:
    width, height = figure.get_size_inches()
    dpi = min(float(figure.dpi), LONG_EDGE / max(width, height, 1e-9))  # no more pixels than the model sees
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return (_image(buffer.getvalue(), kinds.PNG),), None


def _image(data: bytes, media_type: str) -> Image:
    return Image(media_type, base64.b64encode(data).decode("ascii"))


def _is_record(value: Any) -> bool:
    """A dataclass instance or a pydantic model: sent as its fields, in JSON."""
    is_dataclass = dataclasses.is_dataclass(value) and not isinstance(value, type)
    return is_dataclass or (callable(getattr(value, "model_dump", None)) and not isinstance(value, type))


def _plain(value: Any) -> Any:
    """``value`` with records turned into dicts (nested ones too), ready for json.dumps."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if callable(getattr(value, "model_dump", None)) and not isinstance(value, type):
        return value.model_dump(mode="json")
    return value


def _plain_or_str(value: Any) -> Any:
    """json.dumps's fallback: sets as lists, Enums as values, dates in ISO form, arrays as lists, else str."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if callable(getattr(value, "tolist", None)):  # numpy arrays and scalars
        try:
            return value.tolist()
        except Exception:
            pass  # not numpy's tolist after all
    plain = _plain(value)
    return str(value) if plain is value else plain
