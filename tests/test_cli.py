"""``python -m pipeline_nb run``: streamed text on stdout, summary on stderr, exit codes.

Runs that stream run the real entry point in subprocesses (in parallel: startup is
slow); argument and spec errors call ``cli.main`` in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

import pipeline_nb
from pipeline_nb._cli import main
from pipeline_nb.testing import FakeAnthropic

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pipelines" / "demo.yaml"


def demo_texts() -> list[str]:
    """The demo's step texts, computed in-process (the mock is deterministic)."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["defaults"]["mock_delay"] = 0
    run = pipeline_nb.run(data)
    return [step.text for step in run.steps.values()]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeAnthropic, dict[str, Done]]]:
    """Each command line below, run at once in parallel subprocesses (startup is slow)."""
    with FakeAnthropic() as fake:
        fake.reply("Fake tides report.", when="Summarize the latest findings on moons",
                   chunks=["Fake ", "tides ", "report."])
        fake.reply("Fair critique.", when="Critique")
        fake.fault("http", status=400, message="no good", when="failing")
        commands = {
            "demo": ["pipelines/demo.yaml", "--stream"],
            "claude": ["pipelines/demo.yaml", "--stream", "--provider", "claude", "--var", "topic=moons"],
            "failing": ["pipelines/demo.yaml", "--provider", "claude", "--var", "topic=failing"],
        }
        env = {**os.environ, "PYTHONIOENCODING": "utf-8", "ANTHROPIC_BASE_URL": fake.base_url,
               "ANTHROPIC_API_KEY": "sk-test"}
        procs = {name: subprocess.Popen([sys.executable, "-m", "pipeline_nb", "run", *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
                 for name, args in commands.items()}
        done = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            done[name] = Done(proc.returncode, out, err)
        yield fake, done


class Done(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def test_demo_streams_to_stdout_and_summarises_to_stderr(cli_runs: tuple[FakeAnthropic, dict[str, Done]]) -> None:
    done = cli_runs[1]["demo"]
    assert done.returncode == 0, done.stderr
    summary, critique = demo_texts()
    assert done.stdout == f"{summary}\n{critique}\n"
    assert "── summary (claude-sonnet-5-5) ──" in done.stderr
    assert "demo: ok · 2 steps" in done.stderr
    assert "✓ summary: ok" in done.stderr and "✓ critique: ok" in done.stderr
    assert "demo: ok" not in done.stdout


def test_claude_against_fake_anthropic(cli_runs: tuple[FakeAnthropic, dict[str, Done]]) -> None:
    fake, runs = cli_runs
    done = runs["claude"]
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Fake tides report.\nFair critique.\n"
    first, second = [r for r in fake.requests if "moons" in r.prompt or "Fake tides" in r.prompt]
    assert first.prompt == "Summarize the latest findings on moons." and first.stream
    assert second.prompt == "Critique this summary: Fake tides report." and second.stream


def test_a_failing_step_exits_1(cli_runs: tuple[FakeAnthropic, dict[str, Done]]) -> None:
    fake, runs = cli_runs
    done = runs["failing"]
    assert done.returncode == 1, done.stderr
    assert "demo: error" in done.stderr and "✗ summary: error" in done.stderr
    assert "invalid_request_error: no good (HTTP 400)" in done.stderr and "↷ critique: skipped" in done.stderr
    assert done.stdout == ""
    assert sum("failing" in r.prompt for r in fake.requests) == 1


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


FLOW = "defaults: {mock_delay: 0}\nsteps:\n  - id: a\n    prompt: 'About {{ topic }}'\n"


@pytest.mark.parametrize("var", ["1x=2", "novalue", "=x", "a b=c"])
def test_a_bad_var_exits_2(var: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", write(tmp_path, FLOW), "--var", var])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--var expects KEY=VALUE" in err and repr(var) in err and "pipeline_nb run" in err


def test_var_and_no_stream_print_the_final_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", write(tmp_path, FLOW), "--no-stream", "--var", "topic=a=b"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("[mock claude-sonnet-5-5] You asked: About a=b\n") and out.count("You asked") == 1
    assert "pipeline: ok · 1 step" in err


def test_a_bad_spec_exits_2_with_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "steps:\n  - id: a\n    prompt: hi\n    promtp: typo\n")
    assert main(["run", path]) == 2
    out, err = capsys.readouterr()
    assert f"error: {path}:4:5: step 'a': unknown key 'promtp'" in err
    assert "did you mean 'prompt'?" in err and out == ""


def test_an_undefined_variable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, FLOW)
    assert main(["run", path]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:4:13: step 'a': prompt uses {{{{ topic }}}}" in err and "--var topic=VALUE" in err


def test_a_missing_file_exits_2_and_a_missing_key_fails_the_first_claude_step_before_any_call(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fake_anthropic: FakeAnthropic) -> None:
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read pipeline file" in capsys.readouterr().err
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["run", write(tmp_path, FLOW), "--provider", "claude", "--var", "topic=x"]) == 1
    err = capsys.readouterr().err
    assert "missing_api_key: ANTHROPIC_API_KEY is not set" in err and fake_anthropic.requests == []


def test_an_unknown_provider_flag_is_blamed_on_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", write(tmp_path, FLOW), "--provider", "openai", "--var", "topic=x"]) == 2
    err = capsys.readouterr().err
    assert "--provider 'openai' is not a known provider" in err and "flow.yaml:" not in err


def test_a_step_that_fails_mid_stream_ends_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("never finished here", when="one")
    fake_anthropic.reply("second answer", when="two")
    fake_anthropic.fault("cut", when="one", after=2)
    path = write(tmp_path, "defaults: {provider: claude, stream: true, retries: 0}\nsteps:\n"
                           "  - id: a\n    prompt: one\n  - id: b\n    prompt: two\n    continue_on_error: true\n")
    assert main(["run", path]) == 1
    out, err = capsys.readouterr()
    assert out == "never finished \nsecond answer\n"
    assert "✗ a: error" in err and "connection_lost" in err and "✓ b: ok" in err


def test_help_is_plain_text_and_version_and_the_script_name_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    import pipeline_nb

    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert "``" not in shown and "exit codes: 0 every step ok" in shown
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip().endswith(pipeline_nb.__version__)
    script = subprocess.run([str(Path(sys.executable).with_name("pipeline-nb")), "run", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and script.stdout.startswith("usage: pipeline-nb run")
