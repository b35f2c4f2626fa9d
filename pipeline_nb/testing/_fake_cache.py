"""Prompt caching and cache diagnostics for :mod:`pipeline_nb.testing._fake_anthropic`.

Private. A block with ``cache_control`` (or the last block, for a top-level
``cache_control``) is a breakpoint. The prefix up to a breakpoint (tools, system,
messages, in that order) is keyed by a hash of its blocks, without their
``cache_control``, and the model. A request reads the longest prefix already cached and
writes every later breakpoint's prefix, each part under its breakpoint's TTL (``"5m"``
unless ``ttl`` says ``"1h"``); ``input_tokens`` is what is left. An entry lives for its
TTL after its last write or read, like the real cache; there is no minimum length.

A request that carries ``diagnostics`` leaves a fingerprint (block hashes and token
estimates) under its response's id; one naming that id in
``diagnostics.previous_message_id`` gets ``diagnostics.cache_miss_reason`` for the first
place the two prompts part (model, tools, system, messages, or only other settings such
as ``thinking``: ``"unavailable"``), or ``diagnostics: null`` when the earlier prompt is a
prefix of this one: the comparison is about the request's structure, whether the cache
hit or not, as in the real API.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ._fake_content import PromptBlock, prompt_blocks

_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class CacheUsage:
    """The cache part of a reply's ``usage``; ``uncached`` is None when the request marked
    no breakpoint (the fake then estimates ``input_tokens`` as it always has)."""

    read: int = 0
    written_5m: int = 0
    written_1h: int = 0
    uncached: Optional[int] = None

    def fields(self) -> dict[str, Any]:
        return {
            "cache_creation_input_tokens": self.written_5m + self.written_1h,
            "cache_read_input_tokens": self.read,
            "cache_creation": {"ephemeral_5m_input_tokens": self.written_5m,
                               "ephemeral_1h_input_tokens": self.written_1h},
        }


@dataclass(frozen=True)
class _Fingerprint:
    model: str
    blocks: tuple[tuple[str, str, int], ...]  # (section, hash, tokens)
    settings: str


def _ttl(block: PromptBlock) -> str:
    assert block.cache_control is not None
    return "1h" if block.cache_control.get("ttl") == "1h" else "5m"


class PromptCache:
    """Cached prefixes and diagnostics fingerprints; the caller holds the lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}  # prefix hash -> when it lapses
        self._fingerprints: dict[str, _Fingerprint] = {}

    def clear(self) -> None:
        """Forget every cached prefix (fingerprints stay)."""
        self._expiry.clear()

    def forget_all(self) -> None:
        self._expiry.clear()
        self._fingerprints.clear()

    def account(self, body: dict[str, Any]) -> CacheUsage:
        """Read and write the cache for ``body``; what its usage reports."""
        blocks = prompt_blocks(body)
        marks = [i for i, b in enumerate(blocks) if b.cache_control is not None]
        if not marks:
            return CacheUsage()
        running = hashlib.sha256(str(body.get("model")).encode())
        keys, upto, total = {}, [], 0
        for i, block in enumerate(blocks):
            running.update(block.key.encode() + b"\n")
            total += block.tokens
            upto.append(total)
            if i in marks:
                keys[i] = running.hexdigest()
        now = self._clock()
        hits = [i for i in marks if self._expiry.get(keys[i], 0.0) > now]
        read_at = max(hits, default=-1)
        read = upto[read_at] if read_at >= 0 else 0
        written = {"5m": 0, "1h": 0}
        before = read
        for i in marks:
            ttl = _ttl(blocks[i])
            if i > read_at:
                written[ttl] += upto[i] - before
                before = upto[i]
            if i >= read_at:  # written now, or read now: lives for its TTL from now
                self._expiry[keys[i]] = now + _TTL_SECONDS[ttl]
        return CacheUsage(read, written["5m"], written["1h"], total - before)

    def diagnose(self, body: dict[str, Any], msg_id: str) -> Optional[dict[str, Any]]:
        """Store ``body``'s fingerprint under ``msg_id``; the ``diagnostics`` object for it."""
        blocks = prompt_blocks(body)
        mine = _Fingerprint(
            str(body.get("model")),
            tuple((b.section, hashlib.sha256(b.key.encode()).hexdigest(), b.tokens) for b in blocks),
            json.dumps([body.get("thinking"), body.get("tool_choice")], sort_keys=True),
        )
        self._fingerprints[msg_id] = mine
        previous_id = (body.get("diagnostics") or {}).get("previous_message_id")
        if previous_id is None:
            return None
        before = self._fingerprints.get(previous_id)
        if before is None:
            return {"cache_miss_reason": {"type": "previous_message_not_found"}}
        reason = _first_difference(before, mine)
        return None if reason is None else {"cache_miss_reason": reason}


def _first_difference(before: _Fingerprint, now: _Fingerprint) -> Optional[dict[str, Any]]:
    total = sum(tokens for _, _, tokens in before.blocks)
    if before.model != now.model:
        return {"type": "model_changed", "cache_missed_input_tokens": total}
    seen = 0
    for i, (section, digest, tokens) in enumerate(before.blocks):
        if i >= len(now.blocks) or now.blocks[i][:2] != (section, digest):
            # a block added to or dropped from an earlier section shows as a change there
            there = section if i >= len(now.blocks) else min(section, now.blocks[i][0], key=_SECTIONS.index)
            return {"type": f"{there}_changed", "cache_missed_input_tokens": total - seen}
        seen += tokens
    if before.settings != now.settings:
        return {"type": "unavailable"}
    return None


_SECTIONS = ("tools", "system", "messages")
