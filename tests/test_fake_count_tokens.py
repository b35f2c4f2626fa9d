"""Token counting: FakeAnthropic's /v1/messages/count_tokens through the real SDK, and the providers' count_tokens."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx2
import pytest

from pipeline_nb._llm import CancelToken, LLMRequest, ProviderError, TokenCounter, no_emit
from pipeline_nb.providers._claude import ClaudeProvider
from pipeline_nb.providers._mock import MockProvider
from pipeline_nb.testing import FakeAnthropic

MODEL = "claude-sonnet-5-5"
COUNT_PATH = "/v1/messages/count_tokens"
PROMPT = "How many tides does the sea have in a day, and why does the moon matter?"


def user(*content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content[0] if len(content) == 1 else list(content)}]


def text_document(text: str) -> dict[str, Any]:
    return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}


# -- the fake's endpoint -----------------------------------------------------------------------

@pytest.mark.parametrize("messages", [
    user(PROMPT),
    user(text_document("The moon pulls the sea. " * 40), {"type": "text", "text": PROMPT}),
], ids=["prompt", "prompt and a document"])
def test_the_count_is_what_a_message_reports_as_input_tokens(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                             messages: list[dict[str, Any]]) -> None:
    counted = client.messages.count_tokens(model=MODEL, messages=messages, system="Answer briefly.")
    message = client.messages.create(model=MODEL, max_tokens=64, messages=messages, system="Answer briefly.")
    assert counted.input_tokens == message.usage.input_tokens > 10


def test_with_a_cache_breakpoint_the_count_holds_the_cached_part_and_touches_no_cache(
        fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You know every tide table by heart. " * 30, "cache_control": {"type": "ephemeral"}}]
    counted = client.messages.count_tokens(model=MODEL, messages=user(PROMPT), system=system).input_tokens
    first = client.messages.create(model=MODEL, max_tokens=64, messages=user(PROMPT), system=system).usage
    assert first.cache_creation_input_tokens > 0, "counting wrote nothing to the cache"
    assert counted == first.input_tokens + first.cache_creation_input_tokens + first.cache_read_input_tokens
    again = client.messages.count_tokens(model=MODEL, messages=user(PROMPT), system=system).input_tokens
    second = client.messages.create(model=MODEL, max_tokens=64, messages=user(PROMPT), system=system).usage
    assert second.cache_read_input_tokens > 0
    assert again == counted == second.input_tokens + second.cache_read_input_tokens + second.cache_creation_input_tokens


def test_counts_are_recorded_and_use_up_no_reply(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("High tide at noon.", times=1)
    client.messages.count_tokens(model=MODEL, messages=user(PROMPT))
    message = client.messages.create(model=MODEL, max_tokens=64, messages=user(PROMPT))
    assert message.content[0].text == "High tide at noon."
    count, sent = fake.requests
    assert (count.method, count.path, count.prompt, count.stream) == ("POST", COUNT_PATH, PROMPT, False)
    assert count.body == {"model": MODEL, "messages": user(PROMPT)}
    assert "<redacted>" in count.headers.values() and sent.path == "/v1/messages"


@pytest.mark.parametrize(("extra", "problem"), [
    ({"max_tokens": 100}, "max_tokens: Extra inputs are not permitted"),
    ({"stop_sequences": ["x"]}, "stop_sequences: Extra inputs are not permitted"),
    ({"output_config": {"effort": "huge"}}, "output_config.effort"),
    ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "budget_tokens: Input should be greater than or equal to 1024"),
    ({"tool_choice": {"type": "tool", "name": "nowhere"}}, "tool_choice"),
])
def test_requests_are_refused_as_the_api_refuses_them(client: anthropic.Anthropic, extra: dict[str, Any],
                                                      problem: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model=MODEL, messages=user(PROMPT), extra_body=extra)
    assert problem in caught.value.message


def test_a_missing_model_or_key_is_refused(fake: FakeAnthropic) -> None:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError, match="model: Field required"):
            client.messages.count_tokens(model=anthropic.omit, messages=user(PROMPT))  # type: ignore[arg-type]
    answer = httpx2.post(fake.base_url + COUNT_PATH, json={"model": MODEL, "messages": user(PROMPT)})
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"


def test_only_an_http_fault_that_names_the_endpoint_applies(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("rate_limit")  # for the message requests, as always
    fake.fault("rate_limit", when=lambda r: r.path == COUNT_PATH, retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.count_tokens(model=MODEL, messages=user(PROMPT))
    assert caught.value.response.headers["retry-after"] == "3"
    assert client.messages.count_tokens(model=MODEL, messages=user(PROMPT)).input_tokens > 0
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=MODEL, max_tokens=64, messages=user(PROMPT))


# -- the providers ----------------------------------------------------------------------------

def request(base_url: str | None = None, **kw: Any) -> LLMRequest:
    kw.setdefault("messages", ({"role": "user", "content": PROMPT},))
    return LLMRequest(kw.pop("provider", "claude"), MODEL, max_tokens=kw.pop("max_tokens", 300), base_url=base_url,
                      **kw)


def test_claude_counts_with_the_api_sending_only_what_count_tokens_takes(fake_anthropic: FakeAnthropic) -> None:
    provider = ClaudeProvider()
    sent = request(fake_anthropic.base_url, system="Answer briefly.", stop_sequences=("END",),
                   params={"metadata": {"user_id": "u1"}, "output_config": {"effort": "low"}})
    assert isinstance(provider, TokenCounter) and provider.counts_exactly
    tokens = provider.count_tokens(sent)
    reply = provider.complete(sent, no_emit, CancelToken())
    assert tokens == reply.usage.input_tokens
    count, _ = fake_anthropic.requests
    assert count.path == COUNT_PATH
    assert count.body == {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                          "system": "Answer briefly.", "output_config": {"effort": "low"}}


def test_claude_classifies_a_failed_count_like_a_failed_call(fake_anthropic: FakeAnthropic,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake_anthropic.fault("rate_limit", when=lambda r: r.path == COUNT_PATH, retry_after=2)
    with pytest.raises(ProviderError) as caught:
        ClaudeProvider().count_tokens(request(fake_anthropic.base_url))
    assert (caught.value.type, caught.value.retryable, caught.value.retry_after) == ("rate_limit_error", True, 2.0)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ProviderError) as caught:
        ClaudeProvider().count_tokens(request(fake_anthropic.base_url))
    assert caught.value.type == "missing_api_key" and not caught.value.retryable


def test_the_mock_estimates_offline_as_its_replies_count(fake_anthropic: FakeAnthropic) -> None:
    mock = MockProvider()
    plain = request(provider="mock")
    assert isinstance(mock, TokenCounter) and not mock.counts_exactly
    assert mock.count_tokens(plain) == mock.complete(plain, no_emit, CancelToken()).usage.input_tokens > 0
    document = text_document("word " * 400)
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                       "data": base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()}}
    richer = request(system="Answer briefly, in five words.",
                     messages=({"role": "user", "content": [document, png, {"type": "text", "text": PROMPT}]},))
    assert mock.count_tokens(richer) > mock.count_tokens(plain) + 5 + 400 // 4 + 1_000  # system, document, image
    assert mock.count_tokens(richer) == mock.count_tokens(richer)
    assert fake_anthropic.requests == []
