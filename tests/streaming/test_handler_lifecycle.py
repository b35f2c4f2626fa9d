"""Handler lifecycle: init/handle_event/close, state reset between runs, slow handlers,
idempotency under duplicate events, retries, and FileHandler's writer thread."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb._engine import RunOptions, execute
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb._loader import load_spec
from pipeline_nb.streaming import (BufferHandler, CallbackHandler, Chunk, ConsoleHandler, Event, FileHandler,
                                   Response, RetryInfo, StreamHandler)
from pipeline_nb.testing import FakeAnthropic

SPEC = """
name: life
defaults: {mock_delay: 0, stream: true}
steps:
  - id: a
    prompt: "Tell me about {{ topic }}"
  - id: b
    prompt: "More about {{ topic }}"
"""


class Recorder:
    """A handler that is not a StreamHandler: just the three protocol methods."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def init(self, run: PipelineRun) -> None:
        self.calls.append(("init", run))

    def handle_event(self, event: Event) -> None:
        self.calls.append(event.kind)

    def close(self) -> None:
        self.calls.append("close")


def test_init_first_close_once_last() -> None:
    rec = Recorder()
    run = pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=rec)
    assert rec.calls[0] == ("init", run)
    assert rec.calls[-2:] == ["run_end", "close"]
    assert rec.calls.count("close") == 1 and rec.calls.count("run_end") == 1
    assert "delta" in rec.calls and rec.calls.count("step_start") == 2


class DeltaCounter(StreamHandler):
    """Relies on StreamHandler.init for dedup state; resets its own state in on_run_start."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas = 0
        self.runs = 0

    def on_run_start(self, run: PipelineRun) -> None:
        self.deltas = 0
        self.runs += 1

    def on_delta(self, chunk: Chunk) -> None:
        self.deltas += 1


def test_state_resets_between_two_runs_with_the_same_instance() -> None:
    buf, counter = BufferHandler(), DeltaCounter()
    first = pipeline_nb.run(SPEC, vars={"topic": "tides"}, on_event=buf)
    pipeline_nb.run(SPEC, vars={"topic": "tides"}, on_event=counter)
    once = counter.deltas
    assert once == sum(1 for e in buf.events if e.kind == "delta") > 0
    # Same (step, attempt, seq) positions again: a handler that kept its dedup state would drop them all.
    second = pipeline_nb.run(SPEC, vars={"topic": "moons"}, on_event=buf)
    pipeline_nb.run(SPEC, vars={"topic": "tides"}, on_event=counter)
    assert counter.deltas == once and counter.runs == 2
    assert buf.texts == {"a": second.steps["a"].text, "b": second.steps["b"].text}
    assert "tides" not in buf.texts["a"] and first.steps["a"].text != second.steps["a"].text
    assert [e.kind for e in buf.events].count("step_start") == 2
    only_a = pipeline_nb.run({"steps": [{"id": "c", "prompt": "hi", "stream": True, "mock_delay": 0}]}, on_event=buf)
    assert set(buf.texts) == {"c"} and set(buf.responses) == {"c"} and buf.texts["c"] == only_a.steps["c"].text


class SlowHandler(StreamHandler):
    """Sleeps in on_delta and notes what the worker had done by then."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause
        self.seen: list[str] = []
        self.status_at_last_delta: str | None = None

    def on_run_start(self, run: PipelineRun) -> None:
        self.run = run

    def on_delta(self, chunk: Chunk) -> None:
        if not self.seen:
            self.first_delta_at = time.monotonic()
        time.sleep(self.pause)
        self.seen.append(chunk.content)
        self.status_at_last_delta = self.run.steps[chunk.step_id].status

    def on_done(self, response: Response) -> None:
        self.handled_for = time.monotonic() - self.first_delta_at


def test_a_slow_handler_does_not_stall_the_stream_reader(fake_anthropic: FakeAnthropic) -> None:
    chunks = [f"w{i} " for i in range(30)]
    fake_anthropic.reply("".join(chunks), chunks=chunks)
    slow = SlowHandler(pause=0.03)
    run = pipeline_nb.run("steps:\n  - id: a\n    provider: claude\n    prompt: go\n    stream: true\n",
                          on_event=slow)
    step = run.steps["a"]
    assert slow.seen == chunks and step.text == "".join(chunks)
    # The worker read the whole stream and finished the step while the handler was
    # still sleeping through the deltas: its own duration is a fraction of the handler's.
    assert slow.status_at_last_delta == "ok"
    assert slow.handled_for >= 30 * 0.03
    assert step.duration is not None and step.duration < slow.handled_for / 2


def feed_twice(handler: Any, events: list[Event], run: PipelineRun) -> None:
    """Every delta, retry and done event twice in a row; the others once."""
    handler.init(run)
    for event in events:
        handler.handle_event(event)
        if event.kind in ("delta", "retry", "done"):
            handler.handle_event(event)
    handler.close()


def recorded_events() -> tuple[list[Event], PipelineRun]:
    events: list[Event] = []
    run = pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=events.append)
    return [e for e in events if e.kind != "run_start"], run


def test_duplicate_events_change_nothing() -> None:
    events, run = recorded_events()
    once, twice = BufferHandler(), BufferHandler()
    once.init(run)
    for event in events:
        once.handle_event(event)
    feed_twice(twice, events, run)
    assert twice.texts == once.texts == {"a": run.steps["a"].text, "b": run.steps["b"].text}
    assert twice.events == once.events and twice.responses == once.responses

    out, err = io.StringIO(), io.StringIO()
    feed_twice(ConsoleHandler(out, err), events, run)
    assert out.getvalue() == run.steps["a"].text + "\n" + run.steps["b"].text + "\n"
    assert err.getvalue().count("── a") == 1

    got: list[Event] = []
    feed_twice(CallbackHandler(got.append), events, run)
    assert got == [Event("run_start", run), *events]


def test_a_retry_drops_the_partial_text() -> None:
    run = PipelineRun("r", {"a": StepResult("a")})
    buf, out = BufferHandler(), io.StringIO()
    console = ConsoleHandler(out, io.StringIO())
    events = [
        Event("delta", Chunk("a", 1, 1, "half ")),
        Event("delta", Chunk("a", 1, 2, "an answ")),
        Event("retry", RetryInfo("a", 1, 2, "overloaded_error", 0.0)),
        Event("delta", Chunk("a", 2, 1, "whole ")),
        Event("delta", Chunk("a", 1, 3, "late chunk of attempt 1")),
        Event("delta", Chunk("a", 2, 2, "answer")),
        Event("done", Response("a", 2, "whole answer", pipeline_nb.Usage(), "end_turn", "m")),
    ]
    for handler in (buf, console):
        feed_twice(handler, events, run)
    assert buf.texts == {"a": "whole answer"}
    assert out.getvalue() == "half an answ\nwhole answer\n"


def test_a_retry_through_the_sdk_drops_the_partial_text(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("alpha beta gamma delta")
    fake_anthropic.fault("overloaded", after=3)
    buf = BufferHandler()
    run = pipeline_nb.run("steps:\n  - id: a\n    provider: claude\n    prompt: go\n    stream: true\n"
                          "    retry_backoff: [0, 0]\n", on_event=buf)
    assert [e.kind for e in buf.events].count("retry") == 1
    assert sum(1 for e in buf.events if e.kind == "delta") == 3 + 4
    assert buf.texts["a"] == run.steps["a"].text == "alpha beta gamma delta"


def test_file_handler_text_and_jsonl(tmp_path: Path) -> None:
    text_path, jsonl_path = tmp_path / "out" / "run.txt", tmp_path / "run.jsonl"
    text_handler, jsonl_handler = FileHandler(text_path), FileHandler(jsonl_path, format="jsonl")
    run = execute(load_spec(SPEC), RunOptions(vars={"topic": "x"}, handlers=[text_handler, jsonl_handler]))
    a, b = run.steps["a"].text, run.steps["b"].text
    # close() ran at the end of the run: everything is on disk
    assert text_path.read_text(encoding="utf-8") == f"## a\n{a}\n\n## b\n{b}\n\n"
    records = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert [r["event"] for r in records if r["event"] != "delta"] == [
        "step_start", "done", "step_end", "step_start", "done", "step_end"]
    assert "".join(r["content"] for r in records if r["event"] == "delta" and r["step"] == "a") == a
    done = [r for r in records if r["event"] == "done"]
    assert [d["text"] for d in done] == [a, b] and done[0]["stop_reason"] == "end_turn"
    assert records[-1] == {"event": "step_end", "step": "b", "status": "ok", "error": None}


def test_file_handler_default_path_is_named_after_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    handler = FileHandler(format="jsonl")
    pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=handler)
    pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=handler)  # a second run appends
    lines = (tmp_path / "life.stream.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["event"] for line in lines].count("step_start") == 4


def test_file_handler_writes_the_text_of_unstreamed_steps(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    run = pipeline_nb.run(SPEC, vars={"topic": "x"}, stream=False, on_event=FileHandler(path))
    assert path.read_text(encoding="utf-8") == f"## a\n{run.steps['a'].text}\n\n## b\n{run.steps['b'].text}\n\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_file_handler_never_blocks_the_run(tmp_path: Path) -> None:
    """The file is a pipe nobody reads until the run has ended: opening and writing it
    would block, so they must happen on the writer thread, and close() must flush."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    ended = threading.Event()
    got: dict[str, Any] = {}

    def reader() -> None:
        got["ended_first"] = ended.wait(5.0)
        with open(fifo, encoding="utf-8") as pipe:
            got["text"] = pipe.read()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    marker = CallbackHandler(lambda e: ended.set() if e.kind == "run_end" else None)
    run = execute(load_spec(SPEC), RunOptions(vars={"topic": "x"}, handlers=[FileHandler(fifo), marker]))
    thread.join(5.0)
    assert got["ended_first"], "the run waited for the file: FileHandler blocked the main thread"
    assert got["text"] == f"## a\n{run.steps['a'].text}\n\n## b\n{run.steps['b'].text}\n\n"


def test_file_handler_reports_a_write_error_at_close(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run = pipeline_nb.run(SPEC, vars={"topic": "x"}, on_event=FileHandler(blocker / "out.txt"),
                          raise_on_error=False)
    assert all(s.status == "ok" for s in run.steps.values())
    assert len(run.handler_errors) == 1 and "FileHandler raised" in run.handler_errors[0]
    with pytest.raises(pipeline_nb.StepError, match="FileHandler"):
        pipeline_nb.raise_for_status(run)


def test_a_handler_calling_sys_exit_is_dropped_and_the_run_is_kept() -> None:
    class Quitter(StreamHandler):
        def on_step_start(self, step: StepResult) -> None:
            raise SystemExit(3)

    run = pipeline_nb.run(SPEC, vars={"topic": "tides"}, on_event=Quitter(), raise_on_error=False)
    assert [s.status for s in run.steps.values()] == ["ok", "ok"]
    assert run.handler_errors == ["test_a_handler_calling_sys_exit_is_dropped_and_the_run_is_kept.<locals>."
                                  "Quitter raised SystemExit: 3"]
    with pytest.raises(pipeline_nb.StepError, match="SystemExit"):
        pipeline_nb.raise_for_status(run)
