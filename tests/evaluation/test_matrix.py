"""matrix: a step once per combination of values (models, prompt variants), compared side by side."""

from __future__ import annotations

import pytest

from pipeline_nb.testing import FakeAnthropic

from _ev import run, spec_error

PRICES = "pricing: {claude-haiku-5-5: {input: 1, output: 5}, claude-sonnet-5-5: {input: 3, output: 15}}"


def by_model(fake: FakeAnthropic) -> None:
    fake.reply("Paris.", when=lambda r: r.body["model"] == "claude-sonnet-5-5", usage=(10, 3))
    fake.reply("Lyon, maybe.", when=lambda r: r.body["model"] == "claude-haiku-5-5", usage=(10, 5))


def test_a_matrix_over_two_models_and_two_prompts_compares_them(fake_anthropic: FakeAnthropic) -> None:
    by_model(fake_anthropic)
    result = run(f"""
        defaults: {{provider: claude, retries: 0, {PRICES}}}
        steps:
          - id: ask
            prompt: "{{{{ style }}}} What is the capital of France?"
            matrix:
              model: [claude-haiku-5-5, claude-sonnet-5-5]
              style: ["One word.", "Briefly."]
            expect: [{{contains: Paris}}]
    """)
    ask = result.steps["ask"]
    assert [v.id for v in ask.variants] == ["ask@1", "ask@2", "ask@3", "ask@4"]
    assert [(v.matrix["model"], v.matrix["style"], v.model) for v in ask.variants] == [
        ("claude-haiku-5-5", "One word.", "claude-haiku-5-5"), ("claude-haiku-5-5", "Briefly.", "claude-haiku-5-5"),
        ("claude-sonnet-5-5", "One word.", "claude-sonnet-5-5"), ("claude-sonnet-5-5", "Briefly.", "claude-sonnet-5-5")]
    sent = sorted((r.body["model"], r.prompt) for r in fake_anthropic.requests)
    assert sent == [("claude-haiku-5-5", "Briefly. What is the capital of France?"),
                    ("claude-haiku-5-5", "One word. What is the capital of France?"),
                    ("claude-sonnet-5-5", "Briefly. What is the capital of France?"),
                    ("claude-sonnet-5-5", "One word. What is the capital of France?")]
    assert ask.output == ["Lyon, maybe.", "Lyon, maybe.", "Paris.", "Paris."] and ask.note == "4 combinations"
    table = ask.to_pandas()
    assert table.columns.tolist()[:4] == ["model", "style", "status", "pass_rate"]
    assert table["pass_rate"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert table['pass_rate: contains "Paris"'].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert table["output_tokens"].tolist() == [5, 5, 3, 3] and table["calls"].tolist() == [1, 1, 1, 1]
    assert table["cost"].round(8).tolist() == [3.5e-05, 3.5e-05, 7.5e-05, 7.5e-05]
    assert table["latency"].notna().all()
    assert [r.variant for r in result.checks.rates()] == [v.label for v in ask.variants]
    assert ask.variants[0].label == "model=claude-haiku-5-5 · style=One word."


def test_a_templated_model_and_for_each_and_repeat_inside_each_combination(fake_anthropic: FakeAnthropic) -> None:
    by_model(fake_anthropic)
    result = run("""
        steps:
          - id: ask
            model: "claude-{{ size }}-5-5"
            matrix: {size: [haiku, sonnet]}
            for_each: [France, Spain]
            repeat: 2
            prompt: "Capital of {{ item }}?"
    """)
    ask = result.steps["ask"]
    assert [v.model for v in ask.variants] == ["claude-haiku-5-5", "claude-sonnet-5-5"]
    assert [[s.id for i in v.items for s in i.samples] for v in ask.variants] == [
        ["ask@1[0]#1", "ask@1[0]#2", "ask@1[1]#1", "ask@1[1]#2"],
        ["ask@2[0]#1", "ask@2[0]#2", "ask@2[1]#1", "ask@2[1]#2"]]
    assert len(fake_anthropic.requests) == 8
    assert ask.to_pandas()["calls"].tolist() == [4, 4]
    rows = result.to_pandas()
    assert rows[["size", "item_index", "sample"]].values.tolist()[:3] == [["haiku", 0, 1], ["haiku", 0, 2],
                                                                          ["haiku", 1, 1]]


@pytest.mark.parametrize(("yaml", "message", "where"), [
    ("model: claude-haiku-5-5\nmatrix: {model: [a, b]}", "matrix sets 'model', which the step also sets", 7),
    ("matrix: {for_each: [[1], [2]]}", "matrix sets 'for_each', which a matrix cannot vary", 6),
    ("matrix: {max_tokens: [100, many]}", "matrix.max_tokens[1]: 'many' is not of type 'integer'", 6),
    ("model: \"claude-{{ size }}\"", "model is a template, which only a matrix step may be", 6),
    ("model: \"claude-{{ size }}\"\nmatrix: {tier: [a]}", "model uses {{ size }}, which the matrix does not set", 6),
    ("matrix: {n: [1, 2]}\nwhen: \"{{ n > 1 }}\"", "when uses {{ n }}, which is not defined", 7),
    ("repeat: 2\nbatch: true\nfor_each: [1]", "a batch step cannot repeat", 6),
])
def test_matrix_and_repeat_mistakes_are_refused_before_any_call(yaml: str, message: str, where: int) -> None:
    lines = yaml.replace("\n", "\n            ")
    error = spec_error(f"""
        steps:
          - id: ask
            prompt: hi
            {lines}
    """)
    assert message in str(error) and error.location.line == where and error.step_id == "ask"


def test_a_budget_needs_a_price_for_every_model_of_the_matrix_and_its_judge() -> None:
    error = spec_error("""
        defaults: {max_cost: 1, pricing: {claude-haiku-5-5: {input: 1, output: 5}}}
        steps:
          - id: ask
            prompt: hi
            matrix: {model: [claude-haiku-5-5, claude-sonnet-5-5]}
    """)
    assert "model 'claude-sonnet-5-5' has no price" in str(error)
    error = spec_error("""
        defaults: {max_cost: 1, pricing: {claude-haiku-5-5: {input: 1, output: 5}}}
        steps:
          - {id: ask, prompt: hi, model: claude-haiku-5-5, expect: [{judge: ok, model: claude-opus-5}]}
    """)
    assert "model 'claude-opus-5' has no price" in str(error)
