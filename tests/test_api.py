"""The Python API: ``pipeline_nb.run`` and ``pipeline_nb.invoke``, on the mock and through
the real anthropic SDK against FakeAnthropic."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb.streaming import BufferHandler, Event
from pipeline_nb.testing import FakeAnthropic

TEXT = """
name: api
defaults: {mock_delay: 0}
vars: {topic: from-vars}
steps:
  - id: a
    prompt: "About {{ topic }}"
    stream: true
"""


def prompt_of(run: pipeline_nb.PipelineRun, step: str = "a") -> str:
    """The prompt the mock provider received (it echoes it)."""
    return run.steps[step].text.split("You asked: ", 1)[1].split("\n", 1)[0]


def test_run_from_yaml_text_path_and_dict(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(TEXT, encoding="utf-8")
    data = {"name": "api", "defaults": {"mock_delay": 0}, "vars": {"topic": "from-vars"},
            "steps": [{"id": "a", "prompt": "About {{ topic }}", "stream": True}]}
    runs = [pipeline_nb.run(TEXT), pipeline_nb.run(path), pipeline_nb.run(str(path)), pipeline_nb.run(data)]
    for run in runs:
        assert run.ok and run.name == "api" and prompt_of(run) == "About from-vars"
        assert run.steps["a"].usage.output_tokens > 0 and run.duration is not None
    assert len({r.steps["a"].text for r in runs}) == 1


def test_vars_precedence() -> None:
    namespace = {"topic": "from-namespace", "extra": "ns-extra"}
    text = TEXT.replace("About {{ topic }}", "About {{ topic }} and {{ extra }}")
    assert prompt_of(pipeline_nb.run(text, namespace=namespace)) == "About from-vars and ns-extra"
    run = pipeline_nb.run(text, namespace=namespace, vars={"topic": "from-call"})
    assert prompt_of(run) == "About from-call and ns-extra"
    no_vars = text.replace("vars: {topic: from-vars}\n", "")
    assert prompt_of(pipeline_nb.run(no_vars, namespace=namespace)) == "About from-namespace and ns-extra"


def test_on_event_takes_a_handler_class_too(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline_nb.streaming import ConsoleHandler

    run = pipeline_nb.run(TEXT, on_event=ConsoleHandler)
    assert capsys.readouterr().out == run.steps["a"].text + "\n" and run.handler_errors == []


def test_provider_model_and_stream_overrides() -> None:
    events: list[Event] = []
    run = pipeline_nb.run(TEXT, model="claude-haiku-5-5", stream=False, on_event=events.append)
    assert run.steps["a"].model == "claude-haiku-5-5" and run.steps["a"].text.startswith("[mock claude-haiku-5-5]")
    assert "delta" not in [e.kind for e in events]
    with pytest.raises(pipeline_nb.PipelineSpecError, match="--provider 'nope' is not a known provider") as info:
        pipeline_nb.run(TEXT, provider="nope")
    assert info.value.hint and "mock" in info.value.hint


def test_provider_override_reaches_claude(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("from the fake")
    run = pipeline_nb.run(TEXT.replace("defaults: {mock_delay: 0}", "defaults: {provider: mock}"),
                          provider="claude", model="claude-opus-5-5")
    assert run.steps["a"].text == "from the fake"
    (request,) = fake_anthropic.requests
    assert request.body["model"] == "claude-opus-5-5" and request.stream


def test_a_failed_step_raises_with_the_run_kept(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, message="bad thing")
    text = "defaults: {provider: claude, mock_delay: 0}\nsteps:\n  - id: a\n    prompt: one\n  - id: b\n    prompt: two\n"
    with pytest.raises(pipeline_nb.StepError, match="step 'a' failed: invalid_request_error: bad thing") as info:
        pipeline_nb.run(text)
    run = info.value.run
    assert run is not None and run.status == "error"
    assert run.steps["a"].error is not None and run.steps["a"].error.request_id == "req_fake_1"
    assert run.steps["b"].status == "skipped" and len(fake_anthropic.requests) == 1
    fake_anthropic.fault("http", status=400)
    assert pipeline_nb.run(text, raise_on_error=False).status == "error"


def test_request_body_has_the_rendered_prompt_and_settings(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("ok")
    pipeline_nb.run("""
steps:
  - id: a
    provider: claude
    model: claude-haiku-5-5
    max_tokens: 321
    system: "You are terse about {{ topic }}."
    stop_sequences: ["END", "STOP"]
    prompt: |
      Explain {{ topic }}
      in {{ n }} words.
""", vars={"topic": "tides", "n": 5})
    (request,) = fake_anthropic.requests
    assert request.path == "/v1/messages" and not request.stream
    assert request.body == {
        "model": "claude-haiku-5-5",
        "max_tokens": 321,
        "system": "You are terse about tides.",
        "stop_sequences": ["END", "STOP"],
        "messages": [{"role": "user", "content": "Explain tides\nin 5 words.\n"}],
    }
    auth = request.headers.get("x-api-key") or request.headers.get("authorization")
    assert auth == "<redacted>"  # a key was sent (the fake hides its value)


def test_missing_api_key_fails_before_any_request(fake_anthropic: FakeAnthropic,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(pipeline_nb.PipelineError, match="ANTHROPIC_API_KEY") as info:
        pipeline_nb.run("steps:\n  - id: a\n    prompt: hi\n  - id: b\n    provider: claude\n    prompt: hi\n")
    assert "step 'b'" in str(info.value)
    with pytest.raises(pipeline_nb.PipelineError, match="ANTHROPIC_API_KEY"):
        pipeline_nb.invoke("hi", provider="claude")
    assert fake_anthropic.requests == []


def test_invoke_not_streamed() -> None:
    events: list[Event] = []
    response = pipeline_nb.invoke("Say hi", mock_delay=0, on_event=events.append)
    assert response.step_id == "invoke" and response.text.startswith("[mock claude-sonnet-5-5] You asked: Say hi")
    assert response.usage.output_tokens > 0 and response.stop_reason == "end_turn"
    assert [e.kind for e in events] == ["run_start", "step_start", "done", "step_end", "run_end"]


def test_invoke_streamed_with_a_handler() -> None:
    buf = BufferHandler()
    response = pipeline_nb.invoke("Say hi", stream=True, on_event=buf, mock_delay=0, stop_sequences=["offline"])
    assert buf.texts["invoke"] == response.text and response.stop_reason == "stop_sequence"
    assert sum(1 for e in buf.events if e.kind == "delta") > 3


def test_invoke_sends_prompt_and_system_as_is(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("streamed {{ reply }}", chunks=["streamed ", "{{ reply }}"])
    chunks: list[str] = []
    response = pipeline_nb.invoke(
        "Use {{ braces }} literally", stream=True, provider="claude", model="claude-haiku-5-5",
        system="{% raw %} is fine too", max_tokens=50,
        on_event=lambda e: chunks.append(e.data.content) if e.kind == "delta" else None,
    )
    assert chunks == ["streamed ", "{{ reply }}"] and response.text == "streamed {{ reply }}"
    assert response.request_id == "req_fake_1" and response.model == "claude-haiku-5-5"
    body = fake_anthropic.requests[0].body
    assert body["messages"] == [{"role": "user", "content": "Use {{ braces }} literally"}]
    assert body["system"] == "{% raw %} is fine too" and body["max_tokens"] == 50


def test_invoke_failure_raises_step_error(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=401)
    with pytest.raises(pipeline_nb.StepError, match="ANTHROPIC_API_KEY"):
        pipeline_nb.invoke("hi", provider="claude")
