"""What the gemini provider cannot honour is refused when the pipeline is read, at the key, before any call."""

from __future__ import annotations

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.testing import FakeGemini


@pytest.mark.parametrize(("key", "yaml"), [
    ("thinking", "thinking: true"),
    ("effort", "effort: high"),
    ("tools", "tools: [read_file]"),
    ("attachments", "attachments: [notes.txt]"),
    ("cache", "cache: true"),
    ("system", "system: {text: be brief, cache: true}"),
])
def test_a_key_gemini_cannot_honour_is_refused_at_its_line_before_any_call(
        fake_gemini: FakeGemini, key: str, yaml: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("notes")
    with pytest.raises(PipelineSpecError) as info:
        pipeline_nb.run(f"""
steps:
  - id: first
    provider: gemini
    model: gemini-2.5-flash
    prompt: hi
  - id: later
    provider: gemini
    model: gemini-2.5-flash
    prompt: hi
    {yaml}
""", journal="off")
    error = info.value
    assert error.step_id == "later" and error.location.line == 11, str(error)
    assert "provider gemini does not support" in error.message and "use provider: claude" in error.message
    assert fake_gemini.requests == []  # nothing was sent, not even the first step's call
