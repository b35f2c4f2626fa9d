"""fallback_model: a call whose model's service failed, after its retries, is tried once with another model."""

from __future__ import annotations

from pipeline_nb.testing import FakeAnthropic

from _wf import run, spec_error


def test_an_overloaded_model_falls_back_once_and_the_note_says_so(fake_anthropic: FakeAnthropic,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")
    fake_anthropic.fault("overloaded_http", when=lambda r: r.body["model"] == "claude-opus-5-5", times=None)
    fake_anthropic.reply("From Sonnet.", when=lambda r: r.body["model"] == "claude-sonnet-5-5")
    result = run("""
        steps:
          - id: a
            prompt: hi
            model: claude-opus-5-5
            fallback_model: claude-sonnet-5-5
            retries: 1
    """)
    a = result.steps["a"]
    assert (a.status, a.text, a.model) == ("ok", "From Sonnet.", "claude-sonnet-5-5")
    assert a.note == "fell back to claude-sonnet-5-5 after overloaded_error"
    assert [r.body["model"] for r in fake_anthropic.requests] == ["claude-opus-5-5"] * 2 + ["claude-sonnet-5-5"]


def test_a_bad_request_does_not_fall_back_and_two_failures_name_both(fake_anthropic: FakeAnthropic,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")
    fake_anthropic.fault("http", status=400, when="bad", times=None)
    fake_anthropic.fault("overloaded_http", when="busy", times=None)
    result = run("""
        steps:
          - {id: bad, prompt: bad, fallback_model: claude-haiku-5-5}
          - {id: busy, prompt: busy, fallback_model: claude-haiku-5-5, continue_on_error: true}
    """)
    assert result.steps["bad"].error.type == "invalid_request_error"
    assert sum("bad" in r.prompt for r in fake_anthropic.requests) == 1  # not sent again
    busy = result.steps["busy"].error
    assert busy.type == "overloaded_error" and busy.message.endswith("(after claude-sonnet-5-5 failed: overloaded_error)")


def test_a_budget_needs_the_fallback_models_price() -> None:
    error = spec_error("""
        defaults: {max_cost: 1, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}
        steps:
          - {id: a, prompt: hi, fallback_model: claude-haiku-5-5}
    """)
    assert "model 'claude-haiku-5-5' has no price" in str(error)
