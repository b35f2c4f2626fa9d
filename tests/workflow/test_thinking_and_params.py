"""Extended thinking, effort, params and extra_body through the real SDK against FakeAnthropic;
nested pipelines inheriting the run; cassettes keeping thinking exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb.streaming import BufferHandler
from pipeline_nb.testing import FakeAnthropic

from _wf import run, spec_error

THINKS = """
    steps:
      - id: a
        prompt: "Why do tides come twice a day?"
        stream: {stream}
        max_tokens: 4000
        thinking: {thinking}
"""


@pytest.mark.parametrize("stream", ["true", "false"])
def test_thinking_is_streamed_kept_and_sent_as_asked(fake_anthropic: FakeAnthropic, stream: str) -> None:
    fake_anthropic.reply("Two bulges of water.", thinking="The moon pulls; the earth turns under two bulges.")
    events = BufferHandler()
    result = run(THINKS.format(stream=stream, thinking="{budget_tokens: 2000}"), on_event=events)
    step = result.steps["a"]
    assert result.ok and step.text == "Two bulges of water."
    assert step.thinking == "The moon pulls; the earth turns under two bulges."
    assert fake_anthropic.requests[0].body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    kinds = [e.kind for e in events.events if e.kind in ("thinking", "delta")]
    if stream == "true":  # thinking arrives first, in its own block, then the answer in the next
        assert kinds[0] == "thinking" and kinds[-1] == "delta" and "thinking" not in kinds[kinds.index("delta"):]
        blocks = {e.kind: e.data.block for e in events.events if e.kind in ("thinking", "delta")}
        assert blocks == {"thinking": 0, "delta": 1}
    else:
        assert kinds == []
    assert events.responses["a"].thinking == step.thinking


def test_adaptive_thinking_and_effort_are_sent(fake_anthropic: FakeAnthropic) -> None:
    result = run(THINKS.format(stream="true", thinking="true") + "        effort: high\n")
    body = fake_anthropic.requests[0].body
    assert result.ok and body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "high"}
    assert result.steps["a"].thinking.startswith("Fake thinking about:")


def test_continue_sends_the_thinking_back_with_its_signature(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Paris.", thinking="France's capital is Paris.", when="capital")
    result = run(THINKS.format(stream="true", thinking="true").replace("Why do tides come twice a day?",
                                                                        "What is the capital of France?")
                 + "      - {id: b, continue: a, prompt: 'And its population?', max_tokens: 4000, thinking: true}\n")
    assert result.ok, result.steps["b"].error  # the fake refuses a thinking block whose signature changed
    sent = fake_anthropic.requests[1].body["messages"][1]
    thinking = sent["content"][0]
    assert sent["role"] == "assistant" and thinking["type"] == "thinking"
    assert thinking["thinking"] == "France's capital is Paris." and thinking["signature"]
    assert thinking["signature"] == result.steps["a"].content[0].signature


def test_a_thinking_budget_the_api_would_refuse_is_a_spec_error_before_any_call(fake_anthropic: FakeAnthropic) -> None:
    error = spec_error(THINKS.format(stream="true", thinking="{budget_tokens: 4000}"))
    assert error.message == "thinking.budget_tokens (4000) must be below max_tokens (4000)"
    assert (error.step_id, error.location.line) == ("a", 8)  # (run() puts a defaults line first)
    error = spec_error(THINKS.format(stream="true", thinking="{budget_tokens: 100}"))
    assert "thinking.budget_tokens must be at least 1024, got 100" in str(error)
    assert fake_anthropic.requests == []


def test_params_and_extra_body_reach_the_request(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: a
            prompt: hi
            params: {metadata: {user_id: researcher-7}, service_tier: auto}
            extra_body: {future_field: 3}
    """)
    body = fake_anthropic.requests[0].body
    assert result.ok and body["metadata"] == {"user_id": "researcher-7"} and body["service_tier"] == "auto"
    assert body["future_field"] == 3


def test_a_child_pipeline_file_runs_on_the_parents_provider_and_model(fake_anthropic: FakeAnthropic,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("steps:\n  - {id: c, prompt: 'from the child'}\n")
    (tmp_path / "parent.yaml").write_text("defaults: {provider: claude, model: claude-haiku-5-5, max_tokens: 321}\n"
                                          "steps:\n  - {id: p, file: child.yaml}\n")
    result = pipeline_nb.run(tmp_path / "parent.yaml")
    child = result.steps["p"].child.steps["c"]
    assert child.text == "Fake reply to: from the child"  # claude (the fake), not the offline mock
    body = fake_anthropic.requests[0].body
    assert (body["model"], body["max_tokens"]) == ("claude-haiku-5-5", 321)
    (tmp_path / "child.yaml").write_text("steps:\n  - {id: c, prompt: 'own', provider: mock, mock_delay: 0}\n")
    own = pipeline_nb.run(tmp_path / "parent.yaml").steps["p"].child.steps["c"]
    assert own.text.startswith("[mock claude-haiku-5-5]")  # a child's own setting wins; the model still comes down


def test_a_cassette_replays_thinking_exactly(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.reply("Two bulges.", thinking="Moon, then sun.", chunks=["Two ", "bulges."])
    cassette = tmp_path / "t.jsonl"
    spec = THINKS.format(stream="true", thinking="true")
    recorded_events, replayed_events = BufferHandler(), BufferHandler()
    recorded = run(spec, cassette=cassette, cassette_mode="record", on_event=recorded_events)
    fake_anthropic.clear()
    replayed = run(spec, cassette=cassette, cassette_mode="replay", on_event=replayed_events)
    assert fake_anthropic.requests == []
    assert replayed.steps["a"].content == recorded.steps["a"].content  # signature included
    def chunks(buffer: BufferHandler) -> list:
        return [(e.kind, e.data._replace(request_id=None) if e.kind == "done" else e.data)  # a replay has no request
                for e in buffer.events if e.kind in ("thinking", "delta", "done")]

    assert chunks(replayed_events) and chunks(replayed_events) == chunks(recorded_events)  # the same chunks, in order


def test_a_400_that_names_a_parameter_names_the_step_key_to_fix(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, message="service_tier: Input should be 'auto' or 'standard_only'")
    result = run("steps:\n  - {id: a, prompt: hi, params: {service_tier: fastest}}\n")
    error = result.steps["a"].error
    assert error.type == "invalid_request_error"
    assert error.message.endswith("(HTTP 400); the API rejected the parameter 'service_tier': "
                                  "check params: (or extra_body:) on the step")
