"""The live view: a row per step and the streamed text, updated from the main thread.

Text crosses the wire once: coalesced appends (at most ``1/interval`` a second) go
as custom messages, and only the rows (a few hundred bytes) are synced as state.
When the run ends, the widget is closed and its output becomes one plain line, so a
saved notebook shows the final rendering below it instead of a dead widget.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets
from IPython.display import DisplayHandle, display

from ..results import PipelineRun, StepResult
from ..streaming.events import Chunk, RetryInfo
from ..streaming.handlers import StreamHandler

_HERE = Path(__file__).parent


class LiveView(anywidget.AnyWidget):
    """The widget itself: ``rows`` is state; text arrives by ``append``/``reset``.

    >>> view = LiveView(title="demo", rows=[{"id": "a", "status": "running"}])
    >>> view.append("a", "Hello", 1)
    """

    _esm = _HERE / "live.js"
    _css = _HERE / "live.css"
    title = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)

    def append(self, step_id: str, text: str, count: int) -> None:
        self.send({"a": step_id, "t": text, "n": count})

    def reset(self, step_id: str) -> None:
        self.send({"r": step_id})

    def __repr__(self) -> str:
        return placeholder(self.title)


def placeholder(title: str) -> str:
    """The text/plain of the live view, before and after the run (what nbval compares)."""
    return f"[{title}: live view]"


class WidgetHandler(StreamHandler):
    """Streams a run into a LiveView, coalescing deltas to at most one send per ``interval``.

    Every message costs about half a kilobyte of envelope whatever it carries, so a send
    also waits until ``min_chars`` of text are gathered, though never longer than
    ``max_wait`` seconds after the last one (the kernel's own stdout batching is 0.2 s),
    and a step's first text goes at once. Fast streams thus send at most ``1/interval``
    messages a second, each carrying more than its envelope; slow ones ``1/max_wait``.
    ``view_class`` is the widget made for each run (a LiveView subclass may observe sends).
    """

    view_class: type[LiveView] = LiveView

    def __init__(self, interval: float = 0.05, *, min_chars: int = 1024, max_wait: float = 0.2) -> None:
        super().__init__()
        self.interval = interval
        self.min_chars = min_chars
        self.max_wait = max(interval, max_wait)
        self.view: LiveView | None = None
        self.sends = 0
        self._handle: DisplayHandle | None = None

    def init(self, run: PipelineRun) -> None:
        self._pending: dict[str, list[str]] = {}
        self._pending_chars = 0
        self._counts: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last_send = 0.0
        self._run = run
        self.sends = 0
        self.view = self.view_class(title=run.name, rows=[self._row(s) for s in run.steps.values()])
        self._handle = display(self.view, display_id=True)
        super().init(run)

    def _row(self, step: StepResult) -> dict[str, Any]:
        row: dict[str, Any] = {"id": step.id, "status": step.status, "model": step.model or "",
                               "tokens": step.usage.output_tokens or self._counts.get(step.id, 0),
                               "note": step.note}
        if step.id in self._started:
            row["started"] = self._started[step.id]
        if step.duration is not None:
            row["elapsed"] = round(step.duration, 2)
        return row

    def _sync_rows(self) -> None:
        assert self.view is not None
        self.view.rows = [self._row(s) for s in self._run.steps.values()]
        self.sends += 1

    def on_step_start(self, step: StepResult) -> None:
        self._started[step.id] = time.time() * 1000
        self._sync_rows()

    def on_delta(self, chunk: Chunk) -> None:
        step_id, text, seq = chunk.step_id, chunk.content, chunk.seq
        pending = self._pending.get(step_id)
        if pending is None:
            pending = self._pending[step_id] = []
        pending.append(text)
        self._pending_chars += len(text)
        self._counts[step_id] = seq  # deltas of this attempt so far (StreamHandler drops repeats)
        waited = time.monotonic() - self._last_send
        if waited >= self.interval and (self._pending_chars >= self.min_chars or waited >= self.max_wait
                                        or seq == 1):
            self.send()

    def flush(self) -> None:
        """The stream went quiet: send what is gathered, once ``max_wait`` has passed or
        ``min_chars`` are waiting (the engine calls this every 50 ms of quiet)."""
        if self._pending_chars >= self.min_chars or time.monotonic() - self._last_send >= self.max_wait:
            self.send()

    def send(self) -> None:
        """Send the text gathered since the last send now, one message per step."""
        if not self._pending or self.view is None:
            return
        for step_id, parts in self._pending.items():
            self.view.append(step_id, "".join(parts), self._counts[step_id])
            self.sends += 1
        self._pending = {}
        self._pending_chars = 0
        self._last_send = time.monotonic()

    def on_retry(self, info: RetryInfo) -> None:
        assert self.view is not None
        dropped = self._pending.pop(info.step_id, None)
        if dropped:
            self._pending_chars -= sum(map(len, dropped))
        self._counts[info.step_id] = 0
        self.view.reset(info.step_id)
        self.sends += 1
        self._sync_rows()

    def on_progress(self, step: StepResult) -> None:
        self._sync_rows()

    def on_step_end(self, step: StepResult) -> None:
        self.send()
        self._sync_rows()

    def on_run_end(self, run: PipelineRun) -> None:
        self.send()
        self._sync_rows()

    def close(self) -> None:
        """Retire the widget: its output becomes the same plain line it showed as text/plain."""
        if self.view is None:
            return
        if self._handle is not None:
            self._handle.update({"text/plain": placeholder(self.view.title)}, raw=True)
        self.view.layout.close()  # its Layout is a widget (and a kernel comm) of its own
        self.view.close()
        self.view = None
