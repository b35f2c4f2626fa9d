"""Tool calls reach every handler: deduplicated like text, and a retry after a tool result keeps
the calls that ran and all before them; kept by BufferHandler; written by FileHandler (jsonl:
each piece of input once, the result JSON-safe; text: a ``[tool]`` line); shown by the console
as one line per call once it returned, on stderr, so ``| tee`` of stdout keeps only the answer;
and sent by the live view in the same budget as text, each row at its place in the text.

The events are made by hand, as the engine emits them: in each round (a call of the step's tool
loop, with its own seq), the text, then a call's first chunk (input ``{}``) and a chunk per
piece of its input JSON, the round's ``done`` (stopped for ``tool_use``), then the call's
``tool_result``; the next round's events follow."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.streaming._screen import Stream
from pipeline_nb._results import PipelineRun, StepResult, ToolCall
from pipeline_nb._step_ids import item_id
from pipeline_nb.content import Text, Usage
from pipeline_nb.streaming import (BufferHandler, Chunk, ConsoleHandler, Event, FileHandler, Response, RetryInfo,
                                   ToolCallChunk)

RESULTS = [{"type": "web_search_result", "url": f"https://tides.example/{n}", "title": f"Tide table {n}",
            "encrypted_content": "EqQBCkgIARABGAIiQ..."} for n in (1, 2, 3)]


def delta(step: str, seq: int, text: str, attempt: int = 1, block: int = 0, round: int = 1) -> Event:
    return Event("delta", Chunk(step, attempt, seq, text, block, round))


def call_starts(step: str, seq: int, call_id: str = "toolu_1", name: str = "search", round: int = 1,
                attempt: int = 1, block: int = 1, server: bool = False) -> Event:
    return Event("tool_call", ToolCallChunk(step, attempt, seq, round, call_id, name, {}, "", block, server))


def call_grows(step: str, seq: int, piece: str, so_far: dict[str, Any], call_id: str = "toolu_1",
               name: str = "search", round: int = 1, attempt: int = 1, block: int = 1) -> Event:
    return Event("tool_call", ToolCallChunk(step, attempt, seq, round, call_id, name, so_far, piece, block))


def returned(step: str, call_id: str = "toolu_1", name: str = "search", input: Any = None, output: Any = None,
             round: int = 1, error: str | None = None, duration: float | None = 0.12, server: bool = False,
             note: str = "") -> Event:
    return Event("tool_result", ToolCall(step, round, call_id, name, {"query": "tides"} if input is None else input,
                                         output, error is not None, error, duration, server, note))


def done(step: str, text: str, attempt: int = 1, round: int = 1, stop: str = "end_turn") -> Event:
    return Event("done", Response(step, attempt, text, Usage(3, 5), stop, "m", content=(Text(text),), round=round))


def retry(step: str, round: int) -> Event:
    return Event("retry", RetryInfo(step, 1, 2, "overloaded_error", 0.0, round))


def search(step: str = "a") -> list[Event]:
    """A search call of ``step``'s first round, streamed: seq 3 to 5 (its text before it: seq 1 and
    2), and the round's reply, which asks for it."""
    return [call_starts(step, 3), call_grows(step, 4, '{"query": ', {}),
            call_grows(step, 5, '"tides"}', {"query": "tides"}), done(step, "", stop="tool_use")]


SEARCH = search()


# -- the handler protocol and the buffer --

def test_a_repeated_tool_chunk_or_result_is_ignored() -> None:
    buf = BufferHandler()
    buf.init(PipelineRun("r", {}))
    for event in [delta("a", 1, "Let me look."), *SEARCH, SEARCH[1], SEARCH[2], returned("a", output=RESULTS),
                  returned("a", output=RESULTS), delta("a", 1, "Twice a day.", round=2)]:
        buf.handle_event(event)
    assert [e.kind for e in buf.events] == ["delta", "tool_call", "tool_call", "tool_call", "done", "tool_result",
                                            "delta"]
    assert buf.tool_inputs == {"a": {"toolu_1": {"query": "tides"}}}
    assert [(c.name, c.output) for c in buf.tool_calls["a"]] == [("search", RESULTS)]


def test_a_retry_after_a_tool_result_keeps_the_calls_that_ran_and_all_before_them() -> None:
    buf = BufferHandler()
    buf.init(PipelineRun("r", {}))
    script = [delta("a", 1, "Let me look. "), *SEARCH, returned("a", output=RESULTS),
              delta("a", 1, "Twice", round=2), call_starts("a", 2, "toolu_2", round=2),  # round 2 breaks off
              retry("a", round=2), delta("a", 1, "Twice a day.", attempt=2, round=2)]
    for event in script:
        buf.handle_event(event)
    assert buf.texts == {"a": "Let me look. Twice a day."}
    assert list(buf.tool_inputs["a"]) == ["toolu_1"]  # the failed attempt's call never ran
    assert [c.id for c in buf.tool_calls["a"]] == ["toolu_1"]


# -- the file --

class Opaque:
    """A value JSON cannot hold, as a tool may return (a figure, a dataframe)."""

    def __str__(self) -> str:
        return "<figure 640x480>"


def file_run(path: Path, format: str) -> None:
    handler = FileHandler(path, format=format)
    a = StepResult("a", model="m", status="ok")
    handler.init(PipelineRun("r", {"a": a}))
    for event in [Event("step_start", a), delta("a", 1, "Let me look."), *SEARCH, returned("a", output=RESULTS),
                  call_starts("a", 1, "toolu_2", "plot", round=2),
                  call_grows("a", 2, '{"day": "2026-11-29"}', {"day": "2026-11-29"}, "toolu_2", "plot", round=2),
                  done("a", "", round=2, stop="tool_use"),
                  returned("a", "toolu_2", "plot", {"day": datetime.date(2026, 11, 29)}, Opaque(), round=2),
                  call_starts("a", 1, "toolu_3", "read", round=3), done("a", "", round=3, stop="tool_use"),
                  returned("a", "toolu_3", "read", {"path": "../x"}, None, round=3,
                           error="ValueError: outside the folder"),
                  delta("a", 1, "Twice a day.", round=4), done("a", "Twice a day.", round=4), Event("step_end", a)]:
        handler.handle_event(event)
    handler.close()


def test_the_jsonl_file_records_each_piece_of_input_once_and_the_result_json_safe(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    file_run(path, "jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    calls = [r for r in records if r["event"] == "tool_call"]
    assert calls[:3] == [
        {"event": "tool_call", "step": "a", "attempt": 1, "seq": 3, "round": 1, "id": "toolu_1", "name": "search",
         "block": 1, "server": False, "input": {}},
        {"event": "tool_call", "step": "a", "attempt": 1, "seq": 4, "round": 1, "id": "toolu_1", "name": "search",
         "block": 1, "server": False, "partial_json": '{"query": '},
        {"event": "tool_call", "step": "a", "attempt": 1, "seq": 5, "round": 1, "id": "toolu_1", "name": "search",
         "block": 1, "server": False, "partial_json": '"tides"}'},
    ]
    results = [r for r in records if r["event"] == "tool_result"]
    assert results[0] == {"event": "tool_result", "step": "a", "round": 1, "id": "toolu_1", "name": "search",
                          "input": {"query": "tides"}, "output": RESULTS, "is_error": False, "error": None,
                          "duration": 0.12, "server": False, "note": ""}
    assert (results[1]["input"], results[1]["output"]) == ({"day": "2026-11-29"}, "<figure 640x480>")
    assert (results[2]["is_error"], results[2]["error"]) == (True, "ValueError: outside the folder")
    assert [r["event"] for r in records][-3:] == ["delta", "done", "step_end"]
    assert [r["round"] for r in records if r["event"] == "tool_result"] == [1, 2, 3]


def test_the_text_file_has_a_tool_line_per_call_between_the_texts(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    file_run(path, "text")
    assert path.read_text(encoding="utf-8") == (
        "## a\n"
        "Let me look.\n"
        '[tool] search(query="tides") → 3 results · 0.12 s\n'
        '[tool] plot(day="2026-11-29") → <figure 640x480> · 0.12 s\n'
        '[tool] read(path="../x") ✗ ValueError: outside the folder · 0.12 s\n'
        "Twice a day.\n"
        "\n")


# -- the console --



def play(events: list[Event], steps: dict[str, StepResult], tty: bool = False) -> tuple[str, str, str]:
    """``events`` played into a console: the screen, what stdout got, and what stderr got."""
    screen = io.StringIO()
    out, err = Stream(screen, tty), Stream(screen, tty)
    handler = ConsoleHandler(out, err)  # type: ignore[arg-type]
    run = PipelineRun("r", steps)
    handler.init(run)
    for event in events:
        handler.handle_event(event)
    handler.handle_event(Event("run_end", run))
    return screen.getvalue(), out.received.getvalue(), err.received.getvalue()


def tool_loop(step: str = "a") -> list[Event]:
    """Step ``step`` writes, searches, writes, reads a file that is not there, and answers."""
    return [delta(step, 1, "Let me look."), *search(step), returned(step, output=RESULTS),
            delta(step, 1, "Found three.", round=2), call_starts(step, 2, "toolu_2", "read", round=2),
            call_grows(step, 3, '{"path": "tides.csv"}', {"path": "tides.csv"}, "toolu_2", "read", round=2),
            done(step, "Found three.", round=2, stop="tool_use"),
            returned(step, "toolu_2", "read", {"path": "tides.csv"}, None, round=2, duration=0.01,
                     error="FileNotFoundError: tides.csv"),
            delta(step, 1, "Twice a day.", round=3), done(step, "Twice a day.", round=3)]


def test_the_console_prints_a_line_per_call_once_it_returned_between_the_texts() -> None:
    a = StepResult("a", model="m", status="running")
    screen, stdout, stderr = play([Event("step_start", a), *tool_loop(), Event("step_end", a)], {"a": a})
    assert screen == ("── a (m) ──\n"
                      "Let me look.\n"
                      '[a: ⚙ search(query="tides") → 3 results · 0.12 s]\n'
                      "Found three.\n"
                      '[a: ⚙ read(path="tides.csv") ✗ FileNotFoundError: tides.csv · 0.01 s]\n'
                      "Twice a day.\n")
    assert stdout == "Let me look.\nFound three.\nTwice a day.\n"  # | tee: the texts, no tool lines
    assert "\x1b" not in screen  # not a terminal: no colour codes in a log


def test_on_a_terminal_a_failed_call_is_red() -> None:
    a = StepResult("a", model="m", status="running")
    _, _, stderr = play([Event("step_start", a), *tool_loop(), Event("step_end", a)], {"a": a}, tty=True)
    assert '\x1b[31m[a: ⚙ read(path="tides.csv") ✗ FileNotFoundError: tides.csv · 0.01 s]\x1b[39m\n' in stderr
    assert '[a: ⚙ search(query="tides") → 3 results · 0.12 s]\n' in stderr.replace("\x1b[31m", "")


def test_a_held_steps_call_is_a_note_that_names_it_and_waits_for_the_line_to_end() -> None:
    x, y = StepResult("x", model="m", status="running"), StepResult("y", model="m", status="running")
    events = [Event("step_start", x), Event("step_start", y), delta("x", 1, "x so f"),
              *tool_loop("y")[:6],  # y writes and searches while x has the front
              delta("x", 2, "ar\nmore"), done("x", "x so far\nmore"), Event("step_end", x),
              *tool_loop("y")[6:], Event("step_end", y)]
    screen, stdout, _ = play(events, {"x": x, "y": y})
    assert screen == ("── x (m) ──\n"
                      "x so far\n"
                      '[y: ⚙ search(query="tides") → 3 results · 0.12 s]\n'
                      "more\n"
                      "── y (m) ──\n"
                      "Let me look.\n"  # held, it is written whole, its rounds apart; its calls were noted already
                      "Found three.\n"
                      '[y: ⚙ read(path="tides.csv") ✗ FileNotFoundError: tides.csv · 0.01 s]\n'
                      "Twice a day.\n")
    assert stdout == "x so far\nmore\nLet me look.\nFound three.\nTwice a day.\n"


def test_a_reply_that_asks_for_tools_keeps_the_front_until_the_steps_last() -> None:
    x, y = StepResult("x", model="m", status="running"), StepResult("y", model="m", status="running")
    events = [Event("step_start", x), Event("step_start", y), *tool_loop("x")[:6],
              delta("y", 1, "y says"), done("y", "y says"), Event("step_end", y),  # y ends between x's rounds
              *tool_loop("x")[6:], Event("step_end", x)]
    screen, _, _ = play(events, {"x": x, "y": y})
    assert screen == ("── x (m) ──\n"
                      "Let me look.\n"
                      '[x: ⚙ search(query="tides") → 3 results · 0.12 s]\n'
                      "Found three.\n"
                      '[x: ⚙ read(path="tides.csv") ✗ FileNotFoundError: tides.csv · 0.01 s]\n'
                      "Twice a day.\n"
                      "── y (m) ──\n"
                      "y says\n")


# -- the live view --

pytest.importorskip("anywidget")

from pipeline_nb.display import _live as live  # noqa: E402
from pipeline_nb.display._tool_rows import TOOL_INPUT_SHOWN  # noqa: E402


class Recorder(live.LiveView):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[dict[str, Any]] = []

    def send(self, content: Any, buffers: Any = None) -> None:
        self.messages.append(content)


class RecordingHandler(live.WidgetHandler):
    view_class = Recorder



@pytest.fixture(autouse=True)
def _quiet(capsys: Any) -> None:
    """Outside a kernel, display() prints the view's repr."""


def start(*steps: StepResult, **options: Any) -> tuple[RecordingHandler, PipelineRun, Recorder]:
    handler = RecordingHandler(**{"interval": 0.05, "min_chars": 10_000, "max_wait": 0.2, **options})
    run = PipelineRun("t", {s.id: s for s in steps})
    handler.init(run)
    assert isinstance(handler.view, Recorder)
    return handler, run, handler.view


def page(view: Recorder) -> dict[str, str]:
    """What each pane shows after every message, applied as live.js does: its text, with each
    tool call's row at its place as ``⟨name input → output⟩`` (``✗`` for an error)."""
    panes: dict[str, list[Any]] = {}
    for msg in view.messages:
        for step in msg.get("reset", ()):
            panes[step] = []
        for step, call_id in msg.get("rewind", ()):
            pieces = panes.get(step, [])
            at = next((n for n, p in enumerate(pieces) if isinstance(p, dict) and p["id"] == call_id), None)
            if at is not None:
                del pieces[at + 1:]
        begun: dict[str, list[dict[str, Any]]] = {}
        for tool in msg.get("tools", ()):
            if "at" in tool:
                begun.setdefault(tool["step"], []).append(tool)
        for step, text, _, *marks in msg.get("text", ()):
            assert not marks  # these tests cite nothing
            units, at = text.encode("utf-16-le"), 0
            pieces = panes.setdefault(step, [])
            for tool in begun.pop(step, ()):
                pieces += [units[2 * at:2 * tool["at"]].decode("utf-16-le"), {"id": tool["id"], "name": tool["name"]}]
                at = tool["at"]
            pieces.append(units[2 * at:].decode("utf-16-le"))
        for tool in msg.get("tools", ()):
            pieces = panes.setdefault(tool["step"], [])
            row = next((p for p in pieces if isinstance(p, dict) and p["id"] == tool["id"]), None)
            if row is None:
                row = {"id": tool["id"], "name": tool["name"]}
                pieces.append(row)
            if "input" in tool:
                row["input"] = tool["input"]
            row["input"] = row.get("input", "") + tool.get("args", "")
            for key in ("output", "error", "time"):
                if key in tool:
                    row[key] = tool[key]
    def shown(piece: Any) -> str:
        if isinstance(piece, str):
            return piece
        result = f" {'✗' if piece.get('error') else '→'} {piece['output']}" if "output" in piece else ""
        return f"⟨{piece['name']} {piece.get('input', '')}{result}⟩"
    return {step: "".join(map(shown, pieces)) for step, pieces in panes.items()}


def test_a_call_is_a_row_where_the_text_had_got_to_its_input_growing_then_its_result(clock: list[float]) -> None:
    a = StepResult("a", status="running")
    handler, run, view = start(a)
    handler.handle_event(delta("a", 1, "Let me "))  # a step's first text goes at once
    clock[0] += 0.06
    handler.handle_event(delta("a", 2, "look 🌊."))  # waits for min_chars
    handler.handle_event(SEARCH[0])  # a new row: goes at once, after the text so far
    assert view.messages[-1]["text"] == [("a", "look 🌊.", 3)]
    assert view.messages[-1]["tools"] == [{"step": "a", "id": "toolu_1", "name": "search", "round": 1, "at": 8}]
    sent = len(view.messages)
    for event in SEARCH[1:3]:
        clock[0] += 0.01
        handler.handle_event(event)  # a piece of input is no hurry: it waits for max_wait
    assert len(view.messages) == sent
    clock[0] += 0.2
    handler.flush()
    assert view.messages[-1] == {"tools": [{"step": "a", "id": "toolu_1", "args": '{"query": "tides"}'}]}
    clock[0] += 0.06
    handler.handle_event(returned("a", output=RESULTS))  # a result goes at once
    assert view.messages[-1]["tools"] == [{"step": "a", "id": "toolu_1", "time": 0.12, "output": "\n".join(
        f"Tide table {n} — https://tides.example/{n}" for n in (1, 2, 3))}]
    for event in [delta("a", 1, "Twice a day.", round=2), done("a", "…", round=2), Event("step_end", a),
                  Event("run_end", run)]:
        handler.handle_event(event)
    results = "\n".join(f"Tide table {n} — https://tides.example/{n}" for n in (1, 2, 3))
    assert page(view) == {"a": f'Let me look 🌊.⟨search {{"query": "tides"}} → {results}⟩Twice a day.'}


def test_an_items_call_names_its_row_and_a_call_that_did_not_stream_shows_its_input_whole(
        clock: list[float]) -> None:
    fan = StepResult("fan", status="running")
    handler, run, view = start(fan)
    part = item_id("fan", 0)
    handler.handle_event(Event("tool_call", ToolCallChunk(part, 1, 1, 1, "toolu_9", "read", {"path": "a<b>.csv"})))
    handler.handle_event(returned(part, "toolu_9", "read", {"path": "a<b>.csv"}, None, error="FileNotFoundError"))
    handler.handle_event(Event("run_end", run))
    tools = [tool for msg in view.messages for tool in msg.get("tools", ())]
    assert tools[0] == {"step": "fan[0]", "id": "toolu_9", "name": "read", "round": 1, "at": 0,
                        "input": '{"path": "a<b>.csv"}'}
    assert view.messages[0]["owners"] == {"fan[0]": "fan"}  # the view never parses "fan[0]"
    assert page(view) == {"fan[0]": '⟨read {"path": "a<b>.csv"} ✗ FileNotFoundError⟩'}
    assert {"error": True, "output": "FileNotFoundError"}.items() <= tools[-1].items()


def test_a_streamed_input_costs_a_message_per_interval_and_crosses_the_wire_once(clock: list[float]) -> None:
    a = StepResult("a", status="running")
    handler, run, view = start(a)
    handler.handle_event(call_starts("a", 1))
    pieces = [f'"w{n}", ' for n in range(1_000)]  # 1 s of the fake clock: 20 intervals
    for seq, piece in enumerate(pieces, 2):
        clock[0] += 0.001
        handler.handle_event(call_grows("a", seq, piece, {}))
    handler.handle_event(Event("run_end", run))
    assert len(view.messages) <= 1 + 1 / 0.05 + 2
    args = "".join(tool.get("args", "") for msg in view.messages for tool in msg.get("tools", ()))
    whole = "".join(pieces)
    assert args == whole[:TOOL_INPUT_SHOWN] + "…"  # each character once, up to the cap
    assert all(len(msg.get("tools", ())) <= 1 for msg in view.messages)  # one entry a call, however many pieces


def test_a_retry_after_a_tool_result_rewinds_the_pane_to_it_instead_of_clearing_it(clock: list[float]) -> None:
    a = StepResult("a", status="running")
    handler, run, view = start(a)
    script = [delta("a", 1, "Let me look."), *SEARCH, returned("a", output=["high tide 06:12"]),
              delta("a", 1, "Twice", round=2), call_starts("a", 2, "toolu_2", round=2)]
    for event in script:
        clock[0] += 0.06  # each goes as it comes (or with the next)
        handler.handle_event(event)
    clock[0] += 0.3
    handler.flush()
    assert page(view) == {"a": 'Let me look.⟨search {"query": "tides"} → ["high tide 06:12"]⟩Twice⟨search ⟩'}
    handler.handle_event(retry("a", round=2))
    handler.handle_event(delta("a", 1, "Twice a day.", attempt=2, round=2))
    handler.handle_event(Event("run_end", run))
    assert all("reset" not in msg for msg in view.messages)
    assert page(view) == {"a": 'Let me look.⟨search {"query": "tides"} → ["high tide 06:12"]⟩Twice a day.'}


def test_a_retry_keeps_the_pending_text_before_the_result_and_drops_the_rest(clock: list[float]) -> None:
    a = StepResult("a", status="running")
    handler, run, view = start(a)
    handler.handle_event(delta("a", 1, "Let "))
    for event in [delta("a", 2, "me look."), *SEARCH, returned("a", output="06:12"), delta("a", 1, "Twi", round=2),
                  retry("a", round=2), delta("a", 1, "Twice a day.", attempt=2, round=2)]:
        handler.handle_event(event)  # the clock stands still: all of it waits for run end
    handler.handle_event(Event("run_end", run))
    assert handler._pending_chars == 0
    assert page(view) == {"a": 'Let me look.⟨search {"query": "tides"} → 06:12⟩Twice a day.'}

