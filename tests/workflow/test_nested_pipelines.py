"""type: pipeline: child files relative to the parent, inline pipelines, inputs, outputs,
recursion and the depth cap, through the real SDK against FakeAnthropic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb import _plan as plan
from pipeline_nb._results import Usage
from pipeline_nb.streaming import BufferHandler
from pipeline_nb.testing import FakeAnthropic

from _wf import CLAUDE, prompts, run, spec_error

CHILD = CLAUDE + """name: child
vars: {topic: default-topic, style: plain}
steps:
  - {id: c1, prompt: "explain {{ topic }} ({{ style }})"}
  - {id: c2, prompt: "shorten: {{ steps.c1.text }}"}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_file_is_relative_to_the_parent_file_and_inputs_become_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_anthropic: FakeAnthropic
) -> None:
    write(tmp_path / "lib" / "child.yaml", CHILD)
    parent = write(tmp_path / "lib" / "parent.yaml", CLAUDE + """steps:
  - {id: t, vars: {topic: tides}}
  - {id: p, file: child.yaml, inputs: {topic: "{{ topic }}"}}
  - {id: after, prompt: "got {{ steps.p.output.c2 }}"}
""")
    monkeypatch.chdir(tmp_path)  # not the parent's directory
    buf = BufferHandler()
    result = pipeline_nb.run(parent, on_event=buf)
    p = result.steps["p"]
    assert p.status == "ok" and list(p.output) == ["c1", "c2"]
    assert p.output["c1"] == "Fake reply to: explain tides (plain)"
    assert p.text == p.output["c2"] == "Fake reply to: shorten: Fake reply to: explain tides (plain)"
    assert p.child is not None and p.child.name == "child" and p.child.steps["c1"].ok
    assert prompts(fake_anthropic)[-1] == "got " + p.output["c2"]
    assert p.usage == p.child.usage and p.usage.total > 0
    assert result.usage == p.usage + result.steps["after"].usage
    assert set(buf.responses) == {"p/c1", "p/c2", "after"}


def test_an_inline_pipeline_with_inputs(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: inline
            inputs: {x: "{{ [1, 2] }}", label: nums}
            pipeline:
              vars: {label: overridden}
              steps:
                - {id: count, call: len, args: {obj: "{{ x }}"}}
                - {id: say, prompt: "{{ label }}: {{ steps.count.output }}", provider: claude}
    """, namespace={"len": lambda obj: len(obj)})
    inline = result.steps["inline"]
    assert inline.status == "ok" and inline.output == {"count": 2, "say": "Fake reply to: nums: 2"}
    assert prompts(fake_anthropic) == ["nums: 2"]


def test_an_inline_pipeline_resolves_files_from_the_parents_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_anthropic: FakeAnthropic
) -> None:
    write(tmp_path / "lib" / "child.yaml", CHILD)
    parent = write(tmp_path / "lib" / "parent.yaml", CLAUDE + """steps:
  - id: outer
    pipeline:
      steps:
        - {id: inner, file: child.yaml, inputs: {topic: moons}}
""")
    monkeypatch.chdir(tmp_path)
    result = pipeline_nb.run(parent)
    assert result.steps["outer"].output["inner"]["c1"] == "Fake reply to: explain moons (plain)"


def test_a_failing_child_step_fails_the_pipeline_step(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    write(tmp_path / "child.yaml", CHILD)
    fake_anthropic.fault("http", status=400, when="shorten", message="too long")
    result = pipeline_nb.run(write(tmp_path / "parent.yaml", CLAUDE + """steps:
  - {id: p, file: child.yaml}
  - {id: after, prompt: never}
"""), raise_on_error=False)
    p = result.steps["p"]
    assert p.status == "error" and p.error.type == "step_failed"
    assert p.error.message.startswith("1 of 2 steps failed; first: c2: invalid_request_error: too long")
    assert p.output == {"c1": "Fake reply to: explain default-topic (plain)"}
    assert result.steps["after"].status == "skipped"


def test_recursion_is_refused_with_the_chain_before_any_call(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    write(tmp_path / "a.yaml", "steps:\n  - {id: paid, prompt: hi}\n  - {id: to_b, file: b.yaml}\n")
    write(tmp_path / "b.yaml", "steps:\n  - {id: to_a, file: a.yaml}\n")
    error = spec_error_of(tmp_path / "a.yaml")
    assert error.message == "pipeline recursion: a.yaml → b.yaml → a.yaml" and error.step_id == "to_a"
    assert (Path(error.location.source).name, error.location.line, error.location.col) == ("b.yaml", 2, 22)
    assert fake_anthropic.requests == []


def test_a_file_that_includes_itself_through_an_inline_pipeline(tmp_path: Path) -> None:
    write(tmp_path / "self.yaml", "steps:\n  - id: me\n    pipeline: {steps: [{id: again, file: self.yaml}]}\n")
    error = spec_error_of(tmp_path / "self.yaml")
    assert error.message.startswith("pipeline recursion: self.yaml → ")
    assert error.message.endswith("#me → self.yaml") and error.step_id == "again"


def test_nesting_deeper_than_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        write(tmp_path / f"d{n}.yaml", f"steps:\n  - {{id: down{n}, file: d{n + 1}.yaml}}\n")
    write(tmp_path / "d5.yaml", "steps:\n  - {id: leaf, vars: {x: 1}}\n")
    monkeypatch.setattr(plan, "MAX_DEPTH", 5)  # d0 holds five levels of nested pipelines
    assert pipeline_nb.run(tmp_path / "d0.yaml").ok
    monkeypatch.setattr(plan, "MAX_DEPTH", 4)
    error = spec_error_of(tmp_path / "d0.yaml")
    assert error.message == "pipelines nest more than 4 deep" and error.step_id == "down4"
    text = (tmp_path / "d1.yaml").read_text().replace("d2.yaml", str(tmp_path / "d2.yaml"))
    assert pipeline_nb.run(text).ok  # four levels from text: the cap counts nesting, not files


def test_a_missing_child_file_is_a_spec_error_before_the_paid_steps(tmp_path: Path,
                                                                    fake_anthropic: FakeAnthropic) -> None:
    parent = write(tmp_path / "parent.yaml", "defaults: {provider: claude}\n"
                                             "steps:\n  - {id: paid, prompt: hi}\n  - {id: p, file: nope.yaml}\n")
    error = spec_error_of(parent)
    assert error.message.startswith("file 'nope.yaml' does not exist (looked for ")
    assert (error.step_id, error.location.line, error.location.col) == ("p", 4, 19)
    assert fake_anthropic.requests == []
    proc = subprocess.run([sys.executable, "-m", "pipeline_nb", "run", "parent.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "parent.yaml:4:19: step 'p': file 'nope.yaml' does not exist" in proc.stderr
    assert fake_anthropic.requests == []


def test_an_unknown_name_in_a_child_file_is_reported_with_its_location(tmp_path: Path) -> None:
    write(tmp_path / "child.yaml", "steps:\n  - {id: c, prompt: '{{ nothing }}'}\n")
    error = spec_error_of(write(tmp_path / "parent.yaml", "steps:\n  - {id: p, file: child.yaml}\n"))
    assert "child.yaml:2:" in str(error) and "prompt uses {{ nothing }}, which is not defined" in str(error)


def spec_error_of(path: Path) -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(path)
    return raised.value


def test_pipeline_spec_errors_carry_line_and_column() -> None:
    error = spec_error("""
        steps:
          - id: p
            file: child.yaml
            pipeline: {steps: [{id: c, prompt: hi}]}
    """)
    assert "pipeline step needs exactly one of 'file' and 'pipeline'" in str(error)
    assert (error.location.line, error.location.col) == (4, 5)
    error = spec_error("""
        steps:
          - id: p
            pipeline:
              steps:
                - {id: c, promt: hi}
    """)
    assert "unknown key 'promt'" in str(error) and error.step_id == "c" and error.location.line == 7
    error = spec_error("steps:\n  - {id: p, file: x.yaml, prompt: hi, type: pipeline}\n")
    assert "'prompt' does not apply to a pipeline step" in str(error)


def test_a_child_run_uses_the_parents_pricing(tmp_path: Path, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("ok", usage=(1000, 100))
    write(tmp_path / "child.yaml", CHILD)
    parent = write(tmp_path / "parent.yaml", """
defaults: {provider: claude, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}
steps:
  - {id: p, file: child.yaml}
""")
    result = pipeline_nb.run(parent)
    assert result.steps["p"].usage == Usage(2000, 200)
    assert result.steps["p"].cost == pytest.approx(2 * (3000 + 1500) / 1e6) == result.cost
