"""FakeGemini speaks the Gemini API's wire format: the real google-genai SDK reads its streams,
answers and errors unchanged."""

from __future__ import annotations

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from pipeline_nb.testing import FakeGemini

MODEL = "gemini-2.5-flash"


@pytest.fixture
def client(fake_gemini: FakeGemini) -> genai.Client:
    return genai.Client(api_key="gemini-SECRET-key", http_options=types.HttpOptions(base_url=fake_gemini.base_url))


def test_a_stream_arrives_as_one_chunk_per_piece_and_the_last_carries_finish_reason_and_usage(fake_gemini, client):
    fake_gemini.reply("ignored", chunks=["High ", "tide ", "at noon."], usage=(11, 3))
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="When are the tides?"))
    assert [c.text for c in chunks] == ["High ", "tide ", "at noon."]
    assert [c.candidates[0].finish_reason for c in chunks] == [None, None, types.FinishReason.STOP]
    last = chunks[-1]
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (11, 3)
    assert last.model_version == MODEL and last.response_id
    request = fake_gemini.requests[0]
    assert request.path == f"/v1/models/{MODEL}:streamGenerateContent?alt=sse" and request.stream
    assert request.prompt == "When are the tides?"


def test_the_api_key_is_recorded_redacted(fake_gemini, client):
    client.models.generate_content(model=MODEL, contents="hi")
    headers = fake_gemini.requests[0].headers
    assert headers["x-goog-api-key"] == "<redacted>"
    assert "gemini-SECRET-key" not in repr(fake_gemini.requests)


def test_a_whole_answer_a_token_count_and_the_request_body_as_sent(fake_gemini, client):
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=64, stop_sequences=["END"],
                                         response_mime_type="application/json",
                                         response_json_schema={"type": "object"})
    fake_gemini.reply('{"ok": true}')
    answer = client.models.generate_content(model=MODEL, contents="json please", config=config)
    assert answer.text == '{"ok": true}'
    body = fake_gemini.requests[0].body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}], "role": "user"}
    assert body["generationConfig"] == {"maxOutputTokens": 64, "stopSequences": ["END"],
                                        "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}
    counted = client.models.count_tokens(model=MODEL, contents="json please").total_tokens
    assert counted == len("json please") // 4 + 1
    assert fake_gemini.requests[1].path.endswith(":countTokens")


def test_stop_sequences_and_max_output_tokens_end_the_reply_as_the_api_does(fake_gemini, client):
    fake_gemini.reply("one two three END four")
    stopped = client.models.generate_content(model=MODEL, contents="x", config={"stop_sequences": ["END"]})
    assert (stopped.text, stopped.candidates[0].finish_reason) == ("one two three ", types.FinishReason.STOP)
    cut = client.models.generate_content(model=MODEL, contents="x", config={"max_output_tokens": 2})
    assert (cut.text, cut.candidates[0].finish_reason) == ("one two ", types.FinishReason.MAX_TOKENS)


def test_errors_come_in_googles_format(fake_gemini, client):
    fake_gemini.fault("rate_limit", retry_after=7)
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="x")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.details["error"]["details"][0]["retryDelay"] == "7s"
    fake_gemini.fault("unavailable")
    with pytest.raises(errors.ServerError) as raised:
        client.models.generate_content(model=MODEL, contents="x")
    assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="claude-sonnet-5-5", contents="x")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
    with pytest.raises(errors.ClientError) as raised:  # a schema without the JSON mime type
        client.models.generate_content(model=MODEL, contents="x", config={"response_json_schema": {"type": "object"}})
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")


def test_mid_stream_faults_raise_what_the_sdk_raises_for_them(fake_gemini, client):
    fake_gemini.reply("a b c d e")
    fake_gemini.fault("stream_error", after=2)
    seen = []
    with pytest.raises(errors.ServerError) as raised:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="x"):
            seen.append(chunk.text)
    assert seen == ["a ", "b "] and raised.value.status == "UNAVAILABLE"
    fake_gemini.fault("cut", after=1)
    seen.clear()
    with pytest.raises(httpx2.RemoteProtocolError):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="x"):
            seen.append(chunk.text)
    assert seen == ["a "]
    assert "".join(c.text for c in client.models.generate_content_stream(model=MODEL, contents="x")) == "a b c d e"
