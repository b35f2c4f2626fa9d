"""Claude's thinking and citations reach every handler: deduplicated like text and dropped by a
retry; kept by BufferHandler; written by FileHandler (jsonl records, a ``[thinking]`` section, the
sources); shown by the console on stderr, so ``| tee`` of stdout keeps only the answer; and sent
by the live view in the same budget as text, each byte once, with a mark after each cited passage.

The engine path uses a provider of our own that streams as the Messages API does: thinking in
block 0, then a citation of block 1 before block 1's text, then block 2's plain text."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

import pipeline_nb
from tests.streaming._screen import Stream
from pipeline_nb import _llm as llm
from pipeline_nb._engine import RunOptions, execute
from pipeline_nb._loader import load_spec
from pipeline_nb.content import Citation, Reply, Text, Thinking, Usage
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb.streaming import (BufferHandler, Chunk, CitationChunk, ConsoleHandler, Event, FileHandler,
                                   Response, RetryInfo, StreamHandler)

THOUGHT = ("The table ", "lists two\nhigh waters.")
CITED = Citation("High water comes twice daily.", 0, "Tides", "page_location", 3, 4)
CITED_TEXT, PLAIN_TEXT = "Tides rise twice a day", ", as the tables show."
SPEC = {"steps": [{"id": "a", "provider": "citing", "prompt": "When are tides?", "stream": True}]}


class CitingProvider:
    """Thinks, then answers in two text blocks, the first of them cited."""

    name = "citing"

    def check(self, request: llm.LLMRequest) -> None:
        """Needs nothing."""

    def complete(self, request: llm.LLMRequest, emit: llm.Emit, cancel: llm.CancelToken) -> Reply:
        if request.stream:
            for piece in THOUGHT:
                emit(piece, llm.THINKING, 0)
            emit(CITED, llm.CITATION, 1)  # the API sends a block's citations before its text
            emit(CITED_TEXT, llm.TEXT, 1)
            emit(PLAIN_TEXT, llm.TEXT, 2)
        content = (Thinking("".join(THOUGHT), "sig"), Text(CITED_TEXT, (CITED,)), Text(PLAIN_TEXT))
        return Reply(content, Usage(5, 9), "end_turn", request.model)


@pytest.fixture(autouse=True)
def citing_provider() -> Iterator[None]:
    llm.register_provider("citing", CitingProvider)
    yield
    llm._PROVIDERS.pop("citing", None)


def thinking(step: str, seq: int, text: str, attempt: int = 1) -> Event:
    return Event("thinking", Chunk(step, attempt, seq, text, 0))


def delta(step: str, seq: int, text: str, attempt: int = 1, block: int = 1) -> Event:
    return Event("delta", Chunk(step, attempt, seq, text, block))


def citation(step: str, seq: int, attempt: int = 1, block: int = 1, cited: Citation = CITED) -> Event:
    return Event("citation", CitationChunk(step, attempt, seq, cited, block))


def done(step: str, text: str, thought: str = "", cited: tuple[Citation, ...] = (), attempt: int = 1) -> Event:
    content = ((Thinking(thought),) if thought else ()) + (Text(text, cited),)
    return Event("done", Response(step, attempt, text, Usage(3, 5), "end_turn", "m", content=content))


# -- the handler protocol --

def test_a_repeated_thought_or_citation_is_ignored_and_a_retry_drops_the_partial_thinking() -> None:
    buf = BufferHandler()
    buf.init(PipelineRun("r", {}))
    script = [thinking("a", 1, "first try"), thinking("a", 1, "first try"), citation("a", 2), citation("a", 2),
              delta("a", 3, "half"), Event("retry", RetryInfo("a", 1, 2, "overloaded_error", 0.0)),
              thinking("a", 1, "second ", attempt=2), thinking("a", 2, "try", attempt=2),
              thinking("a", 2, "try", attempt=2), citation("a", 3, attempt=2), delta("a", 4, "whole", attempt=2),
              thinking("a", 1, "first try")]  # a stale attempt's, replayed
    for event in script:
        buf.handle_event(event)
    assert buf.thinking == {"a": "second try"}
    assert buf.citations == {"a": [CITED]}
    assert buf.texts == {"a": "whole"}
    assert [e.kind for e in buf.events] == ["thinking", "citation", "delta", "retry", "thinking", "thinking",
                                            "citation", "delta"]


def test_the_engine_hands_thoughts_and_citations_to_on_thinking_and_on_citation() -> None:
    calls: list[tuple[str, Any]] = []

    class Recorder(StreamHandler):
        def on_thinking(self, chunk: Chunk) -> None:
            calls.append(("thinking", (chunk.content, chunk.block)))

        def on_citation(self, chunk: CitationChunk) -> None:
            calls.append(("citation", (chunk.citation, chunk.block)))

        def on_delta(self, chunk: Chunk) -> None:
            calls.append(("delta", (chunk.content, chunk.block)))

    buf = BufferHandler()
    run = execute(load_spec(SPEC), RunOptions(handlers=[Recorder(), buf]))
    step = run.steps["a"]
    assert calls == [("thinking", (THOUGHT[0], 0)), ("thinking", (THOUGHT[1], 0)), ("citation", (CITED, 1)),
                     ("delta", (CITED_TEXT, 1)), ("delta", (PLAIN_TEXT, 2))]
    assert buf.thinking["a"] == step.thinking == "".join(THOUGHT)
    assert buf.citations["a"] == list(step.citations) == [CITED]


# -- the file --

def test_the_jsonl_file_records_thoughts_and_citations_as_the_api_says_them(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    pipeline_nb.run(SPEC, on_event=FileHandler(path, format="jsonl"))
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["event"] for r in records] == ["step_start", "thinking", "thinking", "citation", "delta", "delta",
                                             "done", "step_end"]
    assert records[1] == {"event": "thinking", "step": "a", "attempt": 1, "seq": 1, "block": 0,
                          "content": THOUGHT[0]}
    assert records[3] == {"event": "citation", "step": "a", "attempt": 1, "seq": 3, "block": 1,
                          "citation": CITED.to_api()}
    assert Citation.from_api(records[3]["citation"]) == CITED


def test_the_text_file_puts_the_thinking_apart_before_the_answer_and_the_sources_after(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    pipeline_nb.run(SPEC, on_event=FileHandler(path))
    assert path.read_text(encoding="utf-8") == (
        "## a\n"
        "[thinking]\n"
        "The table lists two\nhigh waters.\n"
        "[answer]\n"
        "Tides rise twice a day, as the tables show.\n"
        "[sources]\n"
        '[1] "High water comes twice daily." — Tides, p. 3\n'
        "\n")


def test_the_text_file_shows_the_thinking_of_a_step_that_did_not_stream(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    pipeline_nb.run({"steps": [{**SPEC["steps"][0], "stream": False}]}, on_event=FileHandler(path))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("## a\n[thinking]\nThe table lists two\nhigh waters.\n[answer]\nTides rise twice")


# -- the console --



def console(tty: bool = False, **options: Any) -> tuple[ConsoleHandler, Stream, Stream]:
    screen = io.StringIO()
    out, err = Stream(screen), Stream(screen, tty)
    return ConsoleHandler(out, err, **options), out, err  # type: ignore[arg-type]


def console_run(tty: bool = False, **options: Any) -> tuple[str, str, str]:
    """SPEC run into a console: what stdout got (``| tee``), what stderr got, and the screen."""
    handler, out, err = console(tty, **options)
    pipeline_nb.run(SPEC, on_event=handler)
    return out.received.getvalue(), err.received.getvalue(), out.screen.getvalue()


def test_the_console_shows_thinking_on_stderr_prefixed_and_tee_keeps_only_the_answer() -> None:
    stdout, stderr, screen = console_run()
    assert stdout == CITED_TEXT + PLAIN_TEXT + "\n"  # | tee: the answer and its newline, nothing else
    assert screen == (
        "── a (claude-sonnet-5-5) ──\n"
        "┊ The table lists two\n"
        "┊ high waters.\n"
        "Tides rise twice a day, as the tables show.\n"
        '[a: cites "High water comes twice daily." (Tides, p. 3)]\n'
    )
    assert "\x1b" not in screen  # not a terminal: no colour codes in a log


def test_on_a_terminal_the_thinking_is_dimmed_and_can_be_left_out() -> None:
    _, stderr, _ = console_run(tty=True)
    assert "\x1b[2m┊ The table \x1b[22m" in stderr and "high waters.\x1b[22m" in stderr
    stdout, stderr, _ = console_run(thinking=False)
    assert "┊" not in stderr and stdout == CITED_TEXT + PLAIN_TEXT + "\n"


def play(events: list[Event], steps: dict[str, StepResult]) -> tuple[str, str]:
    """``events`` played into a console: the screen, and what stdout alone got."""
    handler, out, _ = console()
    handler.PROGRESS_EVERY = 0  # every progress note counts here; the throttle is timed
    run = PipelineRun("r", steps)
    handler.init(run)
    for event in events:
        handler.handle_event(event)
    handler.handle_event(Event("run_end", run))
    return out.screen.getvalue(), out.received.getvalue()


def test_a_note_waits_for_the_thinking_line_to_end() -> None:
    fan = StepResult("fan", model="m", status="running")
    events = [Event("step_start", fan), thinking(item_id("fan", 0), 1, "I sh"),
              Event("progress", StepResult("fan", status="running", note="1 of 2")),
              thinking(item_id("fan", 0), 2, "ould\nche"), thinking(item_id("fan", 0), 3, "ck"), delta(item_id("fan", 0), 4, "Yes"),
              done(item_id("fan", 0), "Yes", "I should\ncheck"), Event("step_end", fan)]
    screen, stdout = play(events, {"fan": fan})
    assert screen == ("── fan (m) ──\n"
                      "── fan[0] ──\n"
                      "┊ I should\n"
                      "[fan: 1 of 2]\n"
                      "┊ check\n"
                      "Yes\n")
    assert stdout == "Yes\n"


def test_a_held_step_shows_its_thinking_then_its_text_under_its_header_and_its_sources_after() -> None:
    x, y = StepResult("x", model="m", status="running"), StepResult("y", model="m", status="running")
    events = [Event("step_start", x), Event("step_start", y),
              delta("x", 1, "x so f"), thinking("y", 1, "y thinks"), citation("y", 2), delta("y", 3, "y says"),
              done("y", "y says", "y thinks", (CITED,)), Event("step_end", y),
              delta("x", 2, "ar"), done("x", "x so far"), Event("step_end", x)]
    screen, stdout = play(events, {"x": x, "y": y})
    assert screen == ("── x (m) ──\n"
                      "x so far\n"
                      "── y (m) ──\n"
                      "┊ y thinks\n"
                      "y says\n"
                      '[y: cites "High water comes twice daily." (Tides, p. 3)]\n')
    assert stdout == "x so far\ny says\n"


def test_a_retry_of_a_thinking_step_ends_the_thinking_line_and_says_it_is_discarded() -> None:
    a = StepResult("a", model="m", status="running")
    events = [Event("step_start", a), thinking("a", 1, "hmm"),
              Event("retry", RetryInfo("a", 1, 2, "overloaded_error", 1.0)),
              thinking("a", 1, "again", attempt=2), delta("a", 2, "done", attempt=2),
              done("a", "done", "again", attempt=2), Event("step_end", a)]
    screen, stdout = play(events, {"a": a})
    assert screen == ("── a (m) ──\n"
                      "┊ hmm\n"
                      "[a: retry 1/2 after overloaded_error in 1 s; the partial text above is discarded]\n"
                      "┊ again\n"
                      "done\n")
    assert stdout == "done\n"


def test_the_run_summary_says_the_step_thought_and_cited() -> None:
    _, stderr, _ = console_run(summary=True)
    assert stderr.splitlines()[-1].endswith("· thought 6 words · 1 citation")


# -- the live view --

pytest.importorskip("anywidget")

from pipeline_nb.display import _live as live  # noqa: E402
from pipeline_nb._step_ids import item_id


class Recorder(live.LiveView):
    made: list[Recorder] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[dict[str, Any]] = []
        Recorder.made.append(self)

    def send(self, content: Any, buffers: Any = None) -> None:
        self.messages.append(content)


class RecordingHandler(live.WidgetHandler):
    view_class = Recorder



def shown(view: Recorder) -> dict[str, dict[str, str]]:
    """What the view's panes hold after applying every message as live.js does: each step's
    thinking, and its text with ``[n]`` marks placed at their UTF-16 offsets."""
    panes: dict[str, dict[str, str]] = {}
    for msg in view.messages:
        for step in msg.get("reset", ()):
            panes[step] = {"thinking": "", "text": ""}
        for step, text, _ in msg.get("thinking", ()):
            pane = panes.setdefault(step, {"thinking": "", "text": ""})
            pane["thinking"] += text
        for step, text, _, *marks in msg.get("text", ()):
            units = text.encode("utf-16-le")
            at, written = 0, ""
            for offset, n, _source in (marks[0] if marks else ()):
                written += units[2 * at:2 * offset].decode("utf-16-le") + f"[{n}]"
                at = offset
            pane = panes.setdefault(step, {"thinking": "", "text": ""})
            pane["text"] += written + units[2 * at:].decode("utf-16-le")
    return panes


def test_the_live_view_sends_thinking_once_in_the_same_budget_as_text(clock: list[float], capsys: Any) -> None:
    handler = RecordingHandler(interval=0.05, min_chars=100, max_wait=0.2)
    a = StepResult("a", type="llm", status="running")
    run = PipelineRun("t", {"a": a})
    handler.init(run)
    view = handler.view
    assert isinstance(view, Recorder)
    handler.handle_event(thinking("a", 1, "Let me "))
    assert view.messages[-1]["thinking"] == [("a", "Let me ", 1)]  # the first thought goes at once
    pieces = [f"t{n} " for n in range(2, 200)]
    for seq, piece in enumerate(pieces, 2):
        clock[0] += 0.01
        handler.handle_event(thinking("a", seq, piece))
    sent = len(view.messages)
    clock[0] += 0.06  # past the interval, short of min_chars: the answer's first text goes at once
    handler.handle_event(delta("a", 200, "Answer"))
    assert len(view.messages) == sent + 1 and view.messages[-1]["text"] == [("a", "Answer", 200)]
    handler.handle_event(Event("step_end", a))
    handler.handle_event(Event("run_end", run))
    assert shown(view) == {"a": {"thinking": "Let me " + "".join(pieces), "text": "Answer"}}
    assert len(view.messages) < 1 + 198 * 0.01 / 0.05 + 3  # one message an interval at most, not one a thought


def test_a_citation_mark_goes_after_the_passage_it_cites(clock: list[float], capsys: Any) -> None:
    handler = RecordingHandler(interval=0.05, min_chars=10_000, max_wait=0.2)
    a = StepResult("a", type="llm", status="running")
    run = PipelineRun("t", {"a": a})
    handler.init(run)
    view = handler.view
    assert isinstance(view, Recorder)
    other = Citation("Neap tides are weaker.", 0, None, "char_location", 10, 32)
    script = [delta("a", 1, "Plain 🌊 start. ", block=0), citation("a", 2, block=1), delta("a", 3, "Cited ", block=1),
              delta("a", 4, "🌕 passage", block=1), citation("a", 5, block=2, cited=other),
              delta("a", 6, " second", block=2), delta("a", 7, " and plain.", block=3),
              citation("a", 8, block=4), delta("a", 9, " Last cited.", block=4)]
    for event in script:
        clock[0] += 0.03
        handler.handle_event(event)
    handler.handle_event(done("a", "…"))
    handler.handle_event(Event("step_end", a))
    handler.handle_event(Event("run_end", run))
    assert shown(view)["a"]["text"] == "Plain 🌊 start. Cited 🌕 passage[1] second[2] and plain. Last cited.[3]"
    marks = [mark for msg in view.messages for entry in msg.get("text", ()) if len(entry) == 4 for mark in entry[3]]
    assert [source for _, _, source in marks] == ['"High water comes twice daily." — Tides, p. 3',
                       '"Neap tides are weaker." — document 1, chars 10–31',
                       '"High water comes twice daily." — Tides, p. 3']


def test_a_retry_drops_the_pending_thinking_and_marks(clock: list[float], capsys: Any) -> None:
    handler = RecordingHandler(interval=0.05, min_chars=10_000, max_wait=0.2)
    a = StepResult("a", type="llm", status="running")
    run = PipelineRun("t", {"a": a})
    handler.init(run)
    view = handler.view
    assert isinstance(view, Recorder)
    for event in (thinking("a", 1, "first "), thinking("a", 2, "idea"), citation("a", 3), delta("a", 4, "cut"),
                  delta("a", 5, " off", block=2), Event("retry", RetryInfo("a", 1, 2, "overloaded_error", 0.0)),
                  thinking("a", 1, "better idea", attempt=2), citation("a", 2, attempt=2),
                  delta("a", 3, "whole", attempt=2)):
        handler.handle_event(event)  # the clock stands still: all but the first thought wait
    handler.handle_event(done("a", "whole", attempt=2))
    handler.handle_event(Event("step_end", a))
    handler.handle_event(Event("run_end", run))
    assert handler._pending_chars == 0
    assert shown(view) == {"a": {"thinking": "better idea", "text": "whole[1]"}}
