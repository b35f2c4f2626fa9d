"""Checks reach the handlers as they resolve: the console notes each FAILED check on stderr
(stdout keeps only the answers) and ends its summary with the run's verdict table; the text file
has a ``[check]`` line per check, the jsonl file a record each, and BufferHandler keeps them.
Real runs through the real SDK against FakeAnthropic."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pipeline_nb
from pipeline_nb.streaming import BufferHandler, ConsoleHandler, FileHandler
from pipeline_nb.testing import FakeAnthropic

from tests.test_render_checks import REPEAT as SPEC  # one repeated, checked step: the same run for every view


def script(fake: FakeAnthropic) -> None:
    fake.reply("Paris.", times=2)
    fake.reply("Paris, sorry.", times=1)


def test_the_console_notes_each_failed_check_as_it_resolves_and_ends_with_the_verdict_table(
        fake_anthropic: FakeAnthropic) -> None:
    script(fake_anthropic)
    out, err = io.StringIO(), io.StringIO()
    run = pipeline_nb.run(SPEC, on_event=ConsoleHandler(out, err, summary=True))
    failed = run.checks.failed
    assert len(failed) == 1
    notes = [line for line in err.getvalue().splitlines() if line.startswith("  ✗ ")]
    assert notes == [f"  ✗ {failed[0].step_id}: no apology: {failed[0].detail}"]
    assert "sorry" in failed[0].detail
    assert "✓ answer#" not in err.getvalue()  # a check that passed is no note
    verdicts = "".join(f"  {line}\n" for line in str(run.checks).splitlines())
    assert err.getvalue().endswith(verdicts) and verdicts.startswith("  checks: 5 of 6 passed\n")
    assert "no apology" not in out.getvalue()  # stdout: the answers only
    assert sorted(out.getvalue().split()) == ["Paris,", "Paris.", "Paris.", "sorry."]


class Each:
    """Handlers fed the same run (``run`` takes one handler)."""

    def __init__(self, *handlers: Any) -> None:
        self.handlers = handlers

    def init(self, run: Any) -> None:
        for handler in self.handlers:
            handler.init(run)

    def handle_event(self, event: Any) -> None:
        for handler in self.handlers:
            handler.handle_event(event)

    def close(self) -> None:
        for handler in self.handlers:
            handler.close()


def test_files_and_the_buffer_keep_every_check(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    script(fake_anthropic)
    text, jsonl, buffer = FileHandler(tmp_path / "s.txt"), FileHandler(tmp_path / "s.jsonl", format="jsonl"), \
        BufferHandler()
    run = pipeline_nb.run(SPEC, on_event=Each(text, jsonl, buffer))
    assert sorted(map(str, buffer.checks)) == sorted(map(str, run.checks))
    lines = [line for line in (tmp_path / "s.txt").read_text().splitlines() if line.startswith("[check]")]
    assert sorted(lines) == sorted(f"[check] {c}" for c in run.checks)
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    checks = [r for r in records if r["event"] == "check"]
    assert len(checks) == 6 and sum(not r["passed"] for r in checks) == 1
    assert {r["check"] for r in checks} == {'contains "Paris"', "no apology"}
