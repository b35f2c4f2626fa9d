"""Checks, samples and matrix combinations in the run journal (schema version 2): each is a row
under the result it is part of, and ``load_run`` gives them back as they were (``run.checks``
included). A journal of the previous release (version 1) is migrated in place when it is first
opened, by one process even when several open it at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent
from typing import Any

import pipeline_nb
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb.testing import FakeAnthropic

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, status TEXT NOT NULL,
    started REAL NOT NULL, ended REAL, duration REAL, origin TEXT, pipeline TEXT,
    steps INTEGER, failed INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cache_write_tokens INTEGER, cache_read_tokens INTEGER, cost REAL, warnings TEXT,
    reused_from TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step_id TEXT NOT NULL, parent TEXT,
    position INTEGER, type TEXT, status TEXT, text TEXT, output TEXT, content TEXT, tool_calls TEXT,
    item TEXT, item_index INTEGER, loop_var TEXT, input_tokens INTEGER, output_tokens INTEGER, cache_write_tokens INTEGER,
    cache_read_tokens INTEGER, web_search_requests INTEGER, cost REAL, duration REAL, attempts INTEGER,
    model TEXT, stop_reason TEXT, error_type TEXT, error_message TEXT, request_id TEXT, note TEXT,
    PRIMARY KEY (run_id, step_id));
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id TEXT, request_key TEXT NOT NULL, request TEXT, reply TEXT, status TEXT NOT NULL,
    error_type TEXT, error_message TEXT, request_id TEXT, started REAL, duration REAL, reused_from TEXT);
CREATE INDEX IF NOT EXISTS calls_by_run ON calls (run_id, request_key);
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step_id TEXT, batch_ids TEXT NOT NULL,
    request_keys TEXT NOT NULL, created REAL, ended REAL, PRIMARY KEY (run_id, batch_ids));
"""
"""The journal's schema as the previous release (schema version 1) created it."""

CAPITALS = dedent("""
    name: capitals
    defaults:
      provider: claude
      max_tokens: 64
      pricing: {claude-haiku-5-5: {input: 1, output: 5}, claude-sonnet-5-5: {input: 3, output: 15}}
    steps:
      - id: answer
        prompt: "{{ style }} What is the capital of {{ item.country }}?"
        for_each: [{country: France, capital: Paris}, {country: Japan, capital: Tokyo}]
        repeat: 2
        matrix:
          model: [claude-haiku-5-5, claude-sonnet-5-5]
          style: ["Answer in one word.", "Answer briefly."]
        expect:
          - contains: "{{ item.capital }}"
          - name: no apology
            not_contains: sorry
          - judge: "The answer names a city."
            model: claude-haiku-5-5
      - id: greet
        prompt: "Say hi"
        model: claude-haiku-5-5
        expect: [{equals: "hi"}]
    """)

MOCK_CHECKED = ("name: mocked\ndefaults: {provider: mock, mock_delay: 0}\nsteps:\n"
                "  - {id: a, prompt: hi, repeat: 2, mock_response: Paris, expect: [{contains: Paris}, {equals: x}]}\n")


def shape(result: StepResult) -> tuple[Any, ...]:
    """What a result is made of, all the way down: ids, statuses, sample numbers, matrix values, texts."""
    parts = [shape(part) for part in (*(result.variants or ()), *(result.items or ()), *(result.samples or ()))]
    return (str(result.id), result.status, result.sample, result.matrix, result.index, result.text, parts)


def verdicts(run: PipelineRun) -> list[tuple[Any, ...]]:
    return [(str(c.step_id), c.name, c.kind, c.passed, c.detail, c.step, c.variant, c.usage, c.cost)
            for c in run.checks]


def v1_journal(path: Path) -> None:
    """A journal as the previous release left it: its schema, version 1, and one finished run."""
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA + "PRAGMA user_version=1;")
        db.execute("INSERT INTO runs (id, name, status, started, ended, duration, steps, failed) "
                   "VALUES ('20261101-090000-abcdef', 'old', 'ok', 1762000000, 1762000001, 1.0, 1, 0)")
        db.execute("INSERT INTO steps (run_id, step_id, position, type, status, text, output, input_tokens, "
                   "output_tokens, duration) VALUES ('20261101-090000-abcdef', 'a', 0, 'llm', 'ok', "
                   "'An old answer.', '\"An old answer.\"', 5, 4, 0.5)")
    db.close()


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    db.close()
    return found


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
    db.close()
    return version


def test_checks_samples_and_combinations_are_journaled_and_load_back_as_they_were(
        fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    fake_anthropic.reply('{"reason": "It hedges instead of naming a city.", "pass": false}', when="names a city",
                         usage=(40, 12))
    fake_anthropic.reply("Paris", when="France", usage=(20, 2))
    fake_anthropic.reply("Kyoto, sorry", when="Japan", usage=(20, 4))
    fake_anthropic.reply("hi", when="Say hi", usage=(5, 1))
    run = pipeline_nb.run(CAPITALS, journal=journal)
    assert run.ok and not run.warnings
    assert len(run.checks) == 2 * 2 * 2 * 2 * 3 + 1 and run.checks.passed and run.checks.failed
    judged = [c for c in run.checks if c.kind == "judge"]
    assert judged and judged[0].detail == "It hedges instead of naming a city." and judged[0].cost

    loaded = pipeline_nb.load_run(run.id, journal=journal)

    assert verdicts(loaded) == verdicts(run)
    assert str(loaded.checks) == str(run.checks)  # the verdict table
    assert [shape(step) for step in loaded.steps.values()] == [shape(step) for step in run.steps.values()]
    assert (loaded.usage, loaded.cost) == (run.usage, run.cost)  # the judges' calls included
    variant = loaded.steps["answer"].variants[1]
    assert variant.matrix == {"model": "claude-haiku-5-5", "style": "Answer briefly."}
    assert variant.label == "model=claude-haiku-5-5 · style=Answer briefly."
    assert [s.sample for s in variant.items[1].samples] == [1, 2]
    with sqlite3.connect(journal) as db:
        parents = dict(db.execute("SELECT step_id, parent FROM steps WHERE run_id = ?", (run.id,)).fetchall())
    db.close()
    assert (parents["answer@2"], parents["answer@2[1]"], parents["answer@2[1]#2"]) == ("answer", "answer@2",
                                                                                         "answer@2[1]")


def test_a_version_1_journal_is_migrated_in_place_and_its_runs_still_load(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    v1_journal(journal)
    assert "checks" not in columns(journal, "steps")

    (old,) = pipeline_nb.history(journal=journal)  # reading opens it: it is migrated then

    assert user_version(journal) == 2
    assert columns(journal, "steps")[-3:] == ["checks", "sample", "matrix"]
    assert (old.id, old.name, old.status) == ("20261101-090000-abcdef", "old", "ok")
    step = pipeline_nb.load_run(old.id, journal=journal).steps["a"]
    assert (step.text, step.output, step.own_checks, step.samples, step.variants) == (
        "An old answer.", "An old answer.", [], None, None)
    run = pipeline_nb.run(MOCK_CHECKED, journal=journal)  # a new run, with checks, into the migrated file
    assert not run.warnings and [c.passed for c in run.checks] == [True, False, True, False]
    assert verdicts(pipeline_nb.load_run(run.id, journal=journal)) == verdicts(run)
    assert [r.id for r in pipeline_nb.history(journal=journal)] == [run.id, old.id]


OPEN_AT_ONCE = """
import pathlib, sys, time
from pipeline_nb._journal_db import connect
journal, ready, go = map(pathlib.Path, sys.argv[1:])
ready.touch()
while not go.exists():
    time.sleep(0.002)
connect(journal).close()
"""


def test_processes_that_open_a_version_1_journal_at_once_migrate_it_once(tmp_path: Path) -> None:
    journal, go = tmp_path / "journal.sqlite", tmp_path / "go"
    v1_journal(journal)
    ready = [tmp_path / f"ready{n}" for n in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(journal), str(mark), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for mark in ready]
    try:
        for _ in range(6000):  # every process imported pipeline_nb and waits (guards a hang only)
            if all(mark.exists() for mark in ready) or any(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.01)
        go.touch()
        finished = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in finished]
    assert user_version(journal) == 2
    added = columns(journal, "steps")
    assert [added.count(name) for name in ("checks", "sample", "matrix")] == [1, 1, 1]
    assert pipeline_nb.load_run("20261101-090000-abcdef", journal=journal).steps["a"].text == "An old answer."
