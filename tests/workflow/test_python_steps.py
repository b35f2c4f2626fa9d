"""set and python steps: kernel functions, module:attr, Step subclasses with a streaming
ctx.invoke through the real SDK, and failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb._results import Usage
from pipeline_nb.streaming import BufferHandler, Event
from pipeline_nb.testing import FakeAnthropic

from _wf import prompts, run, spec_error


def test_set_vars_are_native_values_for_later_steps(fake_anthropic: FakeAnthropic) -> None:
    seen: dict[str, Any] = {}

    def record(**kwargs: Any) -> str:
        seen.update(kwargs)
        return "recorded"

    result = run("""
        vars: {base: 10}
        steps:
          - id: s
            vars: {nums: "{{ [1, 2, 3] }}", n: "{{ base + 1 }}", label: "n={{ base }}", flag: true, words: [a, b]}
          - id: use
            call: record
            args: {nums: "{{ nums }}", n: "{{ n }}", label: "{{ label }}", flag: "{{ flag }}", words: "{{ words }}"}
          - id: ask
            prompt: "{{ label }}: {{ nums | sum }}"
    """, namespace={"record": record})
    assert result.ok and result.steps["s"].output["nums"] == [1, 2, 3]
    assert seen == {"nums": [1, 2, 3], "n": 11, "label": "n=10", "flag": True, "words": ["a", "b"]}
    assert prompts(fake_anthropic) == ["n=10: 6"]


def test_a_variable_nothing_defines_is_still_a_spec_error() -> None:
    error = spec_error("""
        steps:
          - id: ask
            prompt: "{{ later }}"
          - id: s
            vars: {later: 1}
    """)
    assert "prompt uses {{ later }}, which is not defined" in str(error) and error.step_id == "ask"
    assert "set step is missing 'vars'" in str(spec_error("steps:\n  - {id: s, type: set}\n"))


def test_a_kernel_function_gets_templated_args_and_ctx(fake_anthropic: FakeAnthropic) -> None:
    def summarise(items: list[str], ctx: pipeline_nb.StepContext) -> dict[str, Any]:
        return {"count": len(items), "step": ctx.step_id, "topic": ctx.vars["topic"], "a": ctx.steps["a"].text}

    result = run("""
        vars: {topic: tides}
        steps:
          - {id: a, prompt: "about {{ topic }}"}
          - id: sum
            call: summarise
            args: {items: "{{ [steps.a.text, topic] }}"}
    """, namespace={"summarise": summarise})
    assert result.steps["sum"].output == {"count": 2, "step": "sum", "topic": "tides",
                                          "a": "Fake reply to: about tides"}
    assert result.steps["sum"].type == "python"


def test_module_attr_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_anthropic: FakeAnthropic) -> None:
    (tmp_path / "wf_helpers.py").write_text("def double(xs):\n    return [x * 2 for x in xs]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("""
        steps:
          - {id: d, call: "wf_helpers:double", args: {xs: [1, 2, 3]}}
          - {id: e, call: wf_helpers.double, args: {xs: "{{ steps.d.output }}"}}
    """)
    assert result.steps["d"].output == [2, 4, 6] and result.steps["e"].output == [4, 8, 12]


class Shout(pipeline_nb.Step):
    """Asks the model through ctx.invoke, streaming, and shouts the reply."""

    def run(self, ctx: pipeline_nb.StepContext) -> str:
        reply = ctx.invoke(f"Say {ctx.args['word']}", stream=True, on_event=ctx.args["sink"].append)
        return reply.text.upper()


def test_a_step_subclass_streams_ctx_invoke_to_the_run_handlers(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("hello there", when="Say hello", chunks=["hel", "lo ", "there"], usage=(5, 3))
    buf, sink = BufferHandler(), []  # type: ignore[var-annotated]
    result = run("""
        steps:
          - id: shout
            call: Shout
            args: {word: hello, sink: "{{ sink }}"}
    """, namespace={"Shout": Shout, "sink": sink}, on_event=buf)
    shout = result.steps["shout"]
    assert shout.status == "ok" and shout.output == "HELLO THERE" and shout.text == "HELLO THERE"
    assert buf.texts == {"shout.invoke1": "hello there"}
    assert [e.data.content for e in sink if e.kind == "delta"] == ["hel", "lo ", "there"]
    assert [e.kind for e in sink][-1] == "done" and all(isinstance(e, Event) for e in sink)
    assert shout.usage == Usage(5, 3) and result.usage == Usage(5, 3)
    assert fake_anthropic.requests[0].stream is True


def test_ctx_invoke_keeps_the_steps_retry_settings(fake_anthropic: FakeAnthropic) -> None:
    class Twice(pipeline_nb.Step):
        def run(self, ctx: pipeline_nb.StepContext) -> list[str]:
            return [ctx.invoke(f"call {n}", stream=False).text for n in (1, 2)]

    fake_anthropic.fault("overloaded_http", when="call 1")
    result = run("""
        defaults: {provider: claude, retries: 1, retry_backoff: [0.01, 0.02]}
        steps:
          - {id: t, call: Twice}
    """, namespace={"Twice": Twice})
    assert result.steps["t"].output == ["Fake reply to: call 1", "Fake reply to: call 2"]
    assert prompts(fake_anthropic) == ["call 1", "call 1", "call 2"]
    fake_anthropic.clear()
    fake_anthropic.fault("overloaded_http", when="call 1")
    result = run("steps:\n  - {id: t, call: Twice}\n", namespace={"Twice": Twice})  # retries: 0
    assert result.steps["t"].status == "error" and prompts(fake_anthropic) == ["call 1"]


def test_ctx_invoke_sends_system_and_params_as_given(fake_anthropic: FakeAnthropic) -> None:
    class Ask(pipeline_nb.Step):
        def run(self, ctx: pipeline_nb.StepContext) -> str:
            return ctx.invoke("{{ not a template }}", stream=False, system="Use {{ braces }}", max_tokens=77).text

    result = run("steps:\n  - {id: ask, call: Ask, model: claude-haiku-5-5}\n", namespace={"Ask": Ask})
    body = fake_anthropic.requests[0].body
    assert result.ok and body["system"] == "Use {{ braces }}" and body["max_tokens"] == 77
    assert body["model"] == "claude-haiku-5-5" and body["messages"][0]["content"] == "{{ not a template }}"


def test_a_failing_ctx_invoke_fails_the_step(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, message="refused")
    result = run("steps:\n  - {id: shout, call: Shout, args: {word: hi, sink: []}}\n", namespace={"Shout": Shout})
    shout = result.steps["shout"]
    assert shout.status == "error" and shout.error.type == "python_error"
    assert "PipelineError: ctx.invoke failed: invalid_request_error: refused" in shout.error.message


def test_a_raising_function_is_a_step_error_and_later_steps_skip(fake_anthropic: FakeAnthropic) -> None:
    def boom() -> None:
        raise ValueError("kaput")

    result = run("""
        steps:
          - {id: b, call: boom}
          - {id: after, prompt: never}
    """, namespace={"boom": boom})
    assert result.steps["b"].status == "error" and str(result.steps["b"].error) == "python_error: ValueError: kaput"
    assert result.steps["after"].status == "skipped" and fake_anthropic.requests == []
    with pytest.raises(pipeline_nb.StepError, match="step 'b' failed: python_error: ValueError: kaput"):
        pipeline_nb.run("steps:\n  - {id: b, call: boom}\n", namespace={"boom": boom})


@pytest.mark.parametrize(("call", "message", "hint"), [
    ("nowhere", "'nowhere' is not defined in the kernel and is not an import path", "define the function"),
    ("no_such_mod_xyz:f", "cannot import 'no_such_mod_xyz'", "module:function"),
    ("rank_claimz", "'rank_claimz' is not defined", "did you mean 'rank_claims'?"),
    ("not_callable", "'not_callable' is a int, not a function or Step class", "name a function"),
])
def test_a_call_that_cannot_be_used_is_a_spec_error_before_any_step_runs(
        fake_anthropic: FakeAnthropic, call: str, message: str, hint: str) -> None:
    error = spec_error(f"steps:\n  - {{id: first, prompt: paid}}\n  - {{id: p, call: '{call}'}}\n",
                       namespace={"not_callable": 3, "rank_claims": lambda claims: claims})
    assert message in error.message and hint in error.hint
    assert (error.step_id, error.location.line, error.location.col) == ("p", 4, 19)
    assert fake_anthropic.requests == []


def rank_claims(claims: list, min_strength: str = "weak", *, ctx=None) -> list:
    return claims


@pytest.mark.parametrize(("args", "message", "hint"), [
    ("{claims: [a], min_strenght: strong}", "args has 'min_strenght', which rank_claims", "did you mean 'min_strength'?"),
    ("{min_strength: strong}", "args lacks 'claims', which rank_claims", "add claims: under args:"),
])
def test_argument_names_a_function_does_not_take_are_a_spec_error(
        fake_anthropic: FakeAnthropic, args: str, message: str, hint: str) -> None:
    error = spec_error(f"steps:\n  - {{id: first, prompt: paid}}\n  - id: p\n    call: rank_claims\n"
                       f"    args: {args}\n", namespace={"rank_claims": rank_claims})
    assert message in error.message and hint in error.hint
    assert (error.step_id, error.location.line) == ("p", 6)
    assert fake_anthropic.requests == []


def test_templated_values_keyword_catch_alls_and_ctx_pass_the_plan_check() -> None:
    def takes_any(**kwargs):
        return sorted(kwargs)

    result = run("steps:\n  - {id: a, call: takes_any, args: {x: 1, y: 2}}\n"
                 "  - {id: b, call: rank_claims, args: {claims: '{{ [1] }}'}}\n",
                 namespace={"takes_any": takes_any, "rank_claims": rank_claims})
    assert result.steps["a"].output == ["x", "y"] and result.steps["b"].output == [1]


def test_a_python_step_runs_for_each_item_in_order(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: sq
            for_each: [3, 1, 2]
            as: n
            call: square
            args: {n: "{{ n }}", i: "{{ loop.index }}"}
    """, namespace={"square": lambda n, i: (i, n * n)})
    assert result.steps["sq"].output == [(0, 9), (1, 1), (2, 4)]


def test_python_spec_errors_carry_line_and_column() -> None:
    error = spec_error("""
        steps:
          - id: p
            type: python
            args: {x: 1}
    """)
    assert "python step is missing 'call'" in str(error) and (error.location.line, error.location.col) == (4, 5)
    error = spec_error("steps:\n  - id: p\n    call: f\n    prompt: hi\n    type: python\n")
    assert "'prompt' does not apply to a python step" in str(error) and error.location.line == 5
    error = spec_error("steps:\n  - {id: p, prompt: hi, args: {a: 1}}\n")
    assert "'args' does not apply to an llm step" in str(error)
