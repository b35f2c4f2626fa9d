"""The live view: a row per step and the streamed text, updated from the main thread.

Everything the view learns during a run shares one budget: at most one message per
``interval``, carrying the text and thinking gathered since the last one (each byte
crosses the wire once), the citation marks that go after cited passages, the tool calls
that began, grew or returned (each at its place in the text), the panes to clear after a
retry, the parts (for_each items, ``ctx.invoke`` calls, nested steps) that finished, and
the rows if they changed (with their checks' running counts and a matrix step's comparison:
``_check_chips.py``). A fan-out of 100,000 items thus costs a message per ``interval``, not
one per item. When the run ends the final rows are synced as widget
state, then the widget is closed and its output emptied, so a saved notebook shows only
the final rendering displayed below it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from IPython.display import DisplayHandle, display

from .._check_results import CheckResult
from .._step_ids import owner_of
from .._render import citation_source
from .._results import PipelineRun, StepResult, ToolCall
from ..streaming._events import Chunk, CitationChunk, RateLimitInfo, Response, RetryInfo, ToolCallChunk
from ..streaming._handlers import StreamHandler
from ._check_chips import CheckChips
from ._pending import cut, marked, units
from ._tool_rows import ToolRows
from ._widget import RETIRED, LiveView

FAST_RATE = 2_000
"""Characters a second beyond which text flows faster than anyone reads (Claude streams
about 250 to 1,000): from there the view waits longer between messages, so they are fewer
and larger, up to ``FAST_WAIT`` at 1.5 times this rate."""
FAST_WAIT = 2.0
"""Seconds: the longest wait between messages while text flows fast."""
FAST_CHARS = 16_384
"""Characters: a message of fast text goes once it carries this many (its ~0.6 KB envelope is
then under 4% of it), whatever the wait."""


class WidgetHandler(StreamHandler):
    """Streams a run into a LiveView, at most one message per ``interval``.

    Every message costs about half a kilobyte of envelope whatever it carries, so text
    alone waits until ``min_chars`` are gathered, though never longer than ``max_wait``
    seconds after the last send (the kernel's own stdout batching is 0.2 s). When text
    flows faster than ``fast_rate`` characters a second (measured over the text waiting
    since the last send), both grow with the rate: the wait up to ``fast_wait`` (reached
    at 1.5 times ``fast_rate``), the size up to ``fast_chars``; slower text keeps the 0.2 s
    cadence. A step's first text, a row that changed and a retry go as soon as the budget
    allows, and the final state always goes at run end. ``parents`` maps a parallel step's
    children to it (``spec.all_steps()`` knows them), so their rows are shown under it; without it,
    a step that starts while a parallel step runs is taken as its child.
    ``view_class`` is the widget made for each run (a LiveView subclass may observe sends).
    """

    view_class: type[LiveView] = LiveView

    def __init__(self, interval: float = 0.05, *, min_chars: int = 1024, max_wait: float = 0.2,
                 fast_rate: float = FAST_RATE, fast_wait: float = FAST_WAIT, fast_chars: int = FAST_CHARS,
                 parents: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.interval = interval
        self.min_chars = min_chars
        self.max_wait = max(interval, max_wait)
        self.fast_rate = fast_rate
        self.fast_wait = max(self.max_wait, fast_wait)
        self.fast_chars = max(min_chars, fast_chars)
        self.parents = dict(parents or {})
        self.view: LiveView | None = None
        self.sends = 0
        """Messages sent in this run: pushes and the final rows."""
        self._handle: DisplayHandle | None = None

    def init(self, run: PipelineRun) -> None:
        self._run = run
        self._pending: dict[str, list[str]] = {}  # text not sent yet, by step (or part) id
        self._thinking: dict[str, list[str]] = {}  # thinking not sent yet, by step (or part) id
        self._pending_chars = 0  # of text and thinking
        self._counts: dict[str, int] = {}  # pieces (deltas, thinking, citations) of each step's current attempt
        self._pondering: set[str] = set()  # steps that have thought and not yet answered
        self._cited: dict[str, int] = {}  # citations numbered so far in each step's current attempt
        self._citing: dict[str, tuple[int, list[list[Any]]]] = {}  # step -> (text block, its [number, source])
        self._marks: dict[str, list[list[Any]]] = {}  # step -> [offset, number, source] in its pending text
        self._resets: list[str] = []
        # tool calls that began, grew or returned since the last send, and the rewinds (ToolRows holds
        # them all: past 30 attributes CPython's attribute lookups get slower, and on_delta makes many)
        self._calls = ToolRows()
        self._finished: list[str] = []
        self._rows_changed = False
        self._urgent = False  # an urgent update waits only for the budget
        self._last_send = -math.inf
        self._started: dict[str, float] = {}
        self._running: set[str] = set()
        self._item_totals: set[str] = set()  # for_each steps whose item count the rows show
        self._part_tokens: dict[str, int] = {}  # output tokens of a step's finished parts
        self._chips = CheckChips()  # check counts and matrix comparisons, shown in the rows
        self._parent_of = dict(self.parents)
        self._open_parallel: list[str] = []  # running parallel steps, latest last
        self.sends = 0
        self.view = self.view_class(title=run.name, rows=self._rows())
        self._handle = display(self.view, display_id=True)
        super().init(run)

    # -- rows --

    def _row(self, step: StepResult) -> dict[str, Any]:
        note = step.note
        if not note and step.status == "running" and step.items is not None:
            note = f"0 of {len(step.items)}"  # the items are known; none has finished yet
        tokens = step.usage.output_tokens or self._part_tokens.get(step.id) or self._counts.get(step.id, 0)
        usage = step.usage
        if usage.cache_write_tokens or usage.cache_read_tokens:  # what the prompt cache saved, at a glance
            cache = f"cache: {usage.cache_write_tokens} written, {usage.cache_read_tokens} read"
            note = f"{note} · {cache}" if note else cache
        row: dict[str, Any] = {"id": step.id, "status": step.status, "model": step.model or "",
                               "tokens": tokens, "note": note}
        if step.id in self._parent_of:
            row["parent"] = self._parent_of[step.id]
        if step.id in self._started:
            row["started"] = self._started[step.id]
        if step.duration is not None:
            row["duration"] = round(step.duration, 2)
        row.update(self._chips.fields(step.id))
        return row

    def _rows(self) -> list[dict[str, Any]]:
        return [self._row(s) for s in self._run.steps.values()]

    def _notice_items(self) -> None:
        """A running for_each step that has just learnt its item count: its row says ``0 of N``."""
        for step_id in self._running - self._item_totals:
            if self._run.steps[step_id].items is not None:
                self._item_totals.add(step_id)
                self._rows_changed = True

    def _adopt(self, step: StepResult) -> None:
        """Give ``step`` a parent: the map's, else the latest parallel step still running."""
        if step.id not in self._parent_of and not self.parents and self._open_parallel:
            self._parent_of[step.id] = self._open_parallel[-1]

    # -- the budget: one message per interval --

    def _tick(self, *, urgent: bool = False) -> None:
        """Send now if the budget allows and something is worth a message (an urgent one as soon
        as the budget allows: a step's first text must not wait for the fast text's patience)."""
        if urgent:
            self._urgent = True
        waited = time.monotonic() - self._last_send
        if waited < self.interval:
            return
        self._notice_items()
        calls = self._calls
        chars = self._pending_chars
        wait, size = self._patience(chars / waited) if chars else (self.max_wait, self.min_chars)
        if (self._urgent or self._rows_changed or self._resets or calls.rewinds or chars >= size
                or (waited >= wait and (self._pending or self._thinking or self._finished or calls.pending))):
            self.send()

    def _patience(self, rate: float) -> tuple[float, int]:
        """``(wait, size)`` for text arriving at ``rate`` characters a second: ``max_wait`` and
        ``min_chars`` up to ``fast_rate``; past it the wait grows linearly to ``fast_wait`` at
        1.5 times that rate, and the size to what that wait gathers, at most ``fast_chars``."""
        if rate <= self.fast_rate:
            return self.max_wait, self.min_chars
        ramp = min(1.0, 2.0 * (rate / self.fast_rate - 1.0))
        wait = self.max_wait + ramp * (self.fast_wait - self.max_wait)
        return wait, min(self.fast_chars, max(self.min_chars, int(rate * wait)))

    def flush(self) -> None:
        """The stream went quiet (the engine calls this every 50 ms of quiet): send what waits."""
        self._tick()

    def send(self, *, rows: bool = True) -> None:
        """Send everything gathered since the last send now, as one message (``rows=False``:
        all but the rows)."""
        if self.view is None:
            return
        changed = rows and self._rows_changed
        calls = self._calls
        streamed = (self._pending or self._thinking or self._resets or self._finished or calls.pending
                    or calls.rewinds)
        if not (changed or streamed):
            return
        messages = 0
        if changed:  # as state, not in a message: a view that renders after this send still gets it
            messages += self._sync_rows()
        if streamed:
            thinking = [(step_id, "".join(parts), self._counts.get(step_id, 0))
                        for step_id, parts in self._thinking.items()]
            text = [(step_id, "".join(parts), self._counts.get(step_id, 0)) + marked(self._marks.get(step_id))
                    for step_id, parts in self._pending.items()]
            tools, rewinds = calls.take()
            parts = {*self._pending, *self._thinking, *self._resets, *self._finished,
                     *(tool["step"] for tool in tools), *(part for part, _ in rewinds)}
            owners = {str(part): owner_of(part) for part in parts if owner_of(part) != part}
            self.view.push(resets=self._resets, thinking=thinking, text=text, finished=self._finished,
                           owners=owners, tools=tools, rewinds=rewinds)
            messages += 1
        self.sends += messages
        self._pending, self._thinking, self._marks, self._pending_chars = {}, {}, {}, 0
        self._resets, self._finished, self._urgent = [], [], False
        # two messages spend two intervals of the budget: the next send waits one more
        self._last_send = time.monotonic() + self.interval * (messages - 1)

    # -- events --

    def on_step_start(self, step: StepResult) -> None:
        self._started[step.id] = time.time() * 1000
        self._running.add(step.id)
        self._adopt(step)
        if step.type == "parallel":
            self._open_parallel.append(step.id)
        self._rows_changed = True
        self._tick()

    def on_thinking(self, chunk: Chunk) -> None:
        step_id, text, seq = chunk.step_id, chunk.content, chunk.seq
        self._thinking.setdefault(step_id, []).append(text)
        self._pending_chars += len(text)
        self._counts[step_id] = seq
        self._pondering.add(step_id)
        self._tick(urgent=seq == 1)  # a step's first thought: no waiting for min_chars

    def on_delta(self, chunk: Chunk) -> None:
        step_id, text, seq = chunk.step_id, chunk.content, chunk.seq
        urgent = seq == 1  # a step's first text: no waiting for min_chars
        if self._pondering and step_id in self._pondering:  # the answer begins: its thinking folds away now
            self._pondering.discard(step_id)
            urgent = True
        if self._citing and step_id in self._citing and self._citing[step_id][0] != chunk.block:
            self._place_marks(step_id)  # a new block: the cited one has ended
        pending = self._pending.get(step_id)
        if pending is None:
            pending = self._pending[step_id] = []
        pending.append(text)
        self._pending_chars += len(text)
        self._counts[step_id] = seq  # pieces of this attempt so far (StreamHandler drops repeats)
        self._tick(urgent=urgent)

    def on_citation(self, chunk: CitationChunk) -> None:
        """Number it; its mark goes after its text block, which streams next (the API sends a
        block's citations before its text), so the mark is placed when that block ends."""
        step_id = chunk.step_id
        waiting = self._citing.get(step_id)
        if waiting is not None and waiting[0] != chunk.block:
            self._place_marks(step_id)
            waiting = None
        if waiting is None:
            waiting = self._citing[step_id] = (chunk.block, [])
        number = self._cited[step_id] = self._cited.get(step_id, 0) + 1
        waiting[1].append([number, citation_source(chunk.citation)])
        self._counts[step_id] = chunk.seq

    def _place_marks(self, step_id: str) -> None:
        """The cited block of ``step_id`` has ended: its marks go at the end of the text so far."""
        _, marks = self._citing.pop(step_id)
        pending = self._pending.setdefault(step_id, [])  # the entry carries the marks, text or not
        offset = units(pending)
        self._marks.setdefault(step_id, []).extend([offset, *mark] for mark in marks)

    def _place_all_marks(self, step_id: str | None = None) -> None:
        """Marks still waiting for their block to end: it ended with the reply (all: the run)."""
        for waiting in [s for s in self._citing if step_id is None or s == step_id]:
            self._place_marks(waiting)

    # -- tool calls: a row each, where the step's text has got to --

    def on_tool_call(self, chunk: ToolCallChunk) -> None:
        """A new call's row goes at once; its input grows in the same budget as text."""
        part, call_id = chunk.step_id, chunk.id
        new = not self._calls.knows(call_id)
        if new:
            self._calls.begin(part, call_id, chunk.name, chunk.round, chunk.server, self._call_at(part, chunk.block))
        if chunk.partial_json:
            self._calls.grow(part, call_id, chunk.partial_json)
        elif chunk.input:  # a call that did not stream: its input, whole
            self._calls.set_input(part, call_id, chunk.input)
        self._counts[part] = chunk.seq
        self._tick(urgent=new)

    def on_tool_result(self, call: ToolCall) -> None:
        part = call.step_id
        if not self._calls.knows(call.id):  # no chunk came before it: the row begins now, whole
            self._calls.begin(part, call.id, call.name, call.round, call.server, self._call_at(part, None))
            self._calls.set_input(part, call.id, call.input)
        # a retry from here on (of the step's next call) keeps all that came before this result
        pending = (len(self._pending.get(part, ())), len(self._thinking.get(part, ())), len(self._marks.get(part, ())))
        self._calls.returned(call, pending, self._cited.get(part, 0))
        self._tick(urgent=True)

    def _call_at(self, part: str, block: int | None) -> int:
        """Where a new call's row goes: after its step's text so far (and the marks of a cited block that ended)."""
        if self._citing and part in self._citing and self._citing[part][0] != block:
            self._place_marks(part)
        return units(self._pending.get(part, ()))

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """A pause of every call (the API's rate limit): the view counts down to its end."""
        if self.view is not None:
            self.view.paused = ({"until": info.paused_until * 1000, "concurrency": info.concurrency}
                                if not info.waited else {})
            self.sends += 1

    def on_retry(self, info: RetryInfo) -> None:
        """The failed attempt's text, thinking, marks and calls go. In a tool loop the calls that
        returned ran and stay, with all that came before them: the pane rewinds to the last one."""
        step_id = info.step_id
        kept = self._calls.retry(step_id)  # None: no call of it returned, the pane is cleared
        pending, cited = kept if kept is not None else (None, 0)
        texts, thoughts, marks = pending or (0, 0, 0)  # pieces pending before the call (none once sent)
        self._pending_chars -= cut(self._pending, step_id, texts) + cut(self._thinking, step_id, thoughts)
        if marks:
            del self._marks[step_id][marks:]
        else:
            self._marks.pop(step_id, None)
        self._citing.pop(step_id, None)
        self._cited[step_id] = cited
        self._pondering.discard(step_id)
        self._counts[step_id] = 0
        if kept is None and step_id not in self._resets:
            self._resets.append(step_id)
        self._rows_changed = True
        self._tick()

    def on_done(self, response: Response) -> None:
        part = response.step_id
        self._pondering.discard(part)
        if self._citing:
            self._place_all_marks(part)
        if part in self._run.steps:
            return  # a step's own reply: its row changes at step_end
        whole = owner_of(part)
        if whole is not None:
            self._part_tokens[whole] = self._part_tokens.get(whole, 0) + response.usage.output_tokens
        if part in self._counts and response.stop_reason != "tool_use":  # it streamed, and its last reply ended
            self._finished.append(part)
        self._rows_changed = True
        self._tick()

    def on_check(self, check: CheckResult) -> None:
        """Counted on its step's chip; the rows carry it within the budget (not urgent)."""
        self._chips.count(check, self._run.steps)
        self._rows_changed = True
        self._tick()

    def on_progress(self, step: StepResult) -> None:
        self._chips.snapshot(step)  # a matrix step: its comparison, when the rows next go
        self._rows_changed = True
        self._tick()

    def on_step_end(self, step: StepResult) -> None:
        if self._citing:
            self._place_all_marks(step.id)
        self._pondering.discard(step.id)
        self._running.discard(step.id)
        if step.id in self._open_parallel:
            self._open_parallel.remove(step.id)
        self._adopt(step)  # a child skipped without starting
        self._chips.snapshot(step)
        self._rows_changed = True
        self._tick()

    def on_run_end(self, run: PipelineRun) -> None:
        """The final state, whatever the budget: the last text, then the rows as state."""
        if self.view is None:
            return
        self._place_all_marks()
        self.send(rows=False)
        self.sends += self._sync_rows()

    def _sync_rows(self) -> int:
        """Set the rows as state if they changed (an equal list sends nothing); 1 if a message went."""
        self._rows_changed = False
        rows = self._rows()
        budget = self._run.budget  # with max_cost: spent against the budget, in the title
        title = f"{self._run.name} · {budget.describe()}" if budget is not None else self.view.title
        if rows == self.view.rows and title == self.view.title:
            return 0
        with self.view.hold_sync():  # one message for both
            self.view.rows, self.view.title = rows, title
        return 1

    def close(self) -> None:
        """Retire the widget: its output is emptied, so only the final rendering is seen."""
        if self.view is None:
            return
        if self._handle is not None:
            self._handle.update(RETIRED, raw=True)
        self.view.close()
        self.view = None
