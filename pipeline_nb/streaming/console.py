"""The terminal view: streamed text on stdout, notes on stderr, the run summary at the end.

Built for a terminal where stdout and stderr share one screen (the CLI, terminal
IPython), and for ``| tee`` of stdout, which gets each step's text and a newline.

- One step has the front and streams live; steps running beside it (parallel
  children, for_each items) are held and written whole, in turn, as the front frees.
- A step's text is preceded by its header (``── fan[2] ──``) on stderr whenever
  something else was written since that step's last text.
- Notes (headers at a step's start, progress, retries, failures) start on a line of
  their own: while the live text's line is open they wait for its next newline, or
  for the stream to go quiet, so no note lands inside a word.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING

from ..render import ICONS, run_facts, step_facts
from .events import Chunk, Event, Response, RetryInfo
from .handlers import StreamHandler

if TYPE_CHECKING:
    from ..results import PipelineRun, StepResult

_DERIVED = ("[", ".", "/")
"""What follows a step id in the ids derived from it: ``fan[0]``, ``p.invoke1``, ``p/child``."""


def run_summary(run: PipelineRun) -> str:
    """The run's status, tokens and time, then one line per step (its error below it)."""
    lines = [f"{run.name}: {' · '.join(run_facts(run))}"]
    for step in run.steps.values():
        line = f"  {ICONS[step.status]} {step.id}: {' · '.join(step_facts(step))}"
        if step.error:
            line += f"\n      {step.error}"
        elif step.note and step.status != "ok":
            line += f"\n      {step.note}"
        lines.append(line)
    lines += [f"  handler error: {e}" for e in run.handler_errors]
    lines += [f"  warning: {w}" for w in run.warnings]
    return "\n".join(lines)


class ConsoleHandler(StreamHandler):
    """Writes streamed text to stdout as it arrives (a step that did not stream: its text
    when done), each step's text ending in a newline; headers and notes go to stderr.

    Steps that stream at the same time (for_each, parallel) never interleave: one step
    streams live, the others are held and written whole, each under its own header, as
    the live one ends. ``summary=True`` prints :func:`run_summary` to stderr at run end.

    >>> import pipeline_nb
    >>> # pipeline_nb.run(spec, on_event=ConsoleHandler(summary=True))
    """

    PROGRESS_EVERY = 1.0
    """Seconds between progress lines of one step."""
    QUIET_FLUSHES = 20
    """Quiet spells (``flush()`` calls with no event between, ~50 ms each) after which a
    waiting note breaks into an open line rather than wait for its newline."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None, *, headers: bool = True,
                 summary: bool = False) -> None:
        super().__init__()
        self._out, self._err, self._headers, self._summary = out, err, headers, summary
        self._run: PipelineRun | None = None
        self._reset()

    def _reset(self) -> None:
        self._live: str | None = None  # the step with the front: its text goes to stdout now
        self._claim: str | None = None  # the live step if it has written nothing yet (its items may take over)
        self._held: dict[str, list[str]] = {}  # other steps' text, in arrival order
        self._finished: dict[str, bool] = {}  # held steps that ended -> whether their line gets a newline
        self._streamed: set[str] = set()  # steps that sent deltas in their current attempt
        self._written: set[str] = set()  # steps whose current attempt has text on screen
        self._models: dict[str, str | None] = {}
        self._shown: str | None = None  # the step whose header or text was written last
        self._out_open = False  # stdout's last text has no newline yet
        self._line_open = False  # the screen's line is open (stdout text with no newline after it)
        self._pending: list[tuple[str | None, str]] = []  # notes waiting for the open line to end
        self._progress: dict[str, tuple[float, str]] = {}  # step id -> (when, note) last written
        self._quiet = 0
        self._summarised = False

    @property
    def out(self) -> IO[str]:
        return self._out or sys.stdout

    @property
    def err(self) -> IO[str]:
        return self._err or sys.stderr

    def init(self, run: PipelineRun) -> None:
        self._reset()
        self._run = run
        super().init(run)

    def handle_event(self, event: Event) -> None:
        self._quiet = 0
        super().handle_event(event)

    def flush(self) -> None:
        """The stream went quiet: after long enough, waiting notes stop waiting."""
        self._quiet += 1
        if self._pending and self._quiet >= self.QUIET_FLUSHES:
            self._break()

    def close(self) -> None:
        """A handler dropped mid-run never sees run_end: its summary is printed here instead."""
        if self._summary and not self._summarised and self._run is not None:
            self._print_summary(self._run)

    # -- writing: every byte goes through these, so the line state stays true --

    def _write_out(self, text: str) -> None:
        if not text:
            return
        head, newline, tail = text.rpartition("\n")
        if self._pending and newline:  # the open line ends here: the waiting notes go in between
            self._put_out(head + newline)
            self._write_notes()
            self._put_out(tail)
        else:
            self._put_out(text)

    def _put_out(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self._out_open = self._line_open = not text.endswith("\n")

    def _write_err(self, text: str) -> None:
        self.err.write(text)
        self.err.flush()
        self._line_open = False

    def _write_notes(self) -> None:
        notes, self._pending = self._pending, []
        if notes:
            self._write_err("".join(line + "\n" for _, line in notes))

    def _break(self) -> None:
        """Start a new screen line (on stderr: stdout keeps its text as received), then the waiting notes."""
        if self._line_open:
            self._write_err("\n")
        self._write_notes()

    def _note(self, line: str, key: str | None = None) -> None:
        """Write ``line`` on a line of its own, now or when the open line ends; a keyed note replaces its
        earlier waiting self (progress)."""
        if not self._line_open:
            self._write_err(line + "\n")
            return
        if key is not None:
            self._pending = [(k, old) for k, old in self._pending if k != key]
        self._pending.append((key, line))

    def _header(self, step_id: str) -> None:
        self._break()
        if self._headers:
            model = self._models.get(step_id)
            self._write_err(f"── {step_id}{f' ({model})' if model else ''} ──\n")
        self._shown = step_id

    def _text(self, step_id: str, text: str) -> None:
        """Write text of the live step ``step_id``, under its header if something else came between."""
        if not text:
            return
        if self._shown != step_id:
            if self._out_open:  # after an interrupted step's text: keep the texts apart in stdout
                self._write_out("\n")
            self._header(step_id)
        self._claim = None
        self._written.add(step_id)
        self._write_out(text)

    # -- the front: which step writes to stdout --

    def _takes_front(self, step_id: str) -> bool:
        """The front is free, or its owner has written nothing and ``step_id`` is its item or child."""
        return self._live is None or (self._claim is not None and _derived(step_id, self._claim))

    def _end(self, step_id: str, *, newline: bool = True) -> None:
        """``step_id`` is done: end its line, then let the held steps through in turn."""
        if step_id != self._live:
            if step_id in self._held:
                self._finished[step_id] = newline
            return
        if newline and self._out_open:
            self._write_out("\n")
        self._release()

    def _release(self) -> None:
        """Free the front: write the held steps, in order, until one is still running (it goes live)."""
        self._live = self._claim = None
        while self._held:
            step_id = next(iter(self._held))
            self._live = step_id
            self._text(step_id, "".join(self._held.pop(step_id)))
            if step_id not in self._finished:
                return
            if self._finished.pop(step_id) and self._out_open:
                self._write_out("\n")
            self._live = None

    # -- events --

    def on_step_start(self, step: StepResult) -> None:
        self._models[step.id] = step.model
        if self._live is not None or self._held:
            return  # another step has the front: this one's header waits for its text
        self._header(step.id)
        if step.type == "llm":  # it streams (or its for_each items do): the front is its
            self._live = self._claim = step.id

    def on_delta(self, chunk: Chunk) -> None:
        step_id = chunk.step_id
        self._streamed.add(step_id)
        if self._takes_front(step_id):
            self._live = step_id
        if step_id == self._live:
            self._text(step_id, chunk.content)
        else:
            self._held.setdefault(step_id, []).append(chunk.content)

    def on_retry(self, info: RetryInfo) -> None:
        step_id = info.step_id
        shown = step_id in self._written
        self._streamed.discard(step_id)
        self._written.discard(step_id)
        self._held.pop(step_id, None)  # its next attempt queues up afresh
        discarded = "; the partial text above is discarded" if shown else ""
        line = (f"[{step_id}: retry {info.attempt}/{info.retries} after {info.reason} "
                f"in {_seconds(info.delay)} s{discarded}]")
        if step_id != self._live:
            self._note(line)
            return
        if self._out_open:
            self._write_out("\n")
        self._note(line)
        self._release()  # while it waits, the held steps go through

    def on_done(self, response: Response) -> None:
        step_id = response.step_id
        if step_id not in self._streamed and response.text:
            if self._takes_front(step_id):
                self._live = step_id
            if step_id == self._live:
                self._text(step_id, response.text)
            else:
                self._held[step_id] = [response.text]
        self._end(step_id)

    def on_progress(self, step: StepResult) -> None:
        now = time.monotonic()
        last_time, last_note = self._progress.get(step.id, (float("-inf"), ""))
        if self._headers and step.note != last_note and now - last_time >= self.PROGRESS_EVERY:
            self._progress[step.id] = (now, step.note)
            self._note(f"[{step.id}: {step.note}]", key=step.id)

    def on_step_end(self, step: StepResult) -> None:
        # interrupted: stdout keeps exactly the text received; failed mid-stream: end the line
        newline = step.status != "interrupted"
        # its items, children and ctx.invoke calls that sent no done (failed mid-stream) end with it
        for step_id in [s for s in (self._live, *self._held) if s is not None and _derived(s, step.id)]:
            self._end(step_id, newline=newline)
        self._end(step.id, newline=newline)
        if step.status == "error" and step.error is not None:
            self._note(f"[{step.id} failed: {step.error}]")

    def on_run_end(self, run: PipelineRun) -> None:
        # after Ctrl-C some steps get no step_end: show what they received, and what waits behind them
        for step_id in self._held:
            self._finished.setdefault(step_id, False)
        if self._live is not None:
            self._end(self._live, newline=False)
        elif self._held:
            self._release()
        self._break()
        if self._summary:
            self._print_summary(run)

    def _print_summary(self, run: PipelineRun) -> None:
        self._summarised = True
        self._write_err(run_summary(run) + "\n")


def _derived(step_id: str, parent: str) -> bool:
    """``step_id`` is an item, child or call of step ``parent`` (``fan[0]``, ``p/a``, ``p.invoke1``)."""
    return step_id.startswith(parent) and step_id[len(parent):len(parent) + 1] in _DERIVED


def _seconds(delay: float) -> str:
    """``30``, ``0.5``: a wait as a reader says it."""
    return f"{delay:.1f}".rstrip("0").rstrip(".")
