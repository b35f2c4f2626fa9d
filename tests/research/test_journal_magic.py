"""The run journal from a notebook, through IPython's real shell: ``%%pipeline --resume`` and
``--rerun``, ``%pipeline rerun | history | show``, ``%config PipelineMagics.journal``, and one-line
usage errors. Calls go to FakeAnthropic, which counts them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython import get_ipython
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython

import pipeline_nb
from pipeline_nb import StepError
from pipeline_nb.testing import FakeAnthropic
from tests.research._flows import CHAIN

B_PROMPT = "second after Fake reply to: first"


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython() or get_ipython()  # one global shell per process
    shell.run_line_magic("load_ext", "pipeline_nb")
    return shell


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.sqlite"
    monkeypatch.setenv("PIPELINE_NB_JOURNAL", str(path))
    return path


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic, journal: Path) -> Iterator[FakeAnthropic]:
    yield fake_anthropic


def called(fake: FakeAnthropic, since: int) -> list[str]:
    return [r.prompt for r in fake.requests[since:]]


def test_resume_calls_only_what_failed_in_the_run_bound_to_the_name(ip, fake: FakeAnthropic) -> None:
    fake.fault("http", status=400, message="not this time", when="second", times=1)
    with pytest.raises(StepError):
        ip.run_cell_magic("pipeline", "chain_run", CHAIN)
    failed = ip.user_ns["chain_run"]
    assert [s.status for s in failed.steps.values()] == ["ok", "error", "skipped"]

    ip.run_cell_magic("pipeline", "chain_run --resume", CHAIN)
    resumed = ip.user_ns["chain_run"]
    assert resumed.ok and resumed.reused_from == failed.id and ip.user_ns["_pipeline"] is resumed
    assert called(fake, 2) == [B_PROMPT, "third"]
    assert resumed.steps["a"].note == f"reused from run {failed.id}"
    assert resumed.steps["a"].text == failed.steps["a"].text


def test_resume_with_no_run_in_the_kernel_takes_the_journals_last_run_of_the_name(ip, fake: FakeAnthropic) -> None:
    ip.run_cell_magic("pipeline", "journal_first", CHAIN)
    first = ip.user_ns["journal_first"]
    ip.run_cell_magic("pipeline", "journal_second --resume", CHAIN)  # journal_second is unbound: the journal
    assert ip.user_ns["journal_second"].reused_from == first.id
    ip.run_cell_magic("pipeline", f"journal_third --resume {first.id}", CHAIN)
    assert ip.user_ns["journal_third"].reused_from == first.id
    assert len(fake.requests) == 3  # only the first run called


def test_rerun_calls_the_step_and_its_readers_and_binds_the_new_run(ip, fake: FakeAnthropic) -> None:
    ip.run_cell_magic("pipeline", "again", CHAIN)
    first = ip.user_ns["again"]
    ip.run_cell_magic("pipeline", "again --rerun a", CHAIN)
    second = ip.user_ns["again"]
    assert second.reused_from == first.id and called(fake, 3) == ["first", B_PROMPT]  # not c

    ip.run_line_magic("pipeline", "rerun again c")
    third = ip.user_ns["again"]
    assert third is ip.user_ns["_pipeline"] and third.reused_from == second.id
    assert called(fake, 5) == ["third"]
    assert third.steps["a"].note == f"reused from run {second.id}"


def test_a_rerun_that_fails_still_binds_its_run(ip, fake: FakeAnthropic) -> None:
    ip.run_cell_magic("pipeline", "fragile", CHAIN)
    fake.fault("http", status=400, message="not this time", when="third", times=1)
    with pytest.raises(StepError, match="step 'c' failed"):
        ip.run_line_magic("pipeline", "rerun fragile c")
    rerun = ip.user_ns["fragile"]
    assert rerun.reused_from is not None and rerun.steps["c"].status == "error"


def test_history_lists_the_runs_and_show_prints_one_binding_nothing(ip, journal: Path, capsys) -> None:
    flow = "name: listed\ndefaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: 'About {{ topic }}'}\n"
    ip.run_cell_magic("pipeline", "listed --var topic=tides", flow)
    older = ip.user_ns["listed"]
    ip.run_cell_magic("pipeline", "listed --var topic=moons", flow)
    newer = ip.user_ns["listed"]
    capsys.readouterr()

    ip.run_line_magic("pipeline", "history --name listed")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [newer.id, older.id]
    ip.run_line_magic("pipeline", "history --name listed --limit 1")
    assert capsys.readouterr().out.split()[0] == newer.id

    names = dict(ip.user_ns)
    ip.run_line_magic("pipeline", f"show {older.id}")
    shown = capsys.readouterr().out
    assert shown.startswith("listed: ok · 1 step") and "You asked: About tides" in shown
    assert ip.user_ns.keys() == names.keys() and ip.user_ns["_pipeline"] is newer  # binds nothing


def test_config_journal_names_the_file_or_turns_it_off_and_the_notebook_is_the_origin(ip, tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.sqlite"
    flow = "name: configured\ndefaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n"
    ip.user_ns["__session__"] = "/home/me/research.ipynb"
    try:
        ip.run_line_magic("config", f"PipelineMagics.journal = {str(chosen)!r}")
        ip.run_cell_magic("pipeline", "", flow)
        ip.run_line_magic("config", "PipelineMagics.journal = 'off'")
        ip.run_cell_magic("pipeline", "", flow)
    finally:
        ip.run_line_magic("config", "PipelineMagics.journal = None")
        del ip.user_ns["__session__"]
    (only,) = pipeline_nb.history(journal=chosen)
    assert only.name == "configured" and only.origin == "/home/me/research.ipynb"


def test_a_loaded_run_cannot_be_rerun_by_name_and_says_how(ip, journal: Path) -> None:
    ip.run_cell_magic("pipeline", "to_load", "defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n")
    ip.user_ns["loaded"] = pipeline_nb.load_run(ip.user_ns["to_load"].id)
    with pytest.raises(UsageError, match=r"loaded from the journal; run its cell again with "
                                         r"%%pipeline loaded --resume \S+ --rerun a"):
        ip.run_line_magic("pipeline", "rerun loaded a")


@pytest.mark.parametrize(("line", "message"), [
    ("", "required: command"),
    ("bogus", "invalid choice: 'bogus'"),
    ("show", "%pipeline show takes one RUN_ID"),
    ("show a b", "%pipeline show takes one RUN_ID"),
    ("rerun", "%pipeline rerun takes NAME STEP"),
    ("rerun bound_run", "%pipeline rerun takes NAME STEP"),
    ("rerun nobody a", "'nobody' is not a run in the kernel"),
    ("rerun bound_run zz", "run 'bound_run' has no step 'zz'; its steps: a"),
    ("history extra", "%pipeline history takes options only"),
])
def test_line_magic_mistakes_are_one_line_usage_errors(ip, journal: Path, line: str, message: str) -> None:
    ip.run_cell_magic("pipeline", "bound_run", "defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n")
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        ip.run_line_magic("pipeline", line)
    assert "\n" not in str(info.value)


def test_a_rerun_option_naming_no_step_is_a_usage_error_before_any_call(ip, fake: FakeAnthropic) -> None:
    with pytest.raises(UsageError, match="--rerun 'zz': pipeline 'chain' has no such step; its steps: a, b, c"):
        ip.run_cell_magic("pipeline", "chain_run --rerun zz", CHAIN)
    assert fake.requests == []


def test_resuming_a_run_the_journal_does_not_hold_fails_the_cell_in_one_line(ip, journal: Path) -> None:
    ip.run_cell_magic("pipeline", "", "defaults: {mock_delay: 0}\nsteps:\n  - {id: a, prompt: hi}\n")
    with pytest.raises(pipeline_nb.JournalError, match="the run journal has no run 'nosuch' to resume") as info:
        ip.run_cell_magic("pipeline", "--resume nosuch", "steps:\n  - {id: a, prompt: hi}\n")
    assert len(info.value._render_traceback_()) == 1
