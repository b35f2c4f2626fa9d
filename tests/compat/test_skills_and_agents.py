"""pipeline_ex's enable_skills and agents: skills in .claude/skills of a step's cwd reach Claude as the
skill tool (through the real SDK against FakeAnthropic); no folder, a note; workflow agents, a note
(pipeline_ex does not hand them to Claude Code); a step's claude_options.agents, refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._yaml import load_yaml
from pipeline_nb.compat import translate
from pipeline_nb.testing import FakeAnthropic

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(CORPUS / "claude_skills.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no user skills but the test's
    return tmp_path


def test_enable_skills_gives_claude_the_skills_of_its_cwd(fake_anthropic: FakeAnthropic, in_tmp: Path) -> None:
    skill = in_tmp / "harbour" / ".claude" / "skills" / "tide-report" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("---\nname: tide-report\ndescription: Report the tides.\n---\nList high and low water.\n")
    fake_anthropic.reply("", tool_calls=[{"name": "skill", "input": {"name": "tide-report"}}], times=1)
    fake_anthropic.reply("High water 06:12.")
    run = pipeline_nb.run(in_tmp / "claude_skills.yaml", journal="off")
    assert run.steps["tide_report"].text == "High water 06:12."
    first, second = fake_anthropic.requests
    [tool] = first.body["tools"]
    assert tool["name"] == "skill" and "- tide-report: Report the tides." in tool["description"]
    assert "List high and low water." in str(second.body["messages"][-1]["content"])
    notes = " ".join(run.warnings)
    assert "workflow key agents is ignored: pipeline_ex hands Claude Code the agents of a step's claude_options " \
           "only" in notes and "claude_skills.yaml:9:5" in notes


def test_without_a_skills_folder_the_step_runs_without_skills(fake_anthropic: FakeAnthropic, in_tmp: Path) -> None:
    fake_anthropic.reply("No skills needed.")
    run = pipeline_nb.run(in_tmp / "claude_skills.yaml", journal="off")
    assert run.ok and "tools" not in fake_anthropic.requests[0].body
    assert any("enable_skills is ignored: no skills folder exists" in w and "claude_skills.yaml:6:18" in w
               for w in run.warnings), run.warnings


def test_a_steps_own_agents_are_refused_by_name(in_tmp: Path) -> None:
    text = (in_tmp / "claude_skills.yaml").read_text().replace(
        "        cwd: ./harbour\n", "        cwd: ./harbour\n        agents: {helper: {prompt: hi}}\n")
    with pytest.raises(PipelineSpecError) as info:
        pipeline_nb.run(text, provider="mock")
    [problem] = info.value.problems
    assert (problem.location.line, problem.location.col, problem.message) == (
        19, 9, "claude_options.agents is not supported")
    assert "pipeline_nb has no subagents" in problem.hint


def test_skill_in_allowed_tools_turns_skills_on(in_tmp: Path) -> None:
    skills = in_tmp / "w" / ".claude" / "skills" / "memo" / "SKILL.md"
    skills.parent.mkdir(parents=True)
    skills.write_text("---\ndescription: Write a memo.\n---\nOne page.\n")
    text = ("workflow:\n  name: w\n  steps:\n    - name: s\n      type: claude\n"
            "      claude_options: {allowed_tools: [Read, Skill], cwd: ./w}\n      prompt: hi\n")
    run = pipeline_nb.run(text, provider="mock", journal="off")
    assert run.ok
    assert [t.name for t in run.steps["s"].tool_calls] == ["read_file"]  # the mock calls the first tool once
    [step] = translate(*load_yaml(text, source="w.yaml"))[0]["steps"]
    assert step["tools"] == ["read_file", {"skills": [str(skills.parents[1])]}]


def test_a_loop_bodys_claude_steps_get_the_workflows_skills(in_tmp: Path) -> None:
    skill = in_tmp / "workspace" / ".claude" / "skills" / "memo" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("---\ndescription: Write a memo.\n---\nOne page.\n")
    text = ("workflow:\n  name: w\n  enable_skills: true\n  steps:\n    - name: laps\n      type: while_loop\n"
            "      condition: \"{{state.n < 1}}\"\n      max_iterations: 2\n      steps:\n"
            "        - {name: ask, type: claude, prompt: hi}\n")
    [laps] = translate(*load_yaml(text, source="w.yaml"), notes=[])[0]["steps"]
    assert laps["pipeline"]["steps"][0]["tools"] == [{"skills": [str(skill.parents[1])]}]
