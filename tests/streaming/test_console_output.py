"""ConsoleHandler on a terminal, where stdout and stderr share one screen: notes start on a
line of their own, concurrent steps are labelled, retries say how long they wait, Ctrl-C
leaves no line open, and the run summary comes last.

Each test plays a fake event sequence into one shared screen (what a terminal shows),
while ``stdout`` alone is what ``| tee`` of stdout keeps.
"""

from __future__ import annotations

import io
import re
from collections import Counter

from pipeline_nb._engine import RunOptions, execute
from pipeline_nb._results import ErrorInfo, PipelineRun, StepResult, Usage
from pipeline_nb._loader import load_spec
from pipeline_nb.streaming import Chunk, ConsoleHandler, Event, Response, RetryInfo
from pipeline_nb.streaming._console import run_summary
from pipeline_nb._step_ids import item_id

M = "claude-sonnet-5-5"


class Terminal:
    """stdout and stderr on one screen; ``stdout`` keeps what stdout alone received."""

    def __init__(self) -> None:
        self.screen, self.stdout = io.StringIO(), io.StringIO()

    def write(self, text: str) -> int:
        self.stdout.write(text)
        return self.screen.write(text)

    def flush(self) -> None:
        pass


class Script:
    """A fake event sequence, built step by step, played into a ConsoleHandler."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.steps: dict[str, StepResult] = {}
        self._seqs: Counter[tuple[str, int]] = Counter()

    def start(self, step_id: str, type: str = "llm", model: str | None = M) -> Script:
        step = self.steps.setdefault(step_id, StepResult(step_id, type=type, model=model, status="running"))
        self.events.append(Event("step_start", step))
        return self

    def say(self, step_id: str, *pieces: str, attempt: int = 1) -> Script:
        for piece in pieces:
            self._seqs[step_id, attempt] += 1
            self.events.append(Event("delta", Chunk(step_id, attempt, self._seqs[step_id, attempt], piece)))
        return self

    def done(self, step_id: str, text: str, attempt: int = 1) -> Script:
        self.events.append(Event("done", Response(step_id, attempt, text, Usage(3, 5), "end_turn", M)))
        return self

    def retry(self, step_id: str, delay: float, attempt: int = 1) -> Script:
        self.events.append(Event("retry", RetryInfo(step_id, attempt, 2, "overloaded_error", delay)))
        return self

    def progress(self, step_id: str, note: str) -> Script:
        self.events.append(Event("progress", StepResult(step_id, status="running", note=note)))
        return self

    def end(self, step_id: str, status: str = "ok", error: ErrorInfo | None = None) -> Script:
        step = self.steps.get(step_id) or StepResult(step_id)
        step.status, step.error = status, error  # type: ignore[assignment]
        self.events.append(Event("step_end", step))
        return self

    def play(self, run_status: str = "ok", **options: bool) -> Terminal:
        terminal = Terminal()
        handler = ConsoleHandler(terminal, terminal.screen, **options)  # type: ignore[arg-type]
        handler.PROGRESS_EVERY = 0  # every progress note counts here; the throttle is timed
        run = PipelineRun("r", dict(self.steps))
        handler.init(run)
        for event in self.events:
            handler.handle_event(event)
        run.status = run_status  # type: ignore[assignment]
        handler.handle_event(Event("run_end", run))
        handler.close()
        return terminal


# -- 1. notes never land inside a word --

def test_a_progress_note_waits_for_the_live_line_to_end() -> None:
    script = (Script().start("facts")
              .say(item_id("facts", 0), "t12 t").progress("facts", "1 of 2").say(item_id("facts", 0), "est\nmo", "re")
              .done(item_id("facts", 0), "t12 test\nmore").say(item_id("facts", 1), "done").done(item_id("facts", 1), "done")
              .end("facts"))
    terminal = script.play()
    assert terminal.screen.getvalue() == (
        f"── facts ({M}) ──\n"
        "── facts[0] ──\n"
        "t12 test\n"
        "[facts: 1 of 2]\n"
        "more\n"
        "── facts[1] ──\n"
        "done\n"
    )
    assert terminal.stdout.getvalue() == "t12 test\nmore\ndone\n"  # | tee: the texts and their newlines


def test_a_waiting_note_breaks_in_on_stderr_once_the_stream_goes_quiet() -> None:
    terminal = Terminal()
    handler = ConsoleHandler(terminal, terminal.screen)
    handler.QUIET_FLUSHES = 3  # the engine calls flush() after each ~50 ms with no event
    handler.init(PipelineRun("r", {}))
    handler.handle_event(Event("delta", Chunk(item_id("fan", 0), 1, 1, "t12 t")))
    handler.handle_event(Event("progress", StepResult("fan", note="1 of 2")))
    handler.flush()
    handler.handle_event(Event("delta", Chunk(item_id("fan", 0), 1, 2, "es")))  # an event: the quiet starts again
    handler.flush()
    handler.flush()
    assert terminal.screen.getvalue() == "── fan[0] ──\nt12 tes"  # quiet, but not for long yet
    handler.flush()
    assert terminal.screen.getvalue() == "── fan[0] ──\nt12 tes\n[fan: 1 of 2]\n"
    handler.handle_event(Event("delta", Chunk(item_id("fan", 0), 1, 3, "t")))
    assert terminal.stdout.getvalue() == "t12 test"  # the break went to stderr: stdout is as received


# -- 2. and 4. retry notices --

def test_a_retry_notice_of_another_step_does_not_split_the_live_text() -> None:
    script = (Script().start("fan", type="parallel", model=None).start("x").start("y")
              .say("x", "The quick br").retry("y", 30).say("x", "own fox\n", "jumps").done("x", "")
              .say("y", "why", attempt=2).done("y", "why", attempt=2).end("x").end("y").end("fan"))
    assert script.play().screen.getvalue() == (
        "── fan ──\n"
        f"── x ({M}) ──\n"
        "The quick brown fox\n"
        "[y: retry 1/2 after overloaded_error in 30 s]\n"
        "jumps\n"
        f"── y ({M}) ──\n"
        "why\n"
    )


def test_a_retry_of_the_live_step_says_how_long_it_waits() -> None:
    script = (Script().start("a").say("a", "half an answ").retry("a", 30)
              .say("a", "whole answer", attempt=2).done("a", "whole answer", attempt=2).end("a"))
    terminal = script.play()
    assert terminal.screen.getvalue() == (
        f"── a ({M}) ──\n"
        "half an answ\n"
        "[a: retry 1/2 after overloaded_error in 30 s; the partial text above is discarded]\n"
        "whole answer\n"
    )


def test_while_the_live_step_waits_to_retry_the_held_steps_go_through() -> None:
    script = (Script().start("x").start("y")
              .say("x", "half").say("y", "all of y").done("y", "all of y").end("y")
              .retry("x", 0.5).say("x", "whole x", attempt=2).done("x", "whole x", attempt=2).end("x"))
    terminal = script.play()
    assert terminal.screen.getvalue() == (
        f"── x ({M}) ──\n"
        "half\n"
        "[x: retry 1/2 after overloaded_error in 0.5 s; the partial text above is discarded]\n"
        f"── y ({M}) ──\n"
        "all of y\n"
        f"── x ({M}) ──\n"
        "whole x\n"
    )


# -- 3. concurrent steps: each text under its own header --

def test_parallel_children_each_get_their_header_just_before_their_text() -> None:
    script = (Script().start("fan", type="parallel", model=None).start("x").start("y")
              .say("y", "y one ").say("x", "x one ").say("y", "y two").say("x", "x two")
              .done("y", "y one y two").end("y").done("x", "x one x two").end("x").end("fan"))
    terminal = script.play()
    assert terminal.screen.getvalue() == (
        "── fan ──\n"
        f"── x ({M}) ──\n"
        "x one x two\n"
        f"── y ({M}) ──\n"
        "y one y two\n"
    )
    assert terminal.stdout.getvalue() == "x one x two\ny one y two\n"


def test_for_each_items_stream_in_turn_under_their_index() -> None:
    script = (Script().start("fan")
              .say(item_id("fan", 1), "b1 ").say(item_id("fan", 0), "a1 ").say(item_id("fan", 2), "c1").say(item_id("fan", 1), "b2")
              .done(item_id("fan", 2), "c1").progress("fan", "1 of 3").done(item_id("fan", 1), "b1 b2").progress("fan", "2 of 3")
              .say(item_id("fan", 0), "a2").done(item_id("fan", 0), "a1 a2").progress("fan", "3 of 3").end("fan"))
    assert script.play().screen.getvalue() == (
        f"── fan ({M}) ──\n"
        "── fan[1] ──\n"
        "b1 b2\n"
        "[fan: 1 of 3]\n"
        "── fan[0] ──\n"
        "a1 a2\n"
        "[fan: 2 of 3]\n"
        "── fan[2] ──\n"
        "c1\n"
        "[fan: 3 of 3]\n"
    )


def test_an_item_that_failed_mid_stream_frees_the_front_when_its_step_ends() -> None:
    script = (Script().start("fan").say(item_id("fan", 0), "cut sh").say(item_id("fan", 1), "whole").done(item_id("fan", 1), "whole")
              .end("fan", "error", ErrorInfo("item_failed", "1 of 2 items failed; first: fan[0]: cut")))
    assert script.play("error").screen.getvalue() == (
        f"── fan ({M}) ──\n"
        "── fan[0] ──\n"
        "cut sh\n"
        "── fan[1] ──\n"
        "whole\n"
        "[fan failed: item_failed: 1 of 2 items failed; first: fan[0]: cut]\n"
    )


# -- 5. Ctrl-C --

def test_ctrl_c_ends_the_open_line_on_stderr_and_stdout_keeps_what_arrived() -> None:
    terminal = Script().start("slow").say("slow", "t1", "8").end("slow", "interrupted").play("interrupted")
    terminal.screen.write("slow: interrupted\n")  # what the CLI prints next
    assert terminal.screen.getvalue() == f"── slow ({M}) ──\nt18\nslow: interrupted\n"
    assert terminal.stdout.getvalue() == "t18"


def test_ctrl_c_without_step_end_still_shows_what_waited_behind_the_live_step() -> None:
    # a worker that ignores the cancel sends no step_end: run_end is the last word
    script = Script().start("x").start("y").say("x", "x so f").say("y", "y all").done("y", "y all").end("y")
    terminal = script.play("interrupted")
    assert terminal.screen.getvalue() == f"── x ({M}) ──\nx so f\n── y ({M}) ──\ny all\n"
    assert terminal.stdout.getvalue() == "x so f\ny all\n"  # a newline only where a text follows


# -- notes for failures --

def test_a_failed_step_says_so_on_a_line_of_its_own() -> None:
    script = (Script().start("fan", type="parallel", model=None).start("x").start("y")
              .say("x", "x is sl").end("y", "error", ErrorInfo("overloaded_error", "Overloaded"))
              .say("x", "ow\n").done("x", "x is slow\n").end("x"))
    assert script.play("error").screen.getvalue() == (
        "── fan ──\n"
        f"── x ({M}) ──\n"
        "x is slow\n"
        "[y failed: overloaded_error: Overloaded]\n"
    )


# -- 6. the run summary --

FLOW = """
name: sums
defaults: {mock_delay: 0, stream: true}
steps:
  - id: a
    prompt: "About tides"
  - id: b
    prompt: "About moons"
"""


def test_summary_true_prints_the_run_summary_last_on_stderr() -> None:
    terminal = Terminal()
    run = execute(load_spec(FLOW), RunOptions(handlers=[ConsoleHandler(terminal, terminal.screen, summary=True)]))
    summary = run_summary(run)
    assert terminal.screen.getvalue().endswith("\n" + summary + "\n")
    assert terminal.stdout.getvalue() == f"{run.steps['a'].text}\n{run.steps['b'].text}\n"
    lines = summary.splitlines()
    assert re.fullmatch(r"sums: ok · 2 steps · \d+ tokens · in \d+\.\d\ds", lines[0])
    assert re.fullmatch(rf"  ✓ a: ok · {M} · \d+ → \d+ tokens · in \d+\.\d\ds", lines[1])
    assert lines[2].startswith("  ✓ b: ok") and len(lines) == 3


def test_the_summary_shows_each_error_under_its_step() -> None:
    run = PipelineRun("r", {"a": StepResult("a", status="error", error=ErrorInfo("timeout", "too slow")),
                            "b": StepResult("b", status="skipped", note="skipped: step 'a' failed")},
                      status="error", duration=1.5, handler_errors=["X raised ValueError: no"])
    assert run_summary(run) == ("r: error · 2 steps · in 1.50s\n"
                                "  ✗ a: error\n      timeout: too slow\n"
                                "  ↷ b: skipped\n      skipped: step 'a' failed\n"
                                "  handler error: X raised ValueError: no")


class BrokenPipe:
    def write(self, text: str) -> int:
        raise BrokenPipeError("stdout closed")

    def flush(self) -> None:
        pass


def test_a_console_dropped_mid_run_prints_its_summary_when_closed() -> None:
    err = io.StringIO()
    console = ConsoleHandler(BrokenPipe(), err, summary=True)  # type: ignore[arg-type]
    run = execute(load_spec(FLOW), RunOptions(handlers=[console]))
    assert [step.status for step in run.steps.values()] == ["ok", "ok"]
    assert err.getvalue().endswith(run_summary(run) + "\n")
    assert "handler error: ConsoleHandler raised BrokenPipeError: stdout closed" in err.getvalue()
