"""provider: gemini, through the real google-genai SDK against FakeGemini: what is sent, what
streams back and when, usage, stop reasons, errors, interrupts and what it refuses."""

from __future__ import annotations

import sys
import threading

import pytest

import pipeline_nb
from pipeline_nb._llm import Cancelled, CancelToken, LLMRequest, ProviderError, create_provider
from pipeline_nb.content import Thinking, Usage
from pipeline_nb.testing import FakeGemini

MODEL = "gemini-2.5-flash"


def request(prompt: str = "hi", **kw) -> LLMRequest:
    kw.setdefault("max_tokens", 256)
    return LLMRequest("gemini", MODEL, ({"role": "user", "content": prompt},), **kw)


def run(yaml: str, **kw) -> pipeline_nb.PipelineRun:
    kw.setdefault("raise_on_error", False)
    return pipeline_nb.run(yaml, **kw)


def test_a_plain_run_streams_a_gemini_reply(fake_gemini: FakeGemini):
    fake_gemini.reply("Hello from Gemini", when="hi")
    deltas = []
    result = pipeline_nb.run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi, stream: true}]",
                             on_event=lambda e: deltas.append(e.data.content) if e.kind == "delta" else None)
    step = result.steps["a"]
    assert (step.status, step.text, step.model, step.stop_reason) == ("ok", "Hello from Gemini", MODEL, "end_turn")
    assert deltas == ["Hello ", "from ", "Gemini"]
    assert fake_gemini.requests[0].path == f"/v1/models/{MODEL}:streamGenerateContent?alt=sse"


def test_each_piece_is_emitted_as_it_arrives_and_a_cancel_returns_at_once(fake_gemini: FakeGemini):
    """The fake sends two chunks and then nothing for a minute: both pieces must reach ``emit``
    before the stream ends, and the cancel they trigger must end the call (not the minute)."""
    fake_gemini.reply("one two three four")
    fake_gemini.fault("stall", after=2, stall_seconds=60)
    provider, token, pieces, outcome = create_provider("gemini"), CancelToken(), [], []

    def emit(piece, kind="text", index=0):
        pieces.append((piece, kind, index))
        if len(pieces) == 2:
            threading.Thread(target=token.cancel).start()  # as an interrupt does, from another thread

    def call():
        try:
            provider.complete(request(stream=True), emit, token)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    worker.join(timeout=30)  # guards against a hang only; the stall lasts 60 s
    assert not worker.is_alive()
    assert pieces == [("one ", "text", 0), ("two ", "text", 0)]
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)


def test_usage_and_stop_reasons_map_to_the_projects(fake_gemini: FakeGemini):
    provider = create_provider("gemini")
    fake_gemini.reply("cut short", usage=(40, 2, 5), finish_reason="MAX_TOKENS", times=1)
    reply = provider.complete(request(), lambda *a, **k: None, CancelToken())
    assert reply.usage == Usage(input_tokens=40, output_tokens=7)  # thoughts are billed as output
    assert reply.stop_reason == "max_tokens"
    fake_gemini.reply("no", finish_reason="SAFETY", times=1)
    assert provider.complete(request(stream=True), lambda *a, **k: None, CancelToken()).stop_reason == "refusal"
    fake_gemini.reply("odd", finish_reason="OTHER", times=1)
    assert provider.complete(request(), lambda *a, **k: None, CancelToken()).stop_reason == "other"


def test_a_call_not_streamed_is_one_generate_content_and_emits_nothing(fake_gemini: FakeGemini):
    fake_gemini.reply("all at once")
    emitted = []
    reply = create_provider("gemini").complete(request(), lambda *a: emitted.append(a), CancelToken())
    assert (reply.text, emitted) == ("all at once", [])
    assert [r.path for r in fake_gemini.requests] == [f"/v1/models/{MODEL}:generateContent"]


def test_the_conversation_system_and_limits_map_to_gemini_fields(fake_gemini: FakeGemini):
    result = run("""
steps:
  - {id: a, provider: gemini, model: gemini-2.5-flash, prompt: first, system: Be terse., max_tokens: 77,
     stop_sequences: [END], params: {temperature: 0.2, seed: 7}, extra_body: {generationConfig: {candidateCount: 1}}}
  - {id: b, provider: gemini, model: gemini-2.5-flash, prompt: second, continue: a}
""")
    assert [s.status for s in result.steps.values()] == ["ok", "ok"]
    first, second = (r.body for r in fake_gemini.requests)
    assert first["systemInstruction"] == {"parts": [{"text": "Be terse."}], "role": "user"}
    assert first["generationConfig"] == {"maxOutputTokens": 77, "stopSequences": ["END"], "temperature": 0.2,
                                         "seed": 7, "candidateCount": 1}
    assert [(c["role"], c["parts"][0]["text"]) for c in second["contents"]] == [
        ("user", "first"), ("model", "Fake reply to: first"), ("user", "second")]


def test_structured_output_asks_for_json_and_parses_it(fake_gemini: FakeGemini):
    fake_gemini.reply('{"city": "Paris", "population": 2100000}')
    result = run("""
steps:
  - id: a
    provider: gemini
    model: gemini-2.5-flash
    prompt: The capital of France?
    output_schema: {type: object, properties: {city: {type: string}, population: {type: integer}},
                    required: [city, population]}
""")
    assert result.steps["a"].output == {"city": "Paris", "population": 2100000}
    config = fake_gemini.requests[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["required"] == ["city", "population"]


@pytest.mark.parametrize("fault, kind", [("rate_limit", "rate_limit_error"), ("unavailable", "overloaded_error")])
def test_a_429_or_503_is_retried_and_the_step_succeeds(fake_gemini: FakeGemini, monkeypatch, fault, kind):
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")  # the 429 must reach the step's retries
    fake_gemini.reply("made it")
    fake_gemini.fault(fault, retry_after=0)
    events = []
    result = run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi, stream: true, retries: 2}]",
                 on_event=events.append)
    step = result.steps["a"]
    assert (step.status, step.text, step.attempts) == ("ok", "made it", 2)
    assert [e.data.reason for e in events if e.kind == "retry"] == [kind]


def test_the_servers_retry_delay_is_honoured_as_retry_after(fake_gemini: FakeGemini, monkeypatch):
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")  # else the limiter absorbs the 429 and pauses 37 s
    fake_gemini.fault("rate_limit", retry_after=37)
    with pytest.raises(ProviderError) as raised:
        create_provider("gemini").complete(request(), lambda *a: None, CancelToken())
    assert (raised.value.type, raised.value.retryable, raised.value.retry_after) == ("rate_limit_error", True, 37.0)
    assert "RESOURCE_EXHAUSTED" in raised.value.message


def test_a_bad_request_or_unknown_model_is_not_retried(fake_gemini: FakeGemini):
    fake_gemini.fault("http", status=400, message="Invalid value at 'generation_config'")
    bad = run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi, retries: 3}]").steps["a"]
    assert (bad.status, bad.error.type, bad.attempts) == ("error", "invalid_request_error", 1)
    missing = run("steps: [{id: a, provider: gemini, model: not-gemini, prompt: hi, retries: 3}]").steps["a"]
    assert (missing.error.type, missing.attempts) == ("not_found_error", 1)
    assert "check the model name" in missing.error.message


def test_a_stream_cut_midway_is_retried_from_the_start(fake_gemini: FakeGemini):
    fake_gemini.reply("whole reply here")
    fake_gemini.fault("cut", after=1)
    result = run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi, stream: true, retries: 1,"
                 " retry_backoff: [0, 0]}]")
    step = result.steps["a"]
    assert (step.status, step.text, step.attempts) == ("ok", "whole reply here", 2)


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize("step_keys, named", [  # step keys it cannot honour are refused earlier: test_gemini_refusals
    ("params: {top_q: 1}", "top_q"),
    ("params: {thinking_config: {thinking_budget: 100}}", "thinking"),
])
def test_what_gemini_cannot_do_fails_the_step_with_the_key_to_remove(fake_gemini: FakeGemini, tmp_path, step_keys,
                                                                     named):
    notes = tmp_path / "notes.txt"
    notes.write_text("some notes")
    keys = step_keys.replace("{notes}", str(notes))
    result = run(f"steps: [{{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi, {keys}}}]",
                 namespace={"add": add})
    step = result.steps["a"]
    assert step.status == "error" and step.error.type == "invalid_request_error", step.error
    assert named in step.error.message
    assert fake_gemini.requests == []  # nothing was sent


def test_without_a_key_the_run_is_refused_before_any_call(fake_gemini: FakeGemini, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    result = run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi}]")
    error = result.steps["a"].error
    assert error.type == "missing_api_key" and "GEMINI_API_KEY" in error.message
    assert fake_gemini.requests == []
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")  # the SDK's other name for it works too
    assert run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi}]").steps["a"].status == "ok"


def test_without_google_genai_the_run_says_how_to_install_it(fake_gemini: FakeGemini, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.genai", None)  # what a missing package looks like to an import
    result = run("steps: [{id: a, provider: gemini, model: gemini-2.5-flash, prompt: hi}]")
    step = result.steps["a"]
    assert step.status == "error" and "pip install 'pipeline_nb[gemini]'" in step.error.message
    assert fake_gemini.requests == []


def test_thought_parts_stream_as_thinking_before_the_answer(fake_gemini: FakeGemini, monkeypatch):
    """Gemini sends thoughts only when asked (params cannot ask); a reply that has them still reads right."""
    from pipeline_nb.providers import _gemini

    reader = _gemini._Reader(lambda piece, kind, index: seen.append((piece, kind, index)))
    seen: list = []
    genai_types = pytest.importorskip("google.genai.types")
    chunk = genai_types.GenerateContentResponse.model_validate({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Let me think.", "thought": True}, {"text": "42"}]}, "finishReason": "STOP"}]})
    reader.read([chunk], None)
    reply = reader.reply(MODEL)
    assert seen == [("Let me think.", "thinking", 0), ("42", "text", 1)]
    assert reply.content[0] == Thinking("Let me think.") and reply.text == "42"
