"""The live view marks each check as it resolves: a step's row carries its checks' running
counts (a chip each in live.js), in the same budget as everything else: a burst of checks is one
rows message per interval, not one per check (a fake clock, so nothing is timed). A matrix step's
row carries its comparison, filled in from its progress snapshots as combinations end."""

from __future__ import annotations

from typing import Any

import pytest

import pipeline_nb
from pipeline_nb._check_results import CheckResult
from pipeline_nb._results import PipelineRun, StepResult
from pipeline_nb._step_ids import sample_id
from pipeline_nb.streaming._events import CHECK, STEP_START, Event

pytest.importorskip("anywidget")

from pipeline_nb.display import _live as live  # noqa: E402


class Wire(live.LiveView):
    """Records every comm message it would send, and sends none."""

    made: list[Wire] = []

    def __init__(self, **kwargs: Any) -> None:
        self.wire: list[dict[str, Any]] = []
        super().__init__(**kwargs)
        Wire.made.append(self)

    def _send(self, msg: dict[str, Any], buffers: Any = None) -> None:
        self.wire.append(msg)


class WireHandler(live.WidgetHandler):
    view_class = Wire


@pytest.fixture(autouse=True)
def _quiet(capsys: Any) -> None:
    """Outside a kernel, display() prints the view's repr."""
    Wire.made.clear()


def rows_sent(view: Wire) -> list[list[dict[str, Any]]]:
    return [m["state"]["rows"] for m in view.wire if "rows" in m.get("state", {})]


def test_a_burst_of_checks_is_one_rows_message_per_interval_with_running_counts(clock: list[float]) -> None:
    handler = WireHandler(interval=0.05)
    step = StepResult("answer", status="running")
    handler.init(PipelineRun("r", {"answer": step}))
    handler.handle_event(Event(STEP_START, step))
    view = handler.view
    assert isinstance(view, Wire)
    before = len(rows_sent(view))
    for n in range(1, 101):  # 100 samples' checks in one instant: the budget allows no message
        passed = n % 10 != 0
        handler.handle_event(Event(CHECK, CheckResult(sample_id("answer", n), 'contains "Paris"', "contains",
                                                      passed, "" if passed else "no Paris", "answer")))
    assert len(rows_sent(view)) == before
    clock[0] += 0.06
    handler.flush()
    assert len(rows_sent(view)) == before + 1
    assert rows_sent(view)[-1][0]["checks"] == [['contains "Paris"', 90, 100]]


MATRIX = """name: models
defaults: {provider: mock, mock_delay: 0}
steps:
  - id: answer
    prompt: What is the capital of France?
    repeat: 2
    matrix:
      model: [claude-haiku-5-5, claude-sonnet-5-5]
    expect:
      - name: says haiku
        contains: haiku
"""


def test_a_matrix_steps_row_counts_its_checks_and_fills_its_comparison_as_combinations_end() -> None:
    snapshots: list[StepResult] = []

    class Seen(WireHandler):
        def on_progress(self, step: StepResult) -> None:
            snapshots.append(step)
            super().on_progress(step)

    run = pipeline_nb.run(MATRIX, on_event=Seen(interval=0.0, max_wait=0.0))  # every change goes
    assert len(snapshots) >= 2, "the matrix step sent progress as its combinations ended"
    sent = [rows[0] for rows in rows_sent(Wire.made[-1])]
    final = sent[-1]
    assert final["checks"] == [["says haiku", 2, 4]]
    heads, rows = final["combos"]["heads"], final["combos"]["rows"]
    assert heads[:3] == ["model", "status", "checks"]
    assert [row[:4] for row in rows] == [["claude-haiku-5-5", "ok", "2/2", "2/2"],
                                         ["claude-sonnet-5-5", "ok", "0/2", "0/2"]]
    assert all(row[-1].startswith("in ") for row in rows)  # latency, as nbval masks it
    filling = [[row[1] for row in r["combos"]["rows"]] for r in sent if "combos" in r]
    assert filling[0] != ["ok", "ok"] and filling[-1] == ["ok", "ok"]  # filled in as the combinations ended
    assert run.steps["answer"].checks.summary() == "checks: 2 of 4 passed"
