"""What the real Messages API refuses with a 400 ``invalid_request_error``, and how it says it.

Private to :mod:`pipeline_nb.testing.fake_anthropic`. :func:`request_problem` returns the
message of the first problem found, or None. It checks the required fields, ``thinking``
(``budget_tokens`` >= 1,024 and below ``max_tokens``), ``output_config.effort``, documents
and images (source, media type, base64 data that is what its media type says), the
``thinking`` blocks sent back in assistant turns (each must carry a signature the fake
issued for that very thinking text), ``cache_control`` (type, ttl, at most 4) and
``diagnostics``. Messages follow the real API's wording where it is known.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

from ._fake_content import decode_base64, prompt_blocks

#: Is ``(thinking, signature)`` a pair the fake issued?
Issued = Callable[[str, str], bool]

REQUIRED = ("model", "max_tokens", "messages")
MIN_BUDGET = 1024
EFFORTS = ("low", "medium", "high", "xhigh", "max")
MAX_CACHE_BREAKPOINTS = 4
_THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
_DISPLAYS = (None, "summarized", "omitted")
_IMAGE_TYPES = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",),
                "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",)}
_DOCUMENT_SOURCES = ("base64", "text", "content", "url", "file")
_IMAGE_SOURCES = ("base64", "url", "file")
_TTLS = ("5m", "1h")
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"


def _tags(values: tuple[Any, ...]) -> str:
    quoted = [repr(v) for v in values if v is not None]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def request_problem(body: dict[str, Any], issued: Issued) -> Optional[str]:
    """Why the real API would refuse ``body``, or None."""
    for name in REQUIRED:
        if name not in body:
            return f"{name}: Field required"
    if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    if not isinstance(body["messages"], list):
        return "messages: Input should be a valid list"
    for check in (_thinking_problem, _effort_problem, _cache_problem, _diagnostics_problem):
        problem = check(body)
        if problem:
            return problem
    return _content_problem(body, issued)


def _thinking_problem(body: dict[str, Any]) -> Optional[str]:
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in _THINKING_TYPES:
        return (f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
                f"{_tags(_THINKING_TYPES)}")
    if thinking.get("display") not in _DISPLAYS:
        return f"thinking.{kind}.display: Input should be {_tags(_DISPLAYS)}"
    if kind != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if budget is None:
        return "thinking.enabled.budget_tokens: Field required"
    if not _is_int(budget):
        return "thinking.enabled.budget_tokens: Input should be a valid integer"
    if budget < MIN_BUDGET:
        return f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}"
    if budget >= body["max_tokens"]:
        return ("`max_tokens` must be greater than `thinking.budget_tokens`. "
                f"Please consult our documentation at {_DOCS}")
    return None


def _effort_problem(body: dict[str, Any]) -> Optional[str]:
    config = body.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return "output_config: Input should be a valid dictionary"
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        return f"output_config.effort: Input should be {_tags(EFFORTS)}"
    return None


def _cache_problem(body: dict[str, Any]) -> Optional[str]:
    marks = [b.cache_control for b in prompt_blocks(body) if b.cache_control is not None]
    for cc in marks:
        if cc.get("type") != "ephemeral":
            return f"cache_control.type: Input should be 'ephemeral', not {cc.get('type')!r}"
        if cc.get("ttl", "5m") not in _TTLS:
            return f"cache_control.ttl: Input should be {_tags(_TTLS)}"
    if len(marks) > MAX_CACHE_BREAKPOINTS:
        return f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}."
    return None


def _diagnostics_problem(body: dict[str, Any]) -> Optional[str]:
    if "diagnostics" not in body or body["diagnostics"] is None:
        return None
    diagnostics = body["diagnostics"]
    if not isinstance(diagnostics, dict):
        return "diagnostics: Input should be a valid dictionary"
    previous = diagnostics.get("previous_message_id")
    if previous is not None and not isinstance(previous, str):
        return "diagnostics.previous_message_id: Input should be a valid string"
    return None


def _blocks(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for i, msg in enumerate(body["messages"]):
        content = msg.get("content") if isinstance(msg, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict):
                yield f"messages.{i}.content.{j}", str(msg.get("role")), block


def _content_problem(body: dict[str, Any], issued: Issued) -> Optional[str]:
    for where, role, block in _blocks(body):
        kind = block.get("type")
        if kind == "thinking" and role == "assistant":
            problem = _signature_problem(where, block, issued)
        elif kind == "document":
            problem = _source_problem(f"{where}.document", block, _DOCUMENT_SOURCES)
        elif kind == "image":
            problem = _source_problem(f"{where}.image", block, _IMAGE_SOURCES)
        else:
            problem = None
        if problem:
            return problem
    return None


def _signature_problem(where: str, block: dict[str, Any], issued: Issued) -> Optional[str]:
    thinking, signature = block.get("thinking"), block.get("signature")
    if not isinstance(signature, str):
        return f"{where}.thinking.signature: Field required"
    if not isinstance(thinking, str) or not issued(thinking, signature):
        return f"{where}: Invalid `signature` in `thinking` block"
    return None


def _source_problem(where: str, block: dict[str, Any], sources: tuple[str, ...]) -> Optional[str]:
    source = block.get("source")
    if not isinstance(source, dict):
        return f"{where}.source: Field required"
    stype = source.get("type")
    if stype not in sources:
        return (f"{where}.source: Input tag {stype!r} found using 'type' does not match any of the "
                f"expected tags: {_tags(sources)}")
    media = source.get("media_type")
    if stype == "text":
        if media != "text/plain":
            return f"{where}.source.text.media_type: Input should be 'text/plain'"
        if not isinstance(source.get("data"), str):
            return f"{where}.source.text.data: Input should be a valid string"
    if stype != "base64":
        return None
    image = where.endswith(".image")
    allowed = tuple(_IMAGE_TYPES) if image else ("application/pdf",)
    if media not in allowed:
        return f"{where}.source.base64.media_type: Input should be {_tags(allowed)}"
    data = decode_base64(source.get("data"))
    if data is None:
        return f"{where}.source.base64.data: Input should be valid base64 data"
    if not image and not data.startswith(b"%PDF-"):
        return f"{where}.source.base64.data: The PDF specified was not valid."
    if image and not (data.startswith(_IMAGE_TYPES[media]) and (media != "image/webp" or data[8:12] == b"WEBP")):
        return f"{where}.source.base64.data: Image does not match the provided media type {media}"
    return None
