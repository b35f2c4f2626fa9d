"""What the reader sees of a rate-limit pause: the live view counts down to its end (and clears
it), and the run's summary says how long it waited."""

from __future__ import annotations

from typing import Any

import pipeline_nb
from pipeline_nb._render import run_text
from pipeline_nb.display import LiveView, WidgetHandler
from pipeline_nb.streaming import Event


class Pauses(LiveView):
    seen: list[dict[str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observe(lambda change: Pauses.seen.append(dict(change["new"])), names="paused")


class PauseHandler(WidgetHandler):
    view_class = Pauses


def test_a_pause_is_counted_down_in_the_view_and_cleared_when_it_ends(capsys) -> None:
    from pipeline_nb.streaming._events import RATE_LIMIT, RateLimitInfo

    Pauses.seen.clear()
    handler = PauseHandler()
    run = pipeline_nb.run("steps:\n  - {id: a, prompt: hi, mock_delay: 0}\n", on_event=handler)
    handler.init(run)
    handler.handle_event(Event(RATE_LIMIT, RateLimitInfo("a", 1_900_000_000.0, 8, 0.0)))
    handler.handle_event(Event(RATE_LIMIT, RateLimitInfo("a", 1_900_000_000.0, 8, 12.0)))
    assert Pauses.seen[-2:] == [{"until": 1_900_000_000_000.0, "concurrency": 8}, {}]


def test_the_summary_says_how_long_the_run_waited_for_the_rate_limit() -> None:
    run = pipeline_nb.run("steps:\n  - {id: a, prompt: hi, mock_delay: 0}\n")
    run.rate_limit_wait = 12.4
    assert "rate-limited 12s" in run_text(run).splitlines()[0]
