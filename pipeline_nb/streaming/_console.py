"""The terminal view: streamed text on stdout, notes on stderr, the run summary at the end.

Built for a terminal where stdout and stderr share one screen (the CLI, terminal
IPython), and for ``| tee`` of stdout, which gets each step's text and a newline: the
answers only. Claude's thinking is not the answer, so it goes to stderr, each line
prefixed ``┊`` (and dimmed on a terminal); the passages that back an answer are notes
on stderr once its text ends (``[a: cites "…" (Tides, p. 3)]``), and so is each tool call
once it returned (``[a: ⚙ search(query="tides") → 3 results · 0.12 s]``, a failed one marked ``✗``,
red on a terminal; not its input as it streams), and each failed check (``  ✗ a#2: contains "x": …``).

- One step has the front and streams live; steps running beside it (parallel
  children, for_each items) are held and written whole, in turn, as the front frees.
- A step's text is preceded by its header (``── fan[2] ──``) on stderr whenever
  something else was written since that step's last text.
- Notes (headers at a step's start, progress, retries, failures) start on a line of
  their own: while the live text's (or thinking's) line is open they wait for its next
  newline, or for the stream to go quiet, so no note lands inside a word.
- A step's thinking comes under its header, before its text; a held step's thinking is
  held with its text.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING

from ._events import Chunk, Event, RateLimitInfo, Response, RetryInfo
from .._render import tool_call_line
from .._step_ids import derives_from
from ._handlers import StreamHandler
from ._terminal_text import cites_note, is_terminal, run_summary, spoken_seconds

if TYPE_CHECKING:
    from .._check_results import CheckResult
    from .._results import PipelineRun, StepResult, ToolCall

THINKING_PREFIX = "┊ "
"""What starts each line of thinking, so it reads apart from the answer on a shared screen."""
DIM, UNDIM = "\x1b[2m", "\x1b[22m"
RED, UNRED = "\x1b[31m", "\x1b[39m"


class ConsoleHandler(StreamHandler):
    """Writes streamed text to stdout as it arrives (a step that did not stream: its text
    when done), each step's text ending in a newline; headers, notes and thinking go to
    stderr (``thinking=False`` leaves thinking out).

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
                 summary: bool = False, thinking: bool = True) -> None:
        super().__init__()
        self._out, self._err, self._headers, self._summary = out, err, headers, summary
        self._show_thinking = thinking
        self._run: PipelineRun | None = None
        self._reset()

    def _reset(self) -> None:
        self._live: str | None = None  # the step with the front: its text goes to stdout now
        self._claim: str | None = None  # the live step if it has written nothing yet (its items may take over)
        self._held: dict[str, list[str]] = {}  # other steps' text, in arrival order
        self._held_thoughts: dict[str, list[str]] = {}  # their thinking (its step is in _held, for the order)
        self._sources: dict[str, list[str]] = {}  # citation notes, written when the step's text ends
        self._finished: dict[str, bool] = {}  # held steps that ended -> whether their line gets a newline
        self._streamed: set[str] = set()  # steps that sent deltas (or thinking) in their current attempt
        self._written: set[str] = set()  # steps whose current attempt has text on screen
        self._models: dict[str, str | None] = {}
        self._shown: str | None = None  # the step whose header or text was written last
        self._out_open = False  # stdout's last text has no newline yet
        self._line_open = False  # the screen's line is open (stdout text or thinking with no newline after it)
        self._think_open = False  # ... and it is thinking's
        self._dim = False  # stderr is a terminal: thinking is dimmed, a failed tool call red
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
        self._dim = is_terminal(self.err)
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
        self._line_open = self._think_open = False

    def _write_thinking(self, text: str) -> None:
        """Thinking on stderr; waiting notes go in at its next newline, as with text."""
        head, newline, tail = text.rpartition("\n")
        if self._pending and newline:
            self._put_thinking(head + newline)
            self._write_notes()
            self._put_thinking(tail)
        else:
            self._put_thinking(text)

    def _put_thinking(self, text: str) -> None:
        """Every line of thinking starts with the prefix; the last may stay open."""
        pieces, line_open = [], self._think_open
        for n, line in enumerate(text.split("\n")):
            if n:
                pieces.append("\n")
                line_open = False
            if line:
                if not line_open:
                    pieces.append(THINKING_PREFIX)
                    line_open = True
                pieces.append(line)
        shown = "".join(pieces)
        if shown:
            self.err.write(f"{DIM}{shown}{UNDIM}" if self._dim else shown)
            self.err.flush()
            self._line_open = self._think_open = line_open

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
        elif self._think_open:  # its answer begins: the thinking's line ends (on stderr)
            self._break()
        self._claim = None
        self._written.add(step_id)
        self._write_out(text)

    def _thought(self, step_id: str, text: str) -> None:
        """Write thinking of the live step ``step_id``, under its header if something else came between."""
        if not text:
            return
        if self._shown != step_id:
            if self._out_open:
                self._write_out("\n")
            self._header(step_id)
        elif self._line_open and not self._think_open:  # it thinks again after some text
            self._break()
        self._claim = None
        self._written.add(step_id)
        self._write_thinking(text)

    def _close(self, step_id: str, newline: bool) -> None:
        """The text of ``step_id``, on screen, has ended: end its line, then its citation notes."""
        if newline and self._out_open:
            self._write_out("\n")
        if self._think_open:  # it thought and wrote no text: stderr's line ends whatever stdout keeps
            self._break()
        self._cite(step_id)

    def _cite(self, step_id: str) -> None:
        for line in self._sources.pop(step_id, ()):
            self._note(line)

    # -- the front: which step writes to stdout --

    def _takes_front(self, step_id: str) -> bool:
        """The front is free, or its owner has written nothing and ``step_id`` is its item or child."""
        return self._live is None or (self._claim is not None and derives_from(step_id, self._claim))

    def _end(self, step_id: str, *, newline: bool = True) -> None:
        """``step_id`` is done: end its line, then let the held steps through in turn."""
        if step_id != self._live:
            if step_id in self._held:
                self._finished[step_id] = newline
            else:  # nothing of it on screen or waiting: its notes need no text to follow
                self._cite(step_id)
            return
        self._close(step_id, newline)
        self._release()

    def _release(self) -> None:
        """Free the front: write the held steps, in order, until one is still running (it goes live)."""
        self._live = self._claim = None
        while self._held:
            step_id = next(iter(self._held))
            self._live = step_id
            self._thought(step_id, "".join(self._held_thoughts.pop(step_id, ())))
            self._text(step_id, "".join(self._held.pop(step_id)))
            if step_id not in self._finished:
                return
            self._close(step_id, self._finished.pop(step_id))
            self._live = None

    # -- events --

    def on_step_start(self, step: StepResult) -> None:
        self._models[step.id] = step.model
        if self._live is not None or self._held:
            return  # another step has the front: this one's header waits for its text
        self._header(step.id)
        if step.type == "llm":  # it streams (or its for_each items do): the front is its
            self._live = self._claim = step.id

    def on_thinking(self, chunk: Chunk) -> None:
        if not self._show_thinking:
            return
        step_id = chunk.step_id
        self._streamed.add(step_id)
        if self._takes_front(step_id):
            self._live = step_id
        if step_id == self._live:
            self._thought(step_id, chunk.content)
        else:
            self._held.setdefault(step_id, [])  # its place in the queue: thinking comes first
            self._held_thoughts.setdefault(step_id, []).append(chunk.content)

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
        self._held_thoughts.pop(step_id, None)
        discarded = "; the partial text above is discarded" if shown else ""
        line = (f"[{step_id}: retry {info.attempt}/{info.retries} after {info.reason} "
                f"in {spoken_seconds(info.delay)} s{discarded}]")
        if step_id != self._live:
            self._note(line)
            return
        if self._out_open:
            self._write_out("\n")
        if self._think_open:
            self._break()
        self._note(line)
        self._release()  # while it waits, the held steps go through

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """A pause of every call to the API: said as it starts, with its length and the concurrency."""
        if info.waited == 0:
            left = max(0.0, info.paused_until - time.time())
            self._note(f"[rate limited: waiting {spoken_seconds(left)} s (concurrency {info.concurrency})]")

    def on_done(self, response: Response) -> None:
        step_id = response.step_id
        thought = response.thinking if self._show_thinking and step_id not in self._streamed else ""
        if step_id not in self._streamed and (response.text or thought):
            if self._takes_front(step_id):
                self._live = step_id
            if step_id == self._live:
                self._thought(step_id, thought)
                self._text(step_id, response.text)
            else:  # a step with tools may have held text of its earlier rounds
                self._held.setdefault(step_id, []).append(response.text)
                if thought:
                    self._held_thoughts.setdefault(step_id, []).append(thought)
        if response.citations:
            notes = self._sources.setdefault(step_id, [])
            notes += [n for n in dict.fromkeys(cites_note(step_id, c) for c in response.citations) if n not in notes]
        if response.stop_reason != "tool_use":  # a reply that asks for tools is not the step's last
            self._end(step_id)

    def on_tool_result(self, call: ToolCall) -> None:
        """A line per call, as a note. The live step's text (or thinking) that asked for the tool
        has ended, so its line ends first, in stdout too: the next round's text starts a line of
        its own. Another step's call waits for the screen's next line."""
        line = f"[{call.step_id}: ⚙ {tool_call_line(call)}]"
        if call.is_error and self._dim:
            line = f"{RED}{line}{UNRED}"
        step_id = call.step_id
        if step_id == self._live:
            if self._out_open:
                self._write_out("\n")
            if self._think_open:
                self._break()
        elif self._held.get(step_id) and not self._held[step_id][-1].endswith("\n"):
            self._held[step_id].append("\n")  # held, its rounds' texts are apart as they would be live
        self._note(line)

    def on_check(self, check: CheckResult) -> None:
        if not check.passed:  # the passed ones are counted in the summary's verdict table
            self._note(f"{RED}  {check}{UNRED}" if self._dim else f"  {check}")

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
        for step_id in [s for s in (self._live, *self._held) if s is not None and derives_from(s, step.id)]:
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
