"""%%pipeline through the real IPython shell: options, help, config, namespace."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from pipeline_nb import PipelineError, PipelineSpecError, StepError

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
    from pipeline_nb.magics import PipelineMagics

    doc = PipelineMagics.pipeline.__doc__
    assert "--var KEY=VALUE" in doc and "--no-stream" in doc and "_pipeline" in doc


@pytest.mark.parametrize("line", ["--var nokey", "--bogus", "1name"])
def test_bad_options_are_usage_errors(ip, line):
    with pytest.raises(UsageError):
        ip.run_cell_magic("pipeline", line, SPEC)


def test_spec_errors_count_the_magic_line(ip):
    with pytest.raises(PipelineSpecError, match=r"<cell>:4:5: step 'a': unknown key 'promt'"):
        ip.run_cell_magic("pipeline", "", "steps:\n  - id: a\n    promt: hi\n")


def test_a_missing_key_fails_before_any_call(ip, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(PipelineError, match="ANTHROPIC_API_KEY is not set"):
        ip.run_cell_magic("pipeline", "--provider claude", "steps:\n  - id: a\n    prompt: hi\n")


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
