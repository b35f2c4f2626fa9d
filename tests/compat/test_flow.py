"""pipeline_ex's data and control steps, references and workflow keys, run through the real SDK
against FakeAnthropic: test_echo, nested pipelines (file and inline, with inputs), data_transform,
file_ops, root steps: files, ignored runtime keys (one note) and refused ones."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.compat import CompatNote
from pipeline_nb.testing import FakeAnthropic

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for path in CORPUS.glob("flow_*.yaml"):
        shutil.copy(path, tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_echo_nested_file_and_inline_pipelines_and_references(fake_anthropic: FakeAnthropic, workdir: Path) -> None:
    run = pipeline_nb.run(workdir / "flow_nested.yaml", journal="off")
    assert any(re.search("read and ignored .*: version, checkpoint_enabled, environment", w)  # a note on the run
               for w in run.warnings), run.warnings
    assert run.status == "ok"
    assert run.steps["seed"].output == {"count": 3, "label": "about tides"}
    assert run.steps["from_file"].output == {"greet": "Hello about tides", "doubled": 6}
    assert run.steps["inline"].output == {"inner": "inner 6"}
    assert fake_anthropic.requests[-1].prompt == "Count 3; Hello about tides; flow_nested"
    [written] = (workdir / "outputs").glob("ask_*.md")
    assert written.name[4:-3].replace("_", "").isdigit()  # {{timestamp}}: the run's time, e.g. 20261129_215816


def test_data_transform_and_file_ops(workdir: Path) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / "in.txt").write_text("abcdef", encoding="utf-8")
    run = pipeline_nb.run(workdir / "flow_data.yaml", provider="mock", journal="off")
    assert any(re.search("workspace_dir", w)  # a note on the run
               for w in run.warnings), run.warnings
    assert run.status == "ok"
    assert [o["id"] for o in run.steps["big_done"].output["big"]] == [1, 4]
    assert run.steps["mean_total"].output == {"mean_total": 327.5}
    assert {k: [o["id"] for o in v] for k, v in run.steps["by_tier"].output["by_tier"].items()} == {
        "gold": [1, 2], "silver": [3, 4]}
    assert (workdir / "out" / "copied.txt").read_text(encoding="utf-8") == "abcdef"
    assert run.steps["listing"].output["files"] == ["out/copied.txt"]
    assert run.steps["check"].output["status"] == "all_valid"
    assert not (workdir / "data" / "in.txt").exists()


def test_file_ops_stay_in_the_working_directory_and_echo_fails_on_request(workdir: Path) -> None:
    head = "workflow:\n  name: w\n  steps:\n"
    with pytest.raises(pipeline_nb.StepError, match="unsafe_path: source '../x.txt' is outside the working dir"):
        pipeline_nb.run(head + "    - {name: out, type: file_ops, operation: copy, source: ../x.txt, "
                        "destination: y.txt}\n", provider="mock", journal="off")
    with pytest.raises(pipeline_nb.StepError, match="asked to fail"):
        pipeline_nb.run(head + "    - {name: boom, type: test_echo, value: __FAIL__, error_message: asked to fail}\n",
                        provider="mock", journal="off")


def test_root_steps_file_is_translated(fake_anthropic: FakeAnthropic, workdir: Path) -> None:
    run = pipeline_nb.run(workdir / "flow_root_steps.yaml", journal="off")
    assert any(re.search("version, metadata", w)  # a note on the run
               for w in run.warnings), run.warnings
    assert run.status == "ok" and fake_anthropic.requests[-1].prompt == "After one"


def test_keys_that_cannot_be_honoured_are_refused_by_name() -> None:
    text = ("workflow:\n  name: w\n  triggers: {on: push}\n"
            "  steps:\n    - {name: s, type: claude, prompt: hi}\n")
    with pytest.raises(PipelineSpecError) as info:
        pipeline_nb.run(text, provider="mock")
    found = [(p.location.line, p.location.col, p.message) for p in info.value.problems]
    assert found == [(3, 3, "workflow key 'triggers' is not supported")]


def test_a_genesis_input_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "genesis.yaml"
    path.write_text("input:\n  pipeline_request: x\nexpected_output:\n  name: y\n", encoding="utf-8")
    with pytest.raises(PipelineSpecError, match="not a pipeline: it is a pipeline_ex example of a pipeline "
                                                "generator's input"):
        pipeline_nb.run(path, provider="mock")


def test_file_ops_never_deletes_the_working_directory_itself(workdir: Path) -> None:
    from pipeline_nb._compat_calls import file_ops
    from pipeline_nb._files import UnsafePath

    for path in (".", "./", "sub/.."):
        with pytest.raises(UnsafePath, match="the working directory itself"):
            file_ops("delete", path=path)
    assert (workdir / "flow_data.yaml").exists()
