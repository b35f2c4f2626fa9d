"""%%pipeline through the real IPython shell: options, help, config, namespace."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from pipeline_nb import PipelineSpecError, StepError

SPEC = """
defaults: {mock_delay: 0}
steps:
  - id: a
    prompt: "About {{ topic }}"
    stream: true
    save_as: about
"""


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython() or get_ipython()  # one global shell per process
    shell.run_line_magic("load_ext", "pipeline_nb")
    return shell


def test_binds_name_last_run_and_save_as(ip):
    ip.user_ns["topic"] = "tides"
    ip.run_cell_magic("pipeline", "res", SPEC)
    res = ip.user_ns["res"]
    assert ip.user_ns["_pipeline"] is res
    assert ip.user_ns["about"] == res.steps["a"].text
    assert "About tides" in res.steps["a"].text


def test_var_overrides_the_namespace_and_options_override_steps(ip):
    ip.user_ns["topic"] = "tides"
    ip.run_cell_magic("pipeline", "--var topic=moons --model claude-haiku-5-5 --no-stream", SPEC)
    step = ip.user_ns["_pipeline"].steps["a"]
    assert "About moons" in step.text and step.model == "claude-haiku-5-5"


def test_config_traits_set_the_defaults(ip):
    ip.run_line_magic("config", "PipelineMagics.model = 'claude-opus-5-5'")
    try:
        ip.run_cell_magic("pipeline", "", SPEC)
        assert ip.user_ns["_pipeline"].steps["a"].model == "claude-opus-5-5"
    finally:
        ip.run_line_magic("config", "PipelineMagics.model = 'claude-sonnet-5-5'")


def test_help_comes_from_the_docstring(ip):
    from pipeline_nb._magics import PipelineMagics

    doc = PipelineMagics.pipeline.__doc__
    assert "--var KEY=VALUE" in doc and "--no-stream" in doc and "_pipeline" in doc


@pytest.mark.parametrize("line", ["--var nokey", "--bogus", "1name"])
def test_bad_options_are_usage_errors(ip, line):
    with pytest.raises(UsageError):
        ip.run_cell_magic("pipeline", line, SPEC)


def test_spec_errors_count_the_magic_line(ip):
    with pytest.raises(PipelineSpecError, match=r"<cell>:4:5: step 'a': unknown key 'promt'"):
        ip.run_cell_magic("pipeline", "", "steps:\n  - id: a\n    promt: hi\n")


def test_a_missing_key_fails_before_any_call_and_the_failed_run_is_bound(ip, monkeypatch, fake_anthropic):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(StepError, match="step 'a' failed: missing_api_key: ANTHROPIC_API_KEY is not set") as info:
        ip.run_cell_magic("pipeline", "nokey --provider claude",
                          "steps:\n  - id: a\n    prompt: hi\n  - id: b\n    prompt: more\n")
    run = ip.user_ns["nokey"]
    assert info.value.run is run and ip.user_ns["_pipeline"] is run
    assert run.status == "error" and [s.status for s in run.steps.values()] == ["error", "skipped"]
    assert fake_anthropic.requests == []


def test_a_handler_that_raises_fails_the_run_as_well_as_the_cell(ip):
    def fragile(event):
        raise RuntimeError("view broke")

    ip.user_ns["fragile"] = fragile
    with pytest.raises(StepError, match="fragile raised RuntimeError: view broke"):
        ip.run_cell_magic("pipeline", "handled", SPEC.replace("stream: true", "stream: true\n    stream_handler: fragile"))
    run = ip.user_ns["handled"]
    assert run.status == "error" and run.steps["a"].status == "ok"
    assert "status='error'" in repr(run)


def test_a_failed_step_raises_and_the_run_is_still_bound(ip, fake_anthropic):
    fake_anthropic.fault("http", status=400, when="first")
    spec = "steps:\n  - id: a\n    prompt: first\n  - id: b\n    prompt: second\n"
    with pytest.raises(StepError, match="step 'a' failed: invalid_request_error") as info:
        ip.run_cell_magic("pipeline", "broken --provider claude", spec)
    run = ip.user_ns["broken"]
    assert info.value.run is run and ip.user_ns["_pipeline"] is run
    assert [s.status for s in run.steps.values()] == ["error", "skipped"]
    assert run.steps["a"].error.request_id.startswith("req_")


def test_the_cell_name_names_a_spec_without_one(ip) -> None:
    ip.run_cell_magic("pipeline", "unnamed_demo", "steps:\n  - {id: a, prompt: hi}\n")
    ip.run_cell_magic("pipeline", "named_demo", "name: explicit\nsteps:\n  - {id: a, prompt: hi}\n")
    assert ip.user_ns["unnamed_demo"].name == "unnamed_demo"
    assert ip.user_ns["named_demo"].name == "explicit"


def test_stream_option_streams_every_step(ip):
    kinds: list[str] = []
    ip.user_ns["note_kinds"] = lambda event: kinds.append(event.kind)
    cell = "defaults: {mock_delay: 0, stream_handler: note_kinds}\nsteps:\n  - {id: a, prompt: hi}\n"
    ip.run_cell_magic("pipeline", "", cell)
    assert "delta" not in kinds
    ip.run_cell_magic("pipeline", "--stream", cell)
    assert kinds.count("delta") > 3 and ip.user_ns["_pipeline"].ok


def test_in_a_terminal_the_texts_and_one_summary_are_printed(ip, capsys):
    ip.run_cell_magic("pipeline", "term", "defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n")
    out, err = capsys.readouterr()
    shown = out + err
    assert ip.user_ns["term"].steps["a"].text in out
    assert shown.count("term: ok · 1 step") == 1, shown  # the console's summary, not a second rendering


def test_a_run_or_step_shown_alone_in_a_cell_renders_as_html(ip):
    ip.run_cell_magic("pipeline", "shown", "defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n")
    run = ip.user_ns["shown"]
    html = ip.display_formatter.formatters["text/html"]
    was, html.enabled = html.enabled, True  # as in a notebook (a terminal shell turns HTML off)
    try:
        for value in (run, run.steps["a"]):
            data, _ = ip.display_formatter.format(value, include=["text/html"])
            assert 'class="pnb-' in data["text/html"] and run.steps["a"].text[:20] in data["text/html"]
    finally:
        html.enabled = was
