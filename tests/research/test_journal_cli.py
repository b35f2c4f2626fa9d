"""The run journal from the terminal: ``run`` prints the run's id, ``history`` lists and prunes runs,
``show`` prints one, ``--resume`` and ``--rerun`` call only what they must; every mistake is one
``error:`` line and exit code 2. Each command is the real entry point in a subprocess."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from pipeline_nb.testing import FakeAnthropic
from tests.research._flows import CHAIN

MOCK_FLOW = "name: flow\ndefaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: 'About {{ topic }}'}\n"
CLAUDE_FLOW = CHAIN
RUN_LINE = re.compile(r"^run (\d{8}-\d{6}-[0-9a-f]{6})( · resumed from (\S+))?$", re.M)


class Done(NamedTuple):
    returncode: int
    stdout: str
    stderr: str

    def run_id(self) -> str:
        return RUN_LINE.search(self.stderr)[1]


def environment(journal: Path, fake: FakeAnthropic | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PIPELINE_NB_JOURNAL": str(journal)}
    if fake is not None:
        env.update(ANTHROPIC_BASE_URL=fake.base_url, ANTHROPIC_API_KEY="sk-test")
    return env


def cli(env: dict[str, str], *args: str) -> Done:
    proc = subprocess.run([sys.executable, "-m", "pipeline_nb", *args], env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=120)
    return Done(proc.returncode, proc.stdout, proc.stderr)


def cli_at_once(env: dict[str, str], commands: Sequence[Sequence[str]]) -> list[Done]:
    """Each command in a subprocess of its own, all started at once (startup is slow)."""
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline_nb", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, encoding="utf-8") for args in commands]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    return [Done(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs)]


def test_runs_print_their_id_history_lists_them_show_prints_one_and_prune_drops_the_older(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(MOCK_FLOW, encoding="utf-8")
    env = environment(tmp_path / "journal.sqlite")
    first = cli(env, "run", str(flow), "--var", "topic=tides")
    between = dt.datetime.now().isoformat()  # after the first run started, before the second
    second = cli(env, "run", str(flow), "--var", "topic=moons")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first.stderr.rstrip().splitlines()[-1] == f"run {first.run_id()}"
    old, new = first.run_id(), second.run_id()

    listed = cli(env, "history")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [new, old]  # newest first
    assert all("flow: ok · 1 step " in line for line in lines)

    shown = cli(env, "show", old)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("flow: ok · 1 step")
    assert "✓ a: ok" in shown.stdout and "You asked: About tides" in shown.stdout
    assert shown.stdout.rstrip().splitlines()[-1] == f"run {old}"

    pruned = cli(env, "history", "--prune", "--before", between)
    assert pruned.returncode == 0 and pruned.stdout.startswith("pruned 1 run started before"), pruned
    assert [line.split()[0] for line in cli(env, "history").stdout.splitlines()] == [new]


def test_resume_calls_only_what_failed_and_rerun_only_the_step_and_its_readers(tmp_path: Path) -> None:
    flow = tmp_path / "chain.yaml"
    flow.write_text(CLAUDE_FLOW, encoding="utf-8")
    with FakeAnthropic() as fake:
        fake.fault("http", status=400, message="not this time", when="second", times=1)
        env = environment(tmp_path / "journal.sqlite", fake)
        failed = cli(env, "run", str(flow))
        assert failed.returncode == 1 and "✗ b: error" in failed.stderr and "↷ c: skipped" in failed.stderr
        assert [r.prompt for r in fake.requests] == ["first", "second after Fake reply to: first"]

        resumed = cli(env, "run", str(flow), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert RUN_LINE.search(resumed.stderr)[3] == failed.run_id()
        called = [r.prompt for r in fake.requests[2:]]
        assert called == ["second after Fake reply to: first", "third"]  # a came from the failed run
        assert resumed.stdout.startswith("Fake reply to: first\n")  # a reused reply is still printed

        rerun = cli(env, "run", str(flow), "--rerun", "a")
        assert rerun.returncode == 0, rerun.stderr
        assert RUN_LINE.search(rerun.stderr)[3] == resumed.run_id()
        assert [r.prompt for r in fake.requests[4:]] == ["first", "second after Fake reply to: first"]  # not c


def test_each_mistake_is_one_error_line_and_exit_code_2(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(MOCK_FLOW, encoding="utf-8")
    journal = tmp_path / "journal.sqlite"
    env = environment(journal)
    assert cli(env, "run", str(flow), "--var", "topic=x").returncode == 0  # the journal exists
    commands = {
        "show nosuch": (["show", "20260101-000000-abcdef"], "has no run '20260101-000000-abcdef'"),
        "resume nosuch": (["run", str(flow), "--resume", "nosuch"], "has no run 'nosuch' to resume"),
        "rerun nosuch": (["run", str(flow), "--rerun", "zz"], "--rerun 'zz': pipeline 'flow' has no such step"),
        "bad date": (["history", "--prune", "--before", "last tuesday"], "--before expects a date"),
        "prune without date": (["history", "--prune"], "--prune needs --before DATE"),
        "no journal": (["history", "--journal", str(tmp_path / "none.sqlite")], "there is no run journal at"),
        "not a journal": (["show", "x", "--journal", str(flow)], "cannot be read"),
    }
    results = cli_at_once(env, [args for args, _ in commands.values()])
    for (case, (_, message)), done in zip(commands.items(), results):
        assert done.returncode == 2, (case, done)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, (case, done.stderr)
        assert message in done.stderr, (case, done.stderr)
        assert done.stdout == "", case


def test_a_journal_that_cannot_be_written_is_a_warning_under_the_summary_and_the_run_succeeds(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(MOCK_FLOW, encoding="utf-8")
    blocked = tmp_path / "a-file" / "journal.sqlite"  # its directory is a file: it can never be created
    blocked.parent.write_text("", encoding="utf-8")
    done = cli(environment(tmp_path / "unused.sqlite"), "run", str(flow), "--var", "topic=x", "--journal", str(blocked))
    assert done.returncode == 0, done.stderr
    *_, summary, warning, last = done.stderr.rstrip().splitlines()
    assert summary.startswith("  ✓ a: ok")
    assert warning.startswith(f"  warning: the run journal {blocked} could not be written (")
    assert warning.endswith("this run is not fully recorded in it") and last == f"run {done.run_id()}"
    assert not (tmp_path / "unused.sqlite").exists()
