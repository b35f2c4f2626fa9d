"""The template sandbox: templates that break Jinja, templates that ask for too much, renders that
must stop when their run is interrupted, and calls on kernel objects.

Each oversized case asks for a little more than a bound allows (a few MB, not GB), so the same
test run against an unbounded sandbox fails by returning text instead of hanging the machine.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._results import StepResult
from pipeline_nb._loader import load_spec
from pipeline_nb._template_limits import CANCEL_POLL_EVERY, MAX_LOOP_STEPS
from pipeline_nb._templates import RenderInterrupted, TemplateProblem, compile_template, render_cancelled_by
from pipeline_nb._values import compile_value

REFUSED = "refused by the template sandbox"
DEEP = "(" * 100 + "1" + ")" * 100


def render(source: str, **names) -> str:
    return compile_template(source).render(names)


# -- 1. templates that break Jinja itself are spec errors with their location --

@pytest.mark.parametrize(("step", "where", "expect"), [
    (f'prompt: "{{{{ {DEEP} }}}}"', (3, 13), "nests too deeply"),
    (f'prompt: "hi"\n    when: "{DEEP}"', (4, 11), "nests too deeply"),
    ("prompt: |\n      line one\n      {{ (2 ** 100000000) | string }}", (5, 7), "4,096 bits"),
    ('type: set\n    vars:\n      x: "{{ (2 ** 100000000) | string }}"', (5, 7), "4,096 bits"),
], ids=["nested-parentheses", "nested-parentheses-in-when", "huge-power-literal", "huge-power-in-vars"])
def test_a_template_that_breaks_jinja_is_a_spec_error_at_its_line(step, where, expect):
    text = f"steps:\n  - id: a\n    {step}\n"

    with pytest.raises(PipelineSpecError, match=expect) as raised:
        load_spec(text)

    assert (raised.value.location.line, raised.value.location.col) == where


# -- 2. bounds on what one render may build or do --

OVERSIZED = {
    "power": ("{{ (2 ** n) | string | length }}", {"n": 5_000}, "4,096 bits"),
    "repetition": ("{{ ('x' * n) | length }}", {"n": 2_000_000}, "repeat up to 1,000,000"),
    "printf-star-width": ('{{ ("%0*d" % (n, 1)) | length }}', {"n": 2_000_000}, "% format is 2,000,000"),
    "format-filter-width": ('{{ "%0*d" | format(n, 1) | length }}', {"n": 2_000_000}, "% format is 2,000,000"),
    "format-method-width": ('{{ "{:>2000000}".format(1) | length }}', {}, "format() is 2,000,000"),
    "format-nested-width": ('{{ "{:{w}}".format(1, w=n) | length }}', {"n": 2_000_000}, "format() is 2,000,000"),
    "center": ("{{ 'a' | center(n) | length }}", {"n": 2_000_000}, "center() width is 2,000,000"),
    "center-method": ("{{ 'a'.center(n) | length }}", {"n": 2_000_000}, "center() width is 2,000,000"),
    "indent": ("{{ 'a\nb' | indent(n) | length }}", {"n": 2_000_000}, "indent() width is 2,000,000"),
    "batch-fill": ("{{ [1] | batch(n, 0) | list | length }}", {"n": 2_000_000}, "batch() size is 2,000,000"),
    "range": ("{{ range(n) | list | length }}", {"n": 200_000}, "ranges of up to 100,000"),
    "lipsum": ("{{ lipsum(n) | length }}", {"n": 2_000}, "at most 100,000; ask for fewer paragraphs"),
    "join": ("{{ ([('x' * 1000000)] * 11) | join | length }}", {}, "join would build 11,000,000"),
    "concat-doubling": ("{% set ns = namespace(s='x') %}{% for i in range(24) %}{% set ns.s = ns.s ~ ns.s %}"
                        "{% endfor %}{{ ns.s | length }}", {}, "at most 10,000,000"),
    "list-doubling": ("{% set ns = namespace(l=[1]) %}{% for i in range(24) %}{% set ns.l = ns.l + ns.l %}"
                      "{% endfor %}{{ ns.l | length }}", {}, "at most 10,000,000"),
    "extend-doubling": ("{% set l = [1] %}{% for i in range(24) %}{% set _ = l.extend(l) %}{% endfor %}"
                        "{{ l | length }}", {}, "at most 10,000,000"),
    "loop-budget": ("{% for i in range(2000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", {},
                    f"more than {MAX_LOOP_STEPS:,} loop iterations"),
    "macro-budget": ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(20) }}",
                     {}, f"more than {MAX_LOOP_STEPS:,} loop iterations and macro calls"),
    "output": ("{% for i in range(11000) %}{{ 'x' * 1000 }}{% endfor %}", {}, "rendered text passed 10,000,000"),
}


@pytest.mark.parametrize("case", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_a_template_asking_for_more_than_a_bound_is_refused_with_the_bound_and_the_fix(case):
    source, names, bound = case

    with pytest.raises(TemplateProblem) as raised:
        render(source, **names)

    message = str(raised.value)
    assert message.startswith(REFUSED) and bound in message
    assert "python step" in message or "lipsum" in source


def test_a_bound_hit_at_run_time_is_a_step_error_at_the_template_line():
    spec = ("vars: {n: 2000000}\nsteps:\n  - id: a\n    provider: mock\n"
            "    prompt: |\n      Hello.\n      {{ 'x' * n }}\n")

    with pytest.raises(pipeline_nb.StepError) as raised:
        pipeline_nb.run(spec)

    step = raised.value.run.steps["a"]
    assert step.error.type == "template_error" and REFUSED in step.error.message
    assert step.error.message.endswith("(at <pipeline>:7:7)")


# -- 3. a render stops when its run is interrupted --

SLOW = "{% for i in range(100000) %}{% for j in range(3000) %}x{% endfor %}{% endfor %}"


def test_a_render_stops_at_the_first_poll_after_its_run_is_cancelled():
    polls = []

    def cancelled_at_third_poll() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with render_cancelled_by(cancelled_at_third_poll), pytest.raises(RenderInterrupted, match="interrupted"):
        render(SLOW)

    assert len(polls) == 3


def test_a_render_on_a_worker_thread_ends_soon_after_its_run_is_cancelled():
    # Within the loop budget but seconds of work: only the cancel flag can end it early.
    heavy = "{% for i in range(100000) %}{{ ('x' * 1000000) | length }}{% endfor %}"
    template, polled, cancel = compile_template(heavy), threading.Event(), threading.Event()
    outcome: list[BaseException | str] = []

    def is_cancelled() -> bool:
        polled.set()
        return cancel.is_set()

    def work() -> None:
        with render_cancelled_by(is_cancelled):
            try:
                outcome.append(template.render({}))
            except TemplateProblem as exc:
                outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    assert polled.wait(timeout=60)
    cancel.set()
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RenderInterrupted)


def test_the_cancel_flag_is_polled_every_few_hundred_loop_steps():
    polls = []
    with render_cancelled_by(lambda: polls.append(1) or False):
        render("{% for i in range(10000) %}{% endfor %}")

    assert len(polls) == 10000 // CANCEL_POLL_EVERY


# -- 4. calls on kernel objects are refused; plain data still works --

class FakeShell:
    """Stands in for the kernel's shell: a ``system`` method and a ``kernel.session.key``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.kernel = type("Kernel", (), {"session": type("Session", (), {"key": b"secret"})()})()

    def system(self, command: str) -> None:
        self.marker.write_text(command)


@pytest.fixture
def kernel_names(tmp_path: Path) -> dict:
    shell = FakeShell(tmp_path / "ran")

    def get_ipython() -> FakeShell:
        return shell

    return {"get_ipython": get_ipython, "shell": shell, "open": open, "marker": tmp_path / "ran"}


@pytest.mark.parametrize(("source", "what"), [
    ("{{ get_ipython().system('touch x') }}", "get_ipython is a function from the kernel"),
    ("{{ get_ipython().kernel.session.key }}", "get_ipython is a function from the kernel"),
    ("{{ shell.system('touch x') }}", "system is a method of FakeShell"),
    ("{{ (shell | attr('system'))('touch x') }}", "system is a method of FakeShell"),
    ("{{ open(marker, 'w').write('x') }}", "open is a function from the kernel"),
])
def test_a_call_on_a_kernel_object_is_refused_and_runs_nothing(kernel_names, source, what):
    with pytest.raises(TemplateProblem) as raised:
        compile_template(source).render(kernel_names)

    message = str(raised.value)
    assert message.startswith(f"{REFUSED}: templates may only call methods of plain data")
    assert f"{what}" in message and "python step" in message
    assert not kernel_names["marker"].exists()


def test_an_expression_calling_a_kernel_function_is_refused(kernel_names):
    with pytest.raises(TemplateProblem, match="get_ipython is a function from the kernel"):
        compile_value("get_ipython().system('touch x')", expression=True).evaluate(kernel_names)
    assert not kernel_names["marker"].exists()


def test_a_step_calling_a_kernel_function_fails_with_its_location_and_runs_nothing(kernel_names):
    spec = "steps:\n  - id: a\n    provider: mock\n    prompt: \"{{ get_ipython().system('touch x') }}\"\n"

    with pytest.raises(pipeline_nb.StepError) as raised:
        pipeline_nb.run(spec, namespace=kernel_names)

    step = raised.value.run.steps["a"]
    assert step.error.type == "template_error" and "get_ipython is a function" in step.error.message
    assert "<pipeline>:4:13" in step.error.message
    assert not kernel_names["marker"].exists()


PLAIN = {
    "{{ steps.a.text.upper() }}": "HELLO",
    '{{ items | join(", ") }}': "x, y",
    "{{ d.items() | list }}": "[('k', 1)]",
    '{{ "%d" % 3 }}': "3",
    '{% for i in items %}{{ loop.cycle("a", "b") }}{% endfor %}': "ab",
    "{{ range(3) | list }}": "[0, 1, 2]",
    '{{ when.strftime("%Y") }}': "2024",
    '{{ "{:>4}|{}".format(1, "b") }}': "   1|b",
    "{{ '-' * 3 }}{{ 2 ** 10 }}{{ [1] + [2] }}": "---1024[1, 2]",
    "{% for x in items %}{{ loop.index }}/{{ loop.length }}{% if loop.last %}.{% endif %}{% endfor %}": "1/22/2.",
    "{% for x in [] %}a{% else %}empty{% endfor %}": "empty",
    "{% for x in [[1, [2]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}"
    "{% endfor %}": "12",
    "{% macro m(v) %}<{{ v }}{{ caller() }}>{% endmacro %}{% call m(1) %}c{% endcall %}": "<1c>",
    "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{% set j = joiner('+') %}{{ j() }}1{{ j() }}2": "ab1+2",
    "{% set ns = namespace(n=1) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}{{ dict(a=1) | list }}": "2['a']",
    "{{ steps.a.ok }} {{ steps.a.usage.total }} {{ 'a\nb' | indent(2) }} {{ 'ab' | center(4) }}": "False 0 a\n  b  ab ",
}


@pytest.mark.parametrize(("source", "expected"), PLAIN.items(), ids=range(len(PLAIN)))
def test_templates_that_only_use_plain_data_still_render(source, expected):
    names = {"steps": {"a": StepResult("a", text="hello")}, "items": ["x", "y"], "d": {"k": 1},
             "when": datetime.datetime(2024, 5, 1)}

    assert render(source, **names) == expected
