"""A skills folder (one SKILL.md per skill, as in .claude/skills/) becomes the one ``skill`` tool:
its description lists the skills, a call returns a skill's instructions or one of its files,
through the real SDK against FakeAnthropic; a bad SKILL.md is a PipelineSpecError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.testing import FakeAnthropic
from pipeline_nb.tools import ToolDefinitionError, ToolInputError, find_skills, skill_tool

PIPELINE = """\
defaults: {provider: claude}
steps:
  - id: report
    prompt: Summarise the sales in sales.csv.
    tools: [{skills: .claude/skills}, read_file]
"""


def write_skill(root: Path, folder: str, front: str, body: str = "Do it well.\n") -> Path:
    path = root / ".claude" / "skills" / folder / "SKILL.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front}\n---\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_skill(tmp_path, "sales", "name: sales-report\ndescription: >\n  Write a sales report from a CSV.\n  "
                "Use for any sales data.", "1. Read the CSV.\n2. Use template.md.\n")
    (tmp_path / ".claude" / "skills" / "sales" / "template.md").write_text("# Sales\n{{ table }}\n")
    write_skill(tmp_path, "memo", "name: memo\ndescription: Write a one-page memo.")
    (tmp_path / "sales.csv").write_text("month,total\nMarch,120\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_tool_lists_every_skill_and_loads_one_with_its_files(project: Path) -> None:
    tool = skill_tool(project / ".claude" / "skills")
    api = tool.to_api()
    assert api["name"] == "skill"
    assert api["description"].endswith("Skills:\n- memo: Write a one-page memo.\n"
                                       "- sales-report: Write a sales report from a CSV. Use for any sales data.")
    assert api["input_schema"]["properties"]["name"]["enum"] == ["memo", "sales-report"]
    assert tool.call({"name": "sales-report"}) == "1. Read the CSV.\n2. Use template.md."
    assert tool.call({"name": "sales-report", "file": "template.md"}) == "# Sales\n{{ table }}\n"
    with pytest.raises(ToolInputError, match="outside the working directory"):
        tool.call({"name": "sales-report", "file": "../memo/SKILL.md"})
    with pytest.raises(ToolInputError, match="has no file 'missing.md'; its files: SKILL.md, template.md"):
        tool.call({"name": "sales-report", "file": "missing.md"})
    with pytest.raises(ToolInputError, match="does not match its schema"):
        tool.call({"name": "nope"})


def test_claude_loads_a_skill_then_follows_it(fake_anthropic: FakeAnthropic, project: Path) -> None:
    fake_anthropic.reply("", tool_calls=[{"name": "skill", "input": {"name": "sales-report"}}], times=1)
    fake_anthropic.reply("", tool_calls=[{"name": "read_file", "input": {"path": "sales.csv"}}], times=1)
    fake_anthropic.reply("March: 120.")
    run = pipeline_nb.run(PIPELINE, journal="off")
    assert run.steps["report"].text == "March: 120."
    first, second, third = fake_anthropic.requests
    assert [t["name"] for t in first.body["tools"]] == ["skill", "read_file"]
    assert "- sales-report: Write a sales report" in first.body["tools"][0]["description"]
    [loaded] = [b for b in second.body["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert "1. Read the CSV." in str(loaded["content"])
    assert "March,120" in str(third.body["messages"][-1]["content"])


@pytest.mark.parametrize(("front", "why"), [
    ("name: Bad Name\ndescription: x", "name 'Bad Name' must be lowercase letters"),
    ("name: ok", "description is missing"),
    ("name: [unclosed", "its front matter is not YAML"),
])
def test_a_bad_skill_file_is_refused_before_any_call_naming_the_file(project: Path, front: str, why: str) -> None:
    bad = write_skill(project, "broken", front)
    with pytest.raises(PipelineSpecError) as info:
        pipeline_nb.run(PIPELINE, provider="mock", journal="off")
    message = str(info.value)
    assert f"{bad}: {why}" in message and "<pipeline>:5:12: step 'report': tools[0]: tool 'skill'" in message, message


def test_a_missing_folder_and_two_skills_of_one_name_are_refused(project: Path) -> None:
    with pytest.raises(PipelineSpecError, match="nowhere' is not an existing folder"):
        pipeline_nb.run(PIPELINE.replace(".claude/skills", "nowhere"), provider="mock", journal="off")
    write_skill(project, "memo2", "name: memo\ndescription: Another memo.")
    with pytest.raises(PipelineSpecError, match="two skills are named 'memo'"):
        pipeline_nb.run(PIPELINE, provider="mock", journal="off")


def test_a_skill_without_a_name_takes_its_folders_name(tmp_path: Path) -> None:
    write_skill(tmp_path, "csv-tidy", "description: Tidy a CSV.")
    [skill] = find_skills(tmp_path / ".claude" / "skills")
    assert (skill.name, skill.description, skill.instructions) == ("csv-tidy", "Tidy a CSV.", "Do it well.")


def test_several_folders_make_one_tool_and_a_name_in_two_is_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_skill(first, "memo", "description: Write a memo.")
    write_skill(second, "chart", "description: Draw a chart.")
    tool = skill_tool([first / ".claude" / "skills", second / ".claude" / "skills"])
    assert tool.to_api()["input_schema"]["properties"]["name"]["enum"] == ["memo", "chart"]
    write_skill(second, "memo", "description: Another memo.")
    with pytest.raises(ToolDefinitionError, match="two skills are named 'memo'"):
        skill_tool([first / ".claude" / "skills", second / ".claude" / "skills"])
