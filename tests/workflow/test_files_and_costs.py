"""output_to_file (inside the working directory only), usage totals and pricing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb._results import Usage
from pipeline_nb.testing import FakeAnthropic

from _wf import run

PRICED = "defaults: {provider: claude, retries: 0, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}\n"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with room outside it (``tmp_path / "outside"``)."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


def test_output_to_file_writes_text_and_json_and_creates_directories(
    work: Path, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.reply("plain reply", when="plain")
    fake_anthropic.reply('{"score": 9}', when="graded")
    result = run("""
        steps:
          - {id: text, prompt: "plain", output_to_file: "out/{{ 'deep' }}/text.md"}
          - id: graded
            prompt: "graded"
            output_schema: {type: object}
            output_to_file: out/graded.json
          - {id: s, vars: {xs: [1, "é"]}, output_to_file: out/vars.json}
    """)
    assert result.ok
    assert (work / "out/deep/text.md").read_text(encoding="utf-8") == "plain reply"
    assert json.loads((work / "out/graded.json").read_text(encoding="utf-8")) == {"score": 9}
    assert json.loads((work / "out/vars.json").read_text(encoding="utf-8")) == {"xs": [1, "é"]}
    assert result.steps["text"].note == "saved to text.md"
    assert sorted(p.name for p in (work / "out").rglob("*")) == ["deep", "graded.json", "text.md", "vars.json"]


@pytest.mark.parametrize("target", ["../x.txt", "out/../../x.txt", "ABSOLUTE"])
def test_paths_outside_the_working_directory_are_refused(
    work: Path, fake_anthropic: FakeAnthropic, target: str
) -> None:
    outside = work.parent / "x.txt"
    path = str(outside) if target == "ABSOLUTE" else target
    result = run(f"""
        steps:
          - {{id: w, prompt: hi, output_to_file: "{path}"}}
          - {{id: after, prompt: never}}
    """)
    w = result.steps["w"]
    assert w.status == "error" and w.error.type == "unsafe_path"
    assert "is outside the working directory" in w.error.message
    assert w.text == "Fake reply to: hi"  # the reply is kept; only the write is refused
    assert not outside.exists() and list(work.iterdir()) == []
    assert result.steps["after"].status == "skipped"


def test_an_absolute_path_inside_the_working_directory_is_allowed(work: Path, fake_anthropic: FakeAnthropic) -> None:
    result = run(f'steps:\n  - {{id: w, prompt: hi, output_to_file: "{work / "sub" / "w.txt"}"}}\n')
    assert result.ok and (work / "sub" / "w.txt").read_text() == "Fake reply to: hi"


def test_a_for_each_step_writes_its_list_or_one_file_per_item(work: Path, fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - {id: all, for_each: [a, b], prompt: "x {{ item }}", output_to_file: all.json}
          - id: each
            for_each: [a, b]
            as: t
            prompt: "y {{ t }}"
            output_to_file: "each/{{ loop.index }}-{{ t }}.txt"
    """)
    assert result.ok
    assert json.loads((work / "all.json").read_text()) == ["Fake reply to: x a", "Fake reply to: x b"]
    assert (work / "each/0-a.txt").read_text() == "Fake reply to: y a"
    assert (work / "each/1-b.txt").read_text() == "Fake reply to: y b"
    assert result.steps["each"].items[1].note == "saved to 1-b.txt"


def test_a_failed_or_skipped_step_writes_nothing(work: Path, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, when="fails")
    result = run("""
        steps:
          - {id: bad, prompt: "fails", output_to_file: bad.txt, continue_on_error: true}
          - {id: later, when: false, prompt: "x", output_to_file: later.txt, continue_on_error: true}
    """)
    assert result.steps["bad"].status == "error" and result.steps["later"].status == "skipped"
    assert list(work.iterdir()) == []


def test_usage_is_summed_per_step_and_per_run(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("one", when="first", usage=(11, 3))
    fake_anthropic.reply("many", when="item", usage=(5, 2))
    result = run("""
        steps:
          - {id: a, prompt: "first", stream: true}
          - {id: fan, for_each: [1, 2, 3], prompt: "item {{ item }}"}
          - {id: s, vars: {x: 1}}
    """)
    assert result.steps["a"].usage == Usage(11, 3)
    assert result.steps["fan"].usage == Usage(15, 6) and result.steps["s"].usage == Usage()
    assert result.usage == Usage(26, 9) and result.usage.total == 35
    assert result.cost is None and result.steps["a"].cost is None


def test_parallel_children_are_counted_once(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("r", usage=(4, 1))
    result = run("steps:\n  - {id: p, steps: [{id: l, prompt: l}, {id: r, prompt: r}]}\n")
    assert result.steps["l"].usage == Usage(4, 1) and result.usage == Usage(8, 2)


def test_pricing_gives_step_and_run_costs(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("priced", usage=(1000, 200))
    fake_anthropic.reply("other", usage=(1000, 200), model="claude-haiku-5-5", when="cheap")

    class Ask(pipeline_nb.Step):
        def run(self, ctx: pipeline_nb.StepContext) -> str:
            return ctx.invoke("from python", stream=False).text

    result = pipeline_nb.run(PRICED + """steps:
  - {id: a, prompt: "hi"}
  - {id: fan, for_each: [1, 2], prompt: "n {{ item }}"}
  - {id: py, call: Ask}
  - {id: cheap, prompt: "cheap", model: claude-haiku-5-5}
""", namespace={"Ask": Ask})
    one = (1000 * 3 + 200 * 15) / 1e6
    assert result.steps["a"].cost == pytest.approx(one)
    assert result.steps["fan"].cost == pytest.approx(2 * one)
    assert result.steps["py"].cost == pytest.approx(one) and result.steps["py"].usage == Usage(1000, 200)
    assert result.steps["cheap"].cost is None  # claude-haiku-5-5 is not in the table
    assert result.cost == pytest.approx(4 * one)


def test_a_bad_pricing_table_is_a_spec_error() -> None:
    with pytest.raises(pipeline_nb.PipelineSpecError, match="pricing"):
        pipeline_nb.run("defaults: {pricing: {m: {input: cheap}}}\nsteps:\n  - {id: a, prompt: hi}\n")
