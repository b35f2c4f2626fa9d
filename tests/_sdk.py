"""The real SDK's two ways of making one request, for the FakeAnthropic tests."""

from __future__ import annotations

from typing import Any

import anthropic

MODEL = "claude-sonnet-5-5"


def call(client: anthropic.Anthropic, streamed: bool, messages: list[dict[str, Any]],
         **kw: Any) -> tuple[anthropic.types.Message, list[Any]]:
    """One request, streamed or not: the final message and the stream's events ([] if not streamed)."""
    kw.setdefault("model", MODEL)
    kw.setdefault("max_tokens", 4096)
    if not streamed:
        return client.messages.create(messages=messages, **kw), []
    with client.messages.stream(messages=messages, **kw) as stream:
        events = list(stream)
        return stream.get_final_message(), events
