"""FakeAnthropic, proven through the real anthropic SDK (max_retries=0 unless stated)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import anthropic
import httpx2
import pytest

from pipeline_nb.testing._fake_anthropic import FakeAnthropic, RecordedRequest

MODEL = "claude-sonnet-5-5"
KEY = "test-key-SECRET-123"  # the same as the conftest client sends



def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def create(client: anthropic.Anthropic, prompt: str, **kw: Any) -> anthropic.types.Message:
    return client.messages.create(model=MODEL, max_tokens=100, messages=user(prompt), **kw)


def stream_into(client: anthropic.Anthropic, prompt: str, got: list[str]) -> anthropic.types.Message:
    """Stream `prompt`, appending each text delta to `got` as it arrives."""
    with client.messages.stream(model=MODEL, max_tokens=100, messages=user(prompt)) as stream:
        for text in stream.text_stream:
            got.append(text)
        return stream.get_final_message()


def raw_post(fake: FakeAnthropic, body: Any, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(fake.base_url + "/v1/messages", content=json.dumps(body), headers=headers)


# -- replies -----------------------------------------------------------------------------------

def test_non_stream_reply(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Hello world", when="tides")
    msg = create(client, "Tell me about tides")
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello world"
    assert msg.id == "msg_fake_1" and msg.model == MODEL and msg.role == "assistant"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (len("Tell me about tides") // 4 + 1, 2)
    req = fake.requests[0]
    assert (req.method, req.path, req.stream, req.prompt) == ("POST", "/v1/messages", False, "Tell me about tides")
    assert req.body["model"] == MODEL and req.body["max_tokens"] == 100


def test_stream_reply(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Hello streaming world", usage=(10, 5))
    got: list[str] = []
    final = stream_into(client, "hi", got)
    assert got == ["Hello ", "streaming ", "world"]
    assert final.content[0].text == "Hello streaming world"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)
    assert fake.requests[0].stream is True


def test_raw_sse_wire_format(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("a b", chunks=["a ", "b"])
    with client.messages.create(model=MODEL, max_tokens=9, messages=user("x"), stream=True) as events:
        kinds = [e.type for e in events]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    r = raw_post(fake, {"model": MODEL, "max_tokens": 9, "messages": user("x"), "stream": True}, {"x-api-key": "k"})
    assert r.headers["transfer-encoding"] == "chunked" and r.headers["request-id"].startswith("req_")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "event: ping\ndata: " in r.text
    assert 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' in r.text


def test_default_reply_echoes_prompt(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    assert create(client, "Summarise {{doc}} -> rendered").content[0].text == "Fake reply to: Summarise {{doc}} -> rendered"
    blocks = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
              {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}]}]
    msg = client.messages.create(model=MODEL, max_tokens=9, messages=blocks)
    assert msg.content[0].text == "Fake reply to: part one\ntwo"
    assert fake.requests[-1].prompt == "part one\ntwo"


def test_when_substring_callable_times_and_order(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("once", when="alpha", times=1)
    fake.reply("always alpha", when="alpha")
    fake.reply("by callable", when=lambda req: req.body.get("system") == "sys")
    fake.reply("fallback")
    assert create(client, "alpha 1").content[0].text == "once"
    assert create(client, "alpha 2").content[0].text == "always alpha"
    assert create(client, "alpha 3").content[0].text == "always alpha"
    assert create(client, "beta", system="sys").content[0].text == "by callable"
    assert create(client, "beta").content[0].text == "fallback"


def test_model_stop_reason_and_stop_sequences(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("one two three END four", when="seq")
    fake.reply("long", when="max", stop_reason="max_tokens", model="claude-haiku-5-5")
    msg = create(client, "seq", stop_sequences=["END", "zzz"])
    assert (msg.content[0].text, msg.stop_reason, msg.stop_sequence) == ("one two three ", "stop_sequence", "END")
    got: list[str] = []
    with client.messages.stream(model=MODEL, max_tokens=9, messages=user("seq"), stop_sequences=["two"]) as s:
        got = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(got) == "one " and final.stop_reason == "stop_sequence" and final.stop_sequence == "two"
    msg = create(client, "max")
    assert (msg.stop_reason, msg.model) == ("max_tokens", "claude-haiku-5-5")


def test_structured_output_text_is_used_as_is(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply('{"answer": 42}')
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    msg = create(client, "q", output_config={"format": {"type": "json_schema", "schema": schema}})
    assert json.loads(msg.content[0].text) == {"answer": 42}
    assert fake.requests[0].body["output_config"]["format"]["type"] == "json_schema"


# -- HTTP faults -------------------------------------------------------------------------------

def test_rate_limit_with_retry_after(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("rate_limit", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as ei:
        stream_into(client, "x", [])
    err = ei.value
    assert err.status_code == 429 and err.type == "rate_limit_error"
    assert err.response.headers["retry-after"] == "7"
    assert err.request_id is not None and err.request_id.startswith("req_")
    assert create(client, "x").content[0].text == "Fake reply to: x"  # times=1: consumed


def test_overloaded_http_and_server_error(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("overloaded_http")
    fake.fault("server_error")
    with pytest.raises(anthropic.APIStatusError) as ei:
        create(client, "x")
    assert ei.value.status_code == 529 and ei.value.type == "overloaded_error"
    assert isinstance(ei.value, getattr(anthropic, "OverloadedError", anthropic.APIStatusError))
    with pytest.raises(anthropic.InternalServerError) as ei2:
        stream_into(client, "x", [])
    assert ei2.value.status_code == 500 and ei2.value.type == "api_error"


@pytest.mark.parametrize("status,cls", [
    (400, anthropic.BadRequestError), (401, anthropic.AuthenticationError),
    (403, anthropic.PermissionDeniedError), (404, anthropic.NotFoundError),
])
def test_http_status_classes(fake: FakeAnthropic, client: anthropic.Anthropic, status: int, cls: type) -> None:
    fake.fault("http", status=status, message="custom message")
    with pytest.raises(cls) as ei:
        create(client, "x")
    assert ei.value.status_code == status and ei.value.api_message == "custom message"


def test_413_error_type_and_custom_type(fake: FakeAnthropic) -> None:
    fake.fault("http", status=413)
    fake.fault("http", status=500, error_type="overloaded_error")
    body = {"model": MODEL, "max_tokens": 1, "messages": user("x")}
    r = raw_post(fake, body, {"x-api-key": "k"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert r.json()["request_id"] == r.headers["request-id"]
    assert raw_post(fake, body, {"x-api-key": "k"}).json()["error"]["type"] == "overloaded_error"


def test_sdk_retries_see_one_fault_per_attempt(fake: FakeAnthropic) -> None:
    fake.fault("overloaded_http", times=2, retry_after=0.01)
    fake.reply("finally", times=1)
    with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=2) as client:
        assert create(client, "x").content[0].text == "finally"
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]


def test_missing_auth_and_bad_body(fake: FakeAnthropic) -> None:
    body = {"model": MODEL, "max_tokens": 1, "messages": user("x")}
    r = raw_post(fake, body, {})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert "request-id" in r.headers
    assert raw_post(fake, body, {"authorization": "Bearer tok"}).status_code == 200
    r = raw_post(fake, {"model": MODEL, "messages": []}, {"x-api-key": "k"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


# -- stream faults -----------------------------------------------------------------------------

def test_overloaded_mid_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("one two three four")
    fake.fault("overloaded", after=2)
    got: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        stream_into(client, "x", got)
    assert ei.value.status_code == 200 and ei.value.type == "overloaded_error"
    assert got == ["one ", "two "]
    assert stream_into(client, "x", []).stop_reason == "end_turn"  # connection reusable, fault consumed


def test_cut_raises_remote_protocol_error(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("one two three four")
    fake.fault("cut", after=3)
    got: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        stream_into(client, "x", got)
    assert got == ["one ", "two ", "three "]


def test_close_ends_silently_without_stop_reason(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("one two three four")
    fake.fault("close", after=1)
    got: list[str] = []
    final = stream_into(client, "x", got)
    assert got == ["one "] and final.stop_reason is None
    assert final.content[0].text == "one "


def test_stall_hits_client_read_timeout(fake: FakeAnthropic) -> None:
    fake.fault("stall", after=1)
    got: list[str] = []
    t0 = time.monotonic()
    with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=0.5) as client:
        with pytest.raises(httpx2.ReadTimeout):  # not mapped to anthropic.APITimeoutError mid-body
            stream_into(client, "x", got)
    assert 0.4 < time.monotonic() - t0 < 3
    assert got == ["Fake "]


def test_malformed_event_raises_json_error(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("malformed", after=2)
    got: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        stream_into(client, "x", got)
    assert got == ["Fake ", "reply "]


def test_stream_faults_skip_non_stream_and_keep_replies(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("cut", when="flaky", after=0)
    fake.reply("the answer", when="flaky", times=1)
    assert create(client, "flaky").content[0].text == "the answer"  # non-stream: fault ignored, reply used
    fake.reply("second answer", when="flaky", times=1)
    with pytest.raises(httpx2.RemoteProtocolError):
        stream_into(client, "flaky", [])
    got: list[str] = []
    assert stream_into(client, "flaky", got).stop_reason == "end_turn"
    assert "".join(got) == "second answer"  # the faulted attempt did not use up the reply


def test_fault_when_callable_and_times_none(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("rate_limit", when=lambda r: r.stream, times=None)
    for _ in range(3):
        with pytest.raises(anthropic.RateLimitError):
            stream_into(client, "x", [])
    assert create(client, "x").content[0].text == "Fake reply to: x"
    with pytest.raises(ValueError):
        fake.fault("nope")
    with pytest.raises(ValueError):
        fake.fault("http")


# -- bookkeeping -------------------------------------------------------------------------------

def test_keys_are_redacted(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    create(client, "x")
    raw_post(fake, {"model": MODEL, "max_tokens": 1, "messages": user("y")}, {"x-api-key": KEY})
    sdk_req, raw_req = fake.requests
    assert sdk_req.headers["authorization"] == "<redacted>"
    assert raw_req.headers["x-api-key"] == "<redacted>"
    assert KEY not in repr(fake.requests)
    assert isinstance(sdk_req, RecordedRequest)


def test_max_concurrent_with_three_slow_streams(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("a b c d", delay=0.1)
    barrier = threading.Barrier(3)
    results: list[str] = []

    def work() -> None:
        barrier.wait()
        got: list[str] = []
        stream_into(client, "x", got)
        results.append("".join(got))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == ["a b c d"] * 3
    assert fake.max_concurrent == 3


def test_clear(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("scripted")
    fake.fault("rate_limit", when="boom")
    create(client, "x")
    fake.clear()
    assert fake.requests == [] and fake.max_concurrent == 0
    assert create(client, "boom").content[0].text == "Fake reply to: boom"
    for _ in range(20):  # a finished request is never still counted as active
        create(client, "x")
        stream_into(client, "y", [])
        fake.clear()
        assert fake.max_concurrent == 0


def test_models_list(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert fake.requests[-1].method == "GET"


def test_stop_is_prompt_with_stalled_stream_and_frees_port() -> None:
    fake = FakeAnthropic().start()
    port = int(fake.base_url.rsplit(":", 1)[1])
    fake.fault("stall", after=1)
    client = anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=30)
    started = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with client.messages.stream(model=MODEL, max_tokens=9, messages=user("x")) as s:
                for _ in s.text_stream:
                    started.set()
        except BaseException as exc:  # noqa: BLE001 - the stream is expected to break
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    assert started.wait(5)
    t0 = time.monotonic()
    fake.stop()
    assert time.monotonic() - t0 < 2
    t.join(5)
    client.close()
    assert not t.is_alive()
    assert errors and isinstance(errors[0], httpx2.RemoteProtocolError)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    fake.stop()  # idempotent
    with pytest.raises(RuntimeError):
        fake.base_url


def test_20k_deltas_stream(fake: FakeAnthropic) -> None:
    fake.reply("", chunks=["w "] * 20_000)
    t0 = time.monotonic()
    r = raw_post(fake, {"model": MODEL, "max_tokens": 1, "messages": user("x"), "stream": True}, {"x-api-key": "k"})
    assert r.text.count("event: content_block_delta") == 20_000
    assert time.monotonic() - t0 < 5


def test_when_callable_may_read_fake_state(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("third", when=lambda req: len(fake.requests) >= 3)
    assert [create(client, "x").content[0].text for _ in range(3)] == ["Fake reply to: x"] * 2 + ["third"]
