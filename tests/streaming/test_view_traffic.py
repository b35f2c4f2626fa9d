"""The live view's traffic has one budget: rows and text together, at most one message per
``interval`` (a fake clock here, so nothing is timed), the final state at run end; and its
rows say what a reader needs: a for_each's ``0 of N`` and the tokens of its finished items,
a parallel step's children under it, a count of the top-level steps. One test counts the
iopub messages of a 5,000-item for_each cell in a real kernel."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb._results import PipelineRun, StepResult, Usage
from pipeline_nb.streaming._events import (DELTA, DONE, PROGRESS, RETRY, RUN_END, STEP_END, STEP_START, Chunk,
                                          Event, Response, RetryInfo)
from tests.reliability._support import Kernel, kernel_manager

pytest.importorskip("anywidget")

from pipeline_nb.display import _live as live  # noqa: E402
from pipeline_nb._step_ids import item_id

INTERVAL = 0.05


class Wire(live.LiveView):
    """A LiveView that records every comm message it would send (custom messages and state
    updates alike) with the fake clock's time, and sends none."""

    made: list[Wire] = []

    def __init__(self, **kwargs: Any) -> None:
        self.wire: list[tuple[float, dict[str, Any]]] = []
        super().__init__(**kwargs)
        Wire.made.append(self)

    def _send(self, msg: dict[str, Any], buffers: Any = None) -> None:
        self.wire.append((live.time.monotonic(), msg))


class WireHandler(live.WidgetHandler):
    view_class = Wire



@pytest.fixture(autouse=True)
def _quiet(capsys: Any) -> None:
    """Outside a kernel, display() prints the view's repr."""
    Wire.made.clear()


def sent(view: Wire) -> list[tuple[float, dict[str, Any]]]:
    """What the handler sent: custom messages and rows state (anywidget's own setup, the
    ``_esm``, ``_css`` and ``_anywidget_id`` updates, is the same whatever the run)."""
    return [(at, m) for at, m in view.wire if m.get("method") == "custom" or "rows" in m.get("state", {})]


def latest_rows(view: Wire) -> dict[str, dict[str, Any]]:
    """The rows the frontend shows now: the last rows sent, as state or in a message."""
    rows: list[dict[str, Any]] = []
    for _, msg in sent(view):
        rows = msg.get("state", {}).get("rows") or msg.get("content", {}).get("rows") or rows
    return {row["id"]: row for row in rows}


def start(handler: WireHandler, *steps: StepResult) -> tuple[PipelineRun, Wire]:
    run = PipelineRun(name="t", steps={s.id: s for s in steps})
    handler.init(run)
    assert isinstance(handler.view, Wire)
    return run, handler.view


def fan_out(handler: WireHandler, clock: list[float], items: int, step_every: float) -> tuple[PipelineRun, Wire]:
    """A for_each step of ``items`` items, not streamed: each item's reply, then the progress."""
    fan = StepResult("fan", type="llm", model="m")
    run, view = start(handler, fan)
    fan.status = "running"
    handler.handle_event(Event(STEP_START, fan))
    fan.items = [StepResult(item_id("fan", i)) for i in range(items)]
    for i in range(items):
        clock[0] += step_every
        handler.handle_event(Event(DONE, Response(item_id("fan", i), 1, "reply", Usage(3, 2), "end_turn", "m")))
        fan.note = f"{i + 1} of {items}"
        handler.handle_event(Event(PROGRESS, replace(fan)))
    fan.status, fan.usage, fan.note = "ok", Usage(3 * items, 2 * items), f"{items} items"
    handler.handle_event(Event(STEP_END, fan))
    run.status = "ok"
    handler.handle_event(Event(RUN_END, run))
    return run, view


def test_a_fan_out_costs_a_message_per_interval_not_per_item(clock: list[float]) -> None:
    handler = WireHandler(interval=INTERVAL)
    # 10,000 items in 1 s of the fake clock: 20 intervals
    _, view = fan_out(handler, clock, 10_000, 0.0001)
    assert len(sent(view)) <= 1 / INTERVAL + 3, len(sent(view))  # was 10,003: one rows sync per item
    assert latest_rows(view)["fan"] == {"id": "fan", "status": "ok", "model": "m", "tokens": 20_000,
                                        "note": "10000 items", "started": 1000_000.0}
    assert sent(view)[-1][1]["method"] == "update"  # the final rows go as state: a saved widget has them
    assert handler.sends == len(sent(view))


def test_every_kind_of_update_shares_one_budget(clock: list[float]) -> None:
    handler = WireHandler(interval=INTERVAL, min_chars=10, max_wait=0.2)
    a, b = StepResult("a", type="llm"), StepResult("b", type="llm")
    run, view = start(handler, a, b)
    script: list[Event] = [Event(STEP_START, a)]
    script += [Event(DELTA, Chunk("a", 1, n, f"w{n} ")) for n in range(1, 40)]
    script += [Event(RETRY, RetryInfo("a", 1, 2, "overloaded_error", 0.0))]
    script += [Event(DELTA, Chunk("a", 2, n, f"v{n} ")) for n in range(1, 40)]
    script += [Event(STEP_END, a), Event(STEP_START, b)]
    script += [Event(DELTA, Chunk("b", 1, n, f"u{n} ")) for n in range(1, 40)]
    script += [Event(STEP_END, b)]
    for event in script:
        clock[0] += 0.007  # about 7 events an interval
        if event.kind == STEP_START:
            event.data.status = "running"
        if event.kind == STEP_END:
            event.data.status, event.data.text = "ok", "x"
        handler.handle_event(event)
    handler.handle_event(Event(RUN_END, run))

    times = [at for at, _ in sent(view)]
    before_end = [t for t in times if t < clock[0]]
    # rows, text and resets never beyond the budget: at most k + 1 messages in any k intervals
    window = 10 * INTERVAL
    busiest = max(sum(start <= t < start + window for t in before_end) for start in before_end)
    assert len(before_end) > 5 and busiest <= 11, before_end
    assert len(times) - len(before_end) <= 2  # at run end: the last text, then the final rows
    assert {row["id"]: row["status"] for row in latest_rows(view).values()} == {"a": "ok", "b": "ok"}
    texts: dict[str, str] = {}
    for _, msg in sent(view):
        content = msg.get("content", {})
        for step_id in content.get("reset", ()):
            texts[step_id] = ""
        for step_id, text, _ in content.get("text", ()):
            texts[step_id] = texts.get(step_id, "") + text
    assert texts == {"a": "".join(f"v{n} " for n in range(1, 40)), "b": "".join(f"u{n} " for n in range(1, 40))}


def test_a_for_each_row_shows_its_item_count_at_once_and_the_tokens_of_finished_items(clock: list[float]) -> None:
    handler = WireHandler(interval=INTERVAL)
    fan = StepResult("fan", type="llm", model="m")
    _, view = start(handler, fan)
    fan.status = "running"
    handler.handle_event(Event(STEP_START, fan))
    fan.items = [StepResult(item_id("fan", i)) for i in range(5)]  # the worker knows N; no item has finished
    clock[0] += 0.1
    handler.flush()  # the engine's flush in a quiet spell
    assert latest_rows(view)["fan"]["note"] == "0 of 5"
    for i, tokens in enumerate((7, 5)):
        clock[0] += 0.1
        handler.handle_event(Event(DONE, Response(item_id("fan", i), 1, "reply", Usage(3, tokens), "end_turn", "m")))
        fan.note = f"{i + 1} of 5"
        handler.handle_event(Event(PROGRESS, replace(fan)))
    clock[0] += 0.1
    handler.flush()
    row = latest_rows(view)["fan"]
    assert (row["status"], row["note"], row["tokens"]) == ("running", "2 of 5", 12)


def test_an_engine_progress_at_the_start_says_0_of_n(clock: list[float]) -> None:
    handler = WireHandler(interval=INTERVAL)
    fan = StepResult("fan", type="llm")
    _, view = start(handler, fan)
    fan.status = "running"
    handler.handle_event(Event(STEP_START, fan))
    clock[0] += 0.1
    fan.note = "0 of 40"  # the progress event the engine emits when a for_each starts
    handler.handle_event(Event(PROGRESS, replace(fan)))
    assert latest_rows(view)["fan"]["note"] == "0 of 40"


def parallel_run(handler: WireHandler, clock: list[float]) -> Wire:
    """p (parallel: c1, and c2 skipped by its when), then d."""
    p, c1, c2, d = (StepResult(i, type=t) for i, t in (("p", "parallel"), ("c1", "llm"), ("c2", "llm"),
                                                       ("d", "llm")))
    run, view = start(handler, p, c1, c2, d)
    for kind, step, status in ((STEP_START, p, "running"), (STEP_START, c1, "running"), (STEP_END, c2, "skipped"),
                               (STEP_END, c1, "ok"), (STEP_END, p, "ok"), (STEP_START, d, "running"),
                               (STEP_END, d, "ok")):
        clock[0] += 0.1
        step.status = status
        handler.handle_event(Event(kind, step))
    handler.handle_event(Event(RUN_END, run))
    return view


@pytest.mark.parametrize("parents", [None, {"c1": "p", "c2": "p"}], ids=["inferred", "given"])
def test_a_parallel_steps_children_are_rows_under_it(clock: list[float], parents: dict[str, str] | None) -> None:
    view = parallel_run(WireHandler(interval=INTERVAL, parents=parents), clock)
    assert {i: row.get("parent") for i, row in latest_rows(view).items()} == {"p": None, "c1": "p", "c2": "p",
                                                                              "d": None}


def test_children_are_found_in_a_real_run(capsys: Any) -> None:
    spec = ("steps:\n  - id: p\n    steps:\n      - {id: c1, prompt: one}\n      - {id: c2, prompt: two}\n"
            "  - {id: d, prompt: three}\n")
    pipeline_nb.run(spec, on_event=WireHandler())
    (view,) = Wire.made
    assert {i: r.get("parent") for i, r in latest_rows(view).items()} == {"p": None, "c1": "p", "c2": "p", "d": None}


def test_a_finished_row_names_its_time_as_the_result_does(capsys: Any) -> None:
    run = pipeline_nb.run("steps:\n  - {id: a, prompt: one, mock_delay: 0}\n", on_event=WireHandler())
    (view,) = Wire.made
    row = latest_rows(view)["a"]
    assert "elapsed" not in row and row["duration"] == round(run.steps["a"].duration, 2)  # one word for both


def test_the_view_shows_no_text_while_it_runs_or_once_retired(capsys: Any) -> None:
    view = live.LiveView(title="demo")
    data, _ = view._repr_mimebundle_()
    assert data["text/plain"] == "" and "application/vnd.jupyter.widget-view+json" in data
    assert live.RETIRED == {"text/plain": ""}
    view.close()


# -- through a real kernel --

def for_each_cell(items: int, stream: bool) -> str:
    return (f"%%pipeline\nsteps:\n  - id: fan\n    for_each: \"{{{{ range({items}) | list }}}}\"\n"
            f"    provider: mock\n    mock_delay: 0\n    stream: {'true' if stream else 'false'}\n"
            "    prompt: \"item {{ item }}\"\n")


def test_a_for_each_of_5000_items_in_a_kernel_sends_a_few_hundred_messages_at_most(tmp_path: Path) -> None:
    km = kernel_manager(tmp_path)
    km.start_kernel(cwd=str(tmp_path))
    kernel = Kernel(km)
    try:
        kernel.check("%load_ext pipeline_nb")
        counts = {}
        for stream in (True, False):
            messages = kernel.execute(for_each_cell(5000, stream), timeout=240)
            assert not [m for m in messages if m["msg_type"] == "error"]
            counts[stream] = len(messages)
            assert kernel.check("print(_pipeline.status, _pipeline.steps['fan'].note)").split() == ["ok", "5000",
                                                                                                    "items"]
        # was 5,025 streamed (a text message per item) and one rows sync per finished item
        assert counts[True] < 300 and counts[False] < 300, counts
    finally:
        kernel.client.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_front_end_is_sent_without_its_comments_and_still_whole() -> None:
    """The view's JS (its CSS inside) goes without comments or indentation; that is safe only
    while no template literal or string spans lines, and every statement line is kept. The
    stub that later views carry is compacted the same way."""
    from pipeline_nb.display._widget import CODE, STUB, VERSION, LiveView, compact

    here = Path(live.__file__).parent
    for name, sent in (("live.js", CODE), ("live_stub.js", STUB)):
        source = (here / name).read_text(encoding="utf-8")
        code = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("//")]
        assert all(line.count("`") % 2 == 0 for line in code), f"a template literal spans lines in {name}"
        header, body = sent.split("\n", 1)
        assert header.startswith(f'const VERSION="{VERSION}"') and body == compact(source)
        assert body.splitlines() == code
    js = (here / "live.js").read_text(encoding="utf-8")
    assert LiveView._esm == CODE and len(CODE.split("\n", 1)[1]) < 0.8 * len(js) and len(STUB) < 1500
    css = compact((here / "live.css").read_text(encoding="utf-8"))
    assert "/*" not in css and json.dumps(css) in CODE.split("\n", 1)[0]


# -- the message size follows the rate of the text --

def stream(handler: WireHandler, clock: list[float], deltas: int, every: float, word: str = "word ") -> list[float]:
    """One step streaming ``deltas`` words, one each ``every`` seconds; when each text message went."""
    step = StepResult("a", type="llm", status="running")
    run, view = start(handler, step)
    handler.handle_event(Event(STEP_START, step))
    for seq in range(1, deltas + 1):
        clock[0] += every
        handler.handle_event(Event(DELTA, Chunk("a", 1, seq, word)))
    step.status, step.text = "ok", word * deltas
    handler.handle_event(Event(STEP_END, step))
    handler.handle_event(Event(RUN_END, run))
    texts = [(at, m["content"]["text"]) for at, m in sent(view) if "text" in m.get("content", {})]
    assert "".join(text for _, entries in texts for _, text, *_ in entries) == word * deltas  # whole, once
    return [at for at, _ in texts]


def test_fast_text_goes_in_fewer_larger_messages_and_slow_text_stays_live(clock: list[float]) -> None:
    # 1 ms a delta of 5 characters, 5,000 characters a second (the traffic benchmark's pace): 20 s
    start_at = clock[0]
    fast = stream(WireHandler(), clock, 20_000, 0.001)
    assert fast[0] - start_at <= INTERVAL + 0.002  # the first text still goes at once (the row took the budget)
    assert len(fast) <= 20 / live.FAST_WAIT + 4, len(fast)  # was 100: one each 0.2 s
    Wire.made.clear()
    # 100 tokens a second (500 characters): as live as before, a message each 0.2 s
    slow = stream(WireHandler(), clock, 500, 0.01)
    gaps = [b - a for a, b in zip(slow, slow[1:])]
    assert max(gaps) <= 0.2 + 0.01 + 1e-9 and len(slow) >= 20, gaps
