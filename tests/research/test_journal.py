"""The run journal: what a run writes (every kind of step, every call), that it never holds a key,
never fails a run, takes several writers at once, survives a killed kernel, and that a resume
then calls only what did not finish."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import pytest

import pipeline_nb
from pipeline_nb.testing import FakeAnthropic
from tests.reliability._support import Kernel, kernel_manager

EVERY_KIND = dedent("""
    name: every-kind
    vars: {topic: tides}
    steps:
      - {id: setup, type: set, vars: {n: 2}}
      - {id: think, prompt: "Think about {{ topic }}", thinking: true, stream: true, mock_delay: 0}
      - {id: double, call: double, args: {x: 21}}
      - id: fan
        for_each: [moon, sun]
        as: body
        prompt: "How does the {{ body }} pull?"
        output_schema: {type: object, properties: {pull: {type: string}}, required: [pull]}
        mock_response: '{"pull": "gravity"}'
      - id: both
        steps:
          - {id: left, prompt: "left", mock_response: "L"}
          - {id: right, prompt: "right", mock_response: "R"}
      - id: nested
        pipeline:
          steps:
            - {id: inner, prompt: "inner {{ 1 + 1 }}", mock_response: "I"}
      - {id: tooled, prompt: "Population of Paris", tools: [population], mock_delay: 0}
    """)


def population(city: str) -> int:
    """How many people live in a city."""
    return {"Paris": 2_100_000}.get(city, 0)


def rows(path: Path, sql: str, *args: object) -> list[dict]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql, args)]


def test_every_kind_of_step_is_journaled_and_loads_back_as_it_was(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    run = pipeline_nb.run(EVERY_KIND, journal=journal, namespace={"double": lambda x: 2 * x, "population": population})
    assert run.ok and not run.warnings
    (saved,) = rows(journal, "SELECT * FROM runs")
    assert (saved["id"], saved["name"], saved["status"], saved["steps"]) == (run.id, "every-kind", "ok", len(run.steps))
    assert saved["pipeline"] == EVERY_KIND and saved["ended"] >= saved["started"]
    assert saved["output_tokens"] == run.usage.output_tokens
    step_ids = {r["step_id"] for r in rows(journal, "SELECT step_id FROM steps")}
    assert step_ids == {"setup", "think", "double", "fan", "fan[0]", "fan[1]", "both", "left", "right", "nested",
                        "nested/inner", "tooled"}
    calls = rows(journal, "SELECT * FROM calls ORDER BY id")
    assert len(calls) == 1 + 2 + 2 + 1 + 2  # think, the items, left and right, inner, the tool loop's two rounds
    assert {c["status"] for c in calls} == {"ok"} and {c["step_id"] for c in calls} >= {"fan[0]", "tooled"}
    sent = json.loads(calls[0]["request"])
    assert sent["thinking"] == {"type": "adaptive"} and sent["messages"][0]["content"] == "Think about tides"

    loaded = pipeline_nb.load_run(run.id, journal=journal)
    assert list(loaded.steps) == list(run.steps) and loaded.status == "ok"
    for step_id, step in run.steps.items():
        again = loaded.steps[step_id]
        assert (again.status, again.text, again.usage, again.cost, again.model) == (
            step.status, step.text, step.usage, step.cost, step.model), step_id
    assert loaded.steps["double"].output == 42 and loaded.steps["setup"].output == {"n": 2}
    assert loaded.steps["think"].thinking == run.steps["think"].thinking != ""
    assert [i.output for i in loaded.steps["fan"].items] == [{"pull": "gravity"}] * 2
    assert [i.item for i in loaded.steps["fan"].items] == ["moon", "sun"]
    assert loaded.steps["nested"].child.steps["inner"].text == "I"
    (call,) = loaded.steps["tooled"].tool_calls
    assert (call.name, call.input, call.output) == ("population", {"city": "Paris"}, 2_100_000)
    assert [r.id for r in pipeline_nb.history(journal=journal)] == [run.id]


def test_no_key_is_ever_written(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    fake_anthropic.reply("Hello.")
    fake_anthropic.fault("http", status=401, when="second", times=None)
    run = pipeline_nb.run("defaults: {provider: claude, retries: 0}\nsteps:\n  - {id: a, prompt: first}\n"
                          "  - {id: b, prompt: second}\n", journal=journal, raise_on_error=False)
    assert run.steps["a"].ok and run.steps["b"].status == "error"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite*"))
    assert os.environ["ANTHROPIC_API_KEY"].encode() not in stored and b"sk-ant-" not in stored
    (failed,) = rows(journal, "SELECT * FROM calls WHERE status = 'error'")
    assert failed["error_type"] == "authentication_error" and failed["step_id"] == "b"


@pytest.mark.parametrize("breakage", ["parent is a file", "not a database"])
def test_a_journal_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path: Path, breakage: str) -> None:
    if breakage == "parent is a file":
        (tmp_path / "file").write_text("x")
        journal = tmp_path / "file" / "journal.sqlite"
    else:
        journal = tmp_path / "journal.sqlite"
        journal.write_bytes(b"this is not a database" * 100)
    run = pipeline_nb.run("steps:\n  - {id: a, prompt: hi}\n  - {id: b, prompt: again}\n", journal=journal)
    assert run.ok and run.steps["b"].text
    (warning,) = run.warnings
    assert f"the run journal {journal} could not be written" in warning and "not fully recorded" in warning


def test_off_writes_nothing_and_a_resume_from_memory_still_works(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_NB_JOURNAL", str(tmp_path / "env.sqlite"))
    first = pipeline_nb.run("defaults: {journal: off}\nsteps:\n  - {id: a, prompt: hi}\n")
    again = pipeline_nb.run("defaults: {journal: off}\nsteps:\n  - {id: a, prompt: hi}\n", resume=first)
    assert not (tmp_path / "env.sqlite").exists()
    assert again.steps["a"].note == f"reused from run {first.id}" and again.reused_from == first.id


def test_several_processes_write_one_journal_at_once(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    (tmp_path / "fan.yaml").write_text("name: fan\nsteps:\n  - {id: fan, for_each: '{{ range(40) | list }}', "
                                       "prompt: 'item {{ item }}', mock_delay: 0, max_parallel: 8}\n")
    env = {**os.environ, "PIPELINE_NB_JOURNAL": str(journal)}
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline_nb", "run", "fan.yaml"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert b"journal" not in err  # no warning
    runs = rows(journal, "SELECT id, status FROM runs")
    assert len(runs) == 3 and {r["status"] for r in runs} == {"ok"}
    for run in runs:
        assert rows(journal, "SELECT count(*) AS n FROM calls WHERE run_id = ?", run["id"]) == [{"n": 40}]
        assert rows(journal, "SELECT count(*) AS n FROM steps WHERE run_id = ?", run["id"]) == [{"n": 41}]


def test_a_rerun_calls_the_step_and_its_readers_and_reuses_the_rest(fake_anthropic: FakeAnthropic,
                                                                   tmp_path: Path) -> None:
    fake_anthropic.reply("Facts.")
    source = dedent("""
        defaults: {provider: claude}
        steps:
          - {id: facts, prompt: "List facts"}
          - {id: other, prompt: "Something else"}
          - {id: summary, prompt: "Summarize {{ steps.facts.text }}"}
        """)
    first = pipeline_nb.run(source, journal=tmp_path / "j.sqlite")
    assert len(fake_anthropic.requests) == 3
    again = first.rerun("facts")
    asked = [r.prompt for r in fake_anthropic.requests[3:]]
    assert sorted(asked) == ["List facts", "Summarize Facts."]  # other is reused
    assert again.steps["other"].note == f"reused from run {first.id}" and again.ok
    with pytest.raises(pipeline_nb.PipelineError, match="no step 'nope'"):
        first.rerun("nope")


KILLED = dedent("""
    import os, pipeline_nb
    pipeline_nb.run('''
    name: long-fan
    defaults: {provider: claude, retries: 0}
    steps:
      - id: fan
        for_each: "{{ range(8) | list }}"
        max_parallel: 1
        stream: true
        prompt: "item {{ item }}"
    ''')
    """)


def test_a_killed_kernel_keeps_what_finished_and_a_resume_calls_only_the_rest(fake_anthropic: FakeAnthropic,
                                                                             tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    fake_anthropic.reply("one two three four five six", delay=0.05)
    env = {"PIPELINE_NB_JOURNAL": str(journal), "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
           "ANTHROPIC_API_KEY": "sk-ant-test"}
    km = kernel_manager(tmp_path)
    km.start_kernel(env={**os.environ, **env})
    try:
        kernel = Kernel(km)
        kernel.send(KILLED)
        deadline = time.monotonic() + 60
        while len(fake_anthropic.requests) < 4:
            assert time.monotonic() < deadline, "the run did not get going"
            time.sleep(0.05)
        time.sleep(0.2)  # the journal's writer commits as replies arrive
        os.kill(km.provisioner.pid, signal.SIGKILL)
        while km.is_alive():
            assert time.monotonic() < deadline, "the kernel did not die"
            time.sleep(0.05)
    finally:
        km.shutdown_kernel(now=True)
    (killed,) = rows(journal, "SELECT id, status FROM runs")
    assert killed["status"] == "running"  # it never ended
    kept = rows(journal, "SELECT count(*) AS n FROM calls WHERE run_id = ? AND status = 'ok'", killed["id"])[0]["n"]
    assert 2 <= kept <= 5
    sent_before = len(fake_anthropic.requests)

    km = kernel_manager(tmp_path)
    km.start_kernel(env={**os.environ, **env})
    try:
        kernel = Kernel(km)
        out = kernel.check(KILLED.replace("''')", "''', resume=True).steps['fan'].note") + "\nprint('done')")
    finally:
        km.shutdown_kernel(now=True)
    assert "done" in out
    assert len(fake_anthropic.requests) - sent_before == 8 - kept  # only what did not finish is paid for
    resumed = pipeline_nb.history(name="long-fan", journal=journal)[0]
    assert resumed.status == "ok" and resumed.reused_from == killed["id"]


def journaled_batches(journal: Path) -> list[dict]:
    try:
        return rows(journal, "SELECT * FROM batches") if journal.exists() else []
    except sqlite3.OperationalError:  # the schema is not written yet
        return []


BATCHED = dedent("""
    import pipeline_nb
    run = pipeline_nb.run('''
    name: batched
    defaults: {provider: claude, retries: 0}
    steps:
      - id: many
        for_each: [a, b, c]
        batch: true
        batch_poll_interval: 0.05
        prompt: "item {{ item }}"
    ''')
    print([i.text for i in run.steps['many'].items])
    """)


def test_a_resume_attaches_to_the_batch_a_dead_kernel_left_in_flight(fake_anthropic: FakeAnthropic,
                                                                     tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    fake_anthropic.reply("done")
    fake_anthropic.batch_polls(60)  # in progress for about 3 s of polling
    env = {"PIPELINE_NB_JOURNAL": str(journal), "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
           "ANTHROPIC_API_KEY": "sk-ant-test"}
    km = kernel_manager(tmp_path)
    km.start_kernel(env={**os.environ, **env})
    try:
        Kernel(km).send(BATCHED)
        deadline = time.monotonic() + 60
        while not journaled_batches(journal):
            assert time.monotonic() < deadline, "the batch was not journaled"
            time.sleep(0.05)
        os.kill(km.provisioner.pid, signal.SIGKILL)
    finally:
        km.shutdown_kernel(now=True)
    assert len(fake_anthropic.batches) == 1
    (in_flight,) = rows(journal, "SELECT * FROM batches")
    assert in_flight["ended"] is None and json.loads(in_flight["batch_ids"]) == [fake_anthropic.batches[0][0]]

    km = kernel_manager(tmp_path)
    km.start_kernel(env={**os.environ, **env})
    try:
        out = Kernel(km).check(BATCHED.replace("''')", "''', resume=True)"))
    finally:
        km.shutdown_kernel(now=True)
    assert out.strip() == "['done', 'done', 'done']"
    assert len(fake_anthropic.batches) == 1  # attached to, not sent again
