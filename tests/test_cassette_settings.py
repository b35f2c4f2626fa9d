"""Where a cassette comes from: a mode with no file is an error that says how to name one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError

SPEC = "defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hello}\n"


@pytest.mark.parametrize("mode", ["record", "replay", "auto"])
def test_a_cassette_mode_from_the_environment_with_no_path_is_an_error(monkeypatch, mode):
    monkeypatch.delenv("PIPELINE_NB_CASSETTE", raising=False)
    monkeypatch.setenv("PIPELINE_NB_CASSETTE_MODE", mode)
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(SPEC)
    assert f"cassette mode {mode!r} (from PIPELINE_NB_CASSETTE_MODE) needs a cassette file" in str(raised.value)
    assert "PIPELINE_NB_CASSETTE=PATH" in raised.value.hint


def test_off_needs_no_file(monkeypatch):
    monkeypatch.delenv("PIPELINE_NB_CASSETTE", raising=False)
    monkeypatch.setenv("PIPELINE_NB_CASSETTE_MODE", "off")
    assert pipeline_nb.run(SPEC).ok


def test_the_cli_refuses_a_replay_without_a_cassette(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PIPELINE_NB_CASSETTE", raising=False)
    monkeypatch.delenv("PIPELINE_NB_CASSETTE_MODE", raising=False)
    (tmp_path / "p.yaml").write_text(SPEC)
    proc = subprocess.run([sys.executable, "-m", "pipeline_nb", "run", "p.yaml", "--cassette-mode", "replay"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "cassette mode 'replay' (from the cassette_mode option) needs a cassette file" in proc.stderr
    assert "--cassette PATH" in proc.stderr


def test_a_yaml_cassette_may_not_leave_the_pipelines_directory_but_a_flag_may(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PIPELINE_NB_CASSETTE", raising=False)
    monkeypatch.delenv("PIPELINE_NB_CASSETTE_MODE", raising=False)
    (tmp_path / "flows").mkdir()
    flow = tmp_path / "flows" / "p.yaml"
    flow.write_text(SPEC.replace("{mock_delay: 0}", "{mock_delay: 0, cassette: ../../escaped.jsonl}"))
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(flow)
    error = raised.value
    assert "cassette '../../escaped.jsonl' is outside the directory of the pipeline" in error.message
    assert (error.location.line, error.location.col) == (1, 37) and "--cassette PATH" in error.hint
    assert not (tmp_path.parent / "escaped.jsonl").exists()

    outside = tmp_path / "elsewhere" / "chosen.jsonl"
    assert pipeline_nb.run(flow, cassette=outside).ok and outside.exists()  # the user's own choice
    flow.write_text(SPEC.replace("{mock_delay: 0}", "{mock_delay: 0, cassette: tapes/p.jsonl}"))
    assert pipeline_nb.run(flow).ok and (tmp_path / "flows" / "tapes" / "p.jsonl").exists()


def test_a_request_the_cassette_answers_needs_no_key_and_a_miss_says_why_it_needs_one(
        tmp_path: Path, monkeypatch, fake_anthropic):
    monkeypatch.delenv("PIPELINE_NB_CASSETTE_MODE", raising=False)
    cassette = tmp_path / "c.jsonl"
    spec = "defaults: {provider: claude}\nsteps:\n  - {id: a, prompt: recorded}\n"
    assert pipeline_nb.run(spec, cassette=cassette).ok  # recorded with the fixture's key
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    fake_anthropic.clear()
    assert pipeline_nb.run(spec, cassette=cassette).ok  # auto: replayed, no key asked for
    run = pipeline_nb.run(spec + "  - {id: b, prompt: new}\n", cassette=cassette, raise_on_error=False)
    error = run.steps["b"].error
    assert run.steps["a"].status == "ok" and error.type == "missing_api_key"
    assert f"this request is not in the cassette {cassette}, so it needs the model" in error.message
    assert fake_anthropic.requests == []
