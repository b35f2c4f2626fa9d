"""Prompt files named at run time: the sandbox's read_text(), and pipeline_ex's templated file parts."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb.testing import FakeAnthropic

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tides.py").write_text("def high_tide():\n    return '06:10'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_templated_file_part_is_read_when_the_step_runs(fake_anthropic: FakeAnthropic, workdir: Path) -> None:
    run = pipeline_nb.run(CORPUS / "files_named_at_run_time.yaml", vars={"code_file": "tides.py"}, journal="off")
    assert run.ok, run.steps
    assert fake_anthropic.requests[0].prompt == (
        "Review this code:\ndef high_tide():\n    return '06:10'\n\nEnd of tides.py.")


def test_read_text_is_confined_to_the_working_directory_and_names_a_missing_file(workdir: Path) -> None:
    (workdir.parent / "secret.txt").write_text("not yours")
    run = pipeline_nb.run("""
        steps:
          - {id: inside, prompt: "{{ read_text('src/tides.py') }}", mock_delay: 0}
          - {id: outside, prompt: "{{ read_text('../secret.txt') }}", continue_on_error: true}
          - {id: missing, prompt: "{{ read_text(name) }}", continue_on_error: true}
    """, vars={"name": "src/nowhere.py"}, raise_on_error=False, journal="off")
    assert "return '06:10'" in run.steps["inside"].text
    outside, missing = run.steps["outside"].error, run.steps["missing"].error
    assert outside.type == "template_error" and "outside the working directory" in outside.message
    assert "not yours" not in outside.message
    assert missing.type == "template_error" and "read_text: no file 'src/nowhere.py'" in missing.message
