"""The handler protocol and the built-in handlers.

A handler has ``init(run)`` (called at run start: reset state here), ``handle_event(event)``
and ``close()``; ``flush()`` is optional and is called when the stream goes quiet.
Events arrive in order on one thread. Subclasses of :class:`StreamHandler` are
idempotent: a delta, thinking, citation, tool_call or done event seen before (same step,
round, attempt, seq) is ignored, as is a second tool_result for one call, and a ``retry`` drops
the step's partial text and thinking so only the final attempt's remain (in a tool loop:
what came after the step's last tool result, since the calls before it ran and stay).
The terminal view, :class:`ConsoleHandler`, lives in ``console.py`` and is re-exported here.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from ..content import Citation
from .._render import citation_source, tool_call_line
from ._events import (CHECK, CITATION, DELTA, DONE, PROGRESS, RETRY, RUN_END, RUN_START, STEP_END, STEP_START,
                      THINKING, TOOL_CALL, TOOL_RESULT, Chunk, CitationChunk, Event, Response, RetryInfo,
                      ToolCallChunk)

if TYPE_CHECKING:
    from .._check_results import CheckResult
    from .._results import PipelineRun, StepResult, ToolCall


_ON = {kind: f"on_{kind}" for kind in (RUN_START, STEP_START, THINKING, DELTA, CITATION, TOOL_CALL, TOOL_RESULT,
                                       RETRY, DONE, CHECK, PROGRESS, STEP_END, RUN_END)}
"""Method names by event kind, so a dispatch formats no string."""


@runtime_checkable
class Handler(Protocol):
    """What the engine calls. Any object with these methods is a handler."""

    def init(self, run: PipelineRun) -> None: ...

    def handle_event(self, event: Event) -> None: ...

    def close(self) -> None: ...


class StreamHandler:
    """Base class: deduplicates events and dispatches them to ``on_<kind>`` methods."""

    def __init__(self) -> None:
        self._positions: dict[str, tuple[int, int, int]] = {}
        self._done: set[tuple[Any, ...]] = set()  # (step, round, attempt) of replies, (step, call id) of tool results

    def init(self, run: PipelineRun) -> None:
        self._positions = {}
        self._done = set()
        self.on_run_start(run)

    def handle_event(self, event: Event) -> None:
        if self.accept(event):
            self.dispatch(event)

    def accept(self, event: Event) -> bool:
        """False for an event already seen (same step, attempt and seq) or a stale attempt's."""
        kind, data = event
        if kind == DELTA or kind == THINKING or kind == CITATION or kind == TOOL_CALL:  # one seq counts all four
            position = (data.round, data.attempt, data.seq)
        elif kind == RETRY:
            position = (data.round, data.attempt + 1, -1)
        elif kind == DONE:
            key = (data.step_id, data.round, data.attempt)
            if key in self._done:
                return False
            self._done.add(key)
            return True
        elif kind == TOOL_RESULT:
            call = (data.step_id, data.id)
            if call in self._done:
                return False
            self._done.add(call)
            return True
        else:
            return True
        if position <= self._positions.get(data.step_id, (0, 0, -1)):
            return False
        self._positions[data.step_id] = position
        return True

    def dispatch(self, event: Event) -> None:
        """Call the ``on_<kind>`` method for an accepted event."""
        kind = event.kind
        method = getattr(self, _ON.get(kind) or f"on_{kind}", None)
        if method is not None:
            method(event.data)

    def close(self) -> None:
        """Release resources. Called once per run, after ``run_end``."""

    def on_run_start(self, run: PipelineRun) -> None: ...
    def on_step_start(self, step: StepResult) -> None: ...
    def on_thinking(self, chunk: Chunk) -> None: ...
    def on_delta(self, chunk: Chunk) -> None: ...
    def on_citation(self, chunk: CitationChunk) -> None: ...
    def on_tool_call(self, chunk: ToolCallChunk) -> None: ...
    def on_tool_result(self, call: ToolCall) -> None: ...
    def on_retry(self, info: RetryInfo) -> None: ...
    def on_done(self, response: Response) -> None: ...
    def on_check(self, check: CheckResult) -> None: ...
    def on_progress(self, step: StepResult) -> None: ...
    def on_step_end(self, step: StepResult) -> None: ...
    def on_run_end(self, run: PipelineRun) -> None: ...


class BufferHandler(StreamHandler):
    """Keeps each step's streamed text, thinking, citations, tool calls, final response and checks in memory.

    >>> buf = BufferHandler()
    >>> # pipeline_nb.run(spec, on_event=buf); buf.texts["a"], buf.thinking["a"], buf.tool_calls["a"]
    """

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[str, list[str]] = {}
        self.thinking_parts: dict[str, list[str]] = {}
        self.citations: dict[str, list[Citation]] = {}
        """The citations streamed for each step's current attempt, in order."""
        self.tool_inputs: dict[str, dict[str, Mapping[str, Any]]] = {}
        """Each step's tool calls by id, each with its input as parsed so far (in the order they began)."""
        self.tool_calls: dict[str, list[ToolCall]] = {}
        """Each step's tool calls that returned, in the order they returned."""
        self.responses: dict[str, Response] = {}
        self.checks: list[CheckResult] = []
        """Every check, in the order they resolved."""
        self.events: list[Event] = []
        # step -> its parts, thoughts and citations before its last tool result (a retry keeps those)
        self._kept: dict[str, tuple[int, int, int]] = {}

    def init(self, run: PipelineRun) -> None:
        self.parts, self.thinking_parts, self.citations, self.responses, self.events = {}, {}, {}, {}, []
        self.tool_inputs, self.tool_calls, self._kept, self.checks = {}, {}, {}, []
        super().init(run)

    def handle_event(self, event: Event) -> None:
        if self.accept(event):
            self.events.append(event)
            self.dispatch(event)

    @property
    def texts(self) -> dict[str, str]:
        return {step_id: "".join(parts) for step_id, parts in self.parts.items()}

    @property
    def thinking(self) -> dict[str, str]:
        """Each step's streamed thinking (of its current attempt)."""
        return {step_id: "".join(parts) for step_id, parts in self.thinking_parts.items()}

    def on_thinking(self, chunk: Chunk) -> None:
        self.thinking_parts.setdefault(chunk.step_id, []).append(chunk.content)

    def on_delta(self, chunk: Chunk) -> None:
        self.parts.setdefault(chunk.step_id, []).append(chunk.content)

    def on_citation(self, chunk: CitationChunk) -> None:
        self.citations.setdefault(chunk.step_id, []).append(chunk.citation)

    def on_tool_call(self, chunk: ToolCallChunk) -> None:
        self.tool_inputs.setdefault(chunk.step_id, {})[chunk.id] = chunk.input

    def on_tool_result(self, call: ToolCall) -> None:
        step_id = call.step_id
        self.tool_inputs.setdefault(step_id, {})[call.id] = call.input
        self.tool_calls.setdefault(step_id, []).append(call)
        self._kept[step_id] = (len(self.parts.get(step_id, ())), len(self.thinking_parts.get(step_id, ())),
                               len(self.citations.get(step_id, ())))

    def on_retry(self, info: RetryInfo) -> None:
        step_id = info.step_id
        # the failed attempt's pieces go; in a tool loop, what came before the last tool result stays
        parts, thoughts, cited = self._kept.get(step_id, (0, 0, 0))
        self.parts[step_id] = self.parts.get(step_id, [])[:parts]
        for kept, store in ((thoughts, self.thinking_parts), (cited, self.citations)):
            if kept:
                del store[step_id][kept:]
            else:  # the next attempt thinks (and cites) afresh
                store.pop(step_id, None)
        if step_id in self.tool_inputs:  # calls the failed attempt began never ran
            ran = {call.id for call in self.tool_calls.get(step_id, ())}
            self.tool_inputs[step_id] = {call_id: input for call_id, input in self.tool_inputs[step_id].items()
                                        if call_id in ran}

    def on_done(self, response: Response) -> None:
        self.responses[response.step_id] = response

    def on_check(self, check: CheckResult) -> None:
        self.checks.append(check)


class CallbackHandler(StreamHandler):
    """Calls ``fn(event)`` for every event, once (duplicates are filtered)."""

    def __init__(self, fn: Callable[[Event], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.name = getattr(fn, "__qualname__", None) or repr(fn)

    def handle_event(self, event: Event) -> None:
        if self.accept(event):
            self.fn(event)

    def on_run_start(self, run: PipelineRun) -> None:
        self.fn(Event(RUN_START, run))


class FileHandler(StreamHandler):
    """Appends the stream to a file from a writer thread, so disk never stalls the stream.

    ``format="text"`` writes the text with a header per step, a step's thinking under a
    ``[thinking]`` line before its ``[answer]``, a ``[tool]`` line per tool call once it
    returned, its cited passages under ``[sources]`` once it is done, and a ``[check]`` line
    per expectation checked (``[check] ✗ a#2: no apology: ...``); ``format="jsonl"``
    writes one JSON object per event (a citation as the API's dict; a tool_call's new piece
    of input JSON, or its input when it has no piece; a tool_result's whole call, with what
    JSON cannot hold as its ``str``). The default path is ``<run name>.stream.txt``. The file is opened and
    written on the writer thread, flushed whenever the writer catches up, and closed by
    ``close()``, which raises the writer's error if it had one.
    """

    def __init__(self, path: str | Path | None = None, *, format: str = "text") -> None:
        super().__init__()
        if format not in ("text", "jsonl"):
            raise ValueError(f"FileHandler format must be 'text' or 'jsonl', not {format!r}")
        self.path = Path(path) if path else None
        self.format = format
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._error: OSError | None = None
        self._streamed: set[str] = set()
        self._thinking: set[str] = set()  # steps whose thinking is written and whose answer has not begun
        self._line_open = False  # the text format's last piece of text or thinking ended mid-line

    def init(self, run: PipelineRun) -> None:
        self.close()  # a run that ended without close(): finish its file first
        path = self.path or Path(f"{run.name}.stream.{'txt' if self.format == 'text' else 'jsonl'}")
        self._queue, self._error, self._streamed, self._thinking = queue.SimpleQueue(), None, set(), set()
        self._line_open = False
        self._writer = threading.Thread(target=self._write_loop, args=(path, self._queue),
                                        name="pipeline_nb-file", daemon=True)
        self._writer.start()
        super().init(run)

    def _write_loop(self, path: Path, items: queue.SimpleQueue[str | None]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with io.open(path, "a", encoding="utf-8") as file:
                while (text := items.get()) is not None:
                    file.write(text)
                    if items.empty():
                        file.flush()
        except OSError as exc:
            self._error = exc
            while items.get() is not None:  # drain, so close() still returns
                pass

    def _emit(self, kind: str, line: str, **fields: Any) -> None:
        if self.format == "text":
            self._queue.put(line)
        else:
            try:
                record = json.dumps({"event": kind, **fields}, ensure_ascii=False, default=str)
            except (TypeError, ValueError):  # a tool's output JSON cannot hold (circular, odd keys): its str
                record = json.dumps({"event": kind, **fields, "output": str(fields.get("output"))},
                                    ensure_ascii=False, default=str)
            self._queue.put(record + "\n")

    def on_step_start(self, step: StepResult) -> None:
        self._emit(STEP_START, f"## {step.id}\n", step=step.id, model=step.model)

    def on_thinking(self, chunk: Chunk) -> None:
        step_id = chunk.step_id
        self._streamed.add(step_id)
        if step_id not in self._thinking:
            self._thinking.add(step_id)
            self._emit_text("[thinking]\n")
        self._line_open = not chunk.content.endswith("\n")
        self._emit(THINKING, chunk.content, step=step_id, attempt=chunk.attempt, seq=chunk.seq, block=chunk.block,
                   content=chunk.content)

    def on_delta(self, chunk: Chunk) -> None:
        self._streamed.add(chunk.step_id)
        if self._thinking and chunk.step_id in self._thinking:
            self._end_thinking(chunk.step_id)
        self._line_open = not chunk.content.endswith("\n")
        self._emit(DELTA, chunk.content, step=chunk.step_id, attempt=chunk.attempt, seq=chunk.seq,
                   content=chunk.content)

    def on_citation(self, chunk: CitationChunk) -> None:
        if self.format == "jsonl":  # the text format lists the sources once the step is done
            self._emit(CITATION, "", step=chunk.step_id, attempt=chunk.attempt, seq=chunk.seq, block=chunk.block,
                       citation=chunk.citation.to_api())

    def on_tool_call(self, chunk: ToolCallChunk) -> None:
        if self.format == "jsonl":  # the text format has a line per call once it returned
            # the new piece only (each byte once); a chunk with no piece carries the input whole
            piece = {"partial_json": chunk.partial_json} if chunk.partial_json else {"input": chunk.input}
            self._emit(TOOL_CALL, "", step=chunk.step_id, attempt=chunk.attempt, seq=chunk.seq, round=chunk.round,
                       id=chunk.id, name=chunk.name, block=chunk.block, server=chunk.server, **piece)

    def on_tool_result(self, call: ToolCall) -> None:
        step_id = call.step_id
        if self._thinking and step_id in self._thinking:  # it thought, then called: no answer yet
            self._thinking.discard(step_id)
        line = f"{chr(10) if self._line_open else ''}[tool] {tool_call_line(call)}\n"
        self._line_open = False
        self._emit(TOOL_RESULT, line, step=step_id, round=call.round, id=call.id, name=call.name, input=call.input,
                   output=call.output, is_error=call.is_error, error=call.error, duration=call.duration,
                   server=call.server, note=call.note)

    def _emit_text(self, line: str) -> None:
        """A line of the text format only (jsonl has the event's own record)."""
        if self.format == "text":
            self._queue.put(line)

    def _end_thinking(self, step_id: str) -> None:
        self._thinking.discard(step_id)
        self._emit_text("\n[answer]\n")

    def on_retry(self, info: RetryInfo) -> None:
        self._thinking.discard(info.step_id)
        self._line_open = False
        self._emit(RETRY, f"\n[retry {info.attempt}/{info.retries} after {info.reason}: text above discarded]\n",
                   step=info.step_id, attempt=info.attempt, reason=info.reason, delay=info.delay)

    def on_done(self, response: Response) -> None:
        step_id = response.step_id
        asks = response.stop_reason == "tool_use"  # a round of a tool loop: its tool lines follow, no answer yet
        if step_id in self._streamed:
            text = "\n" if self._line_open or not asks else ""
            if step_id in self._thinking and asks:
                self._thinking.discard(step_id)
            elif step_id in self._thinking:  # it thought and gave no answer text
                self._end_thinking(step_id)
        elif response.thinking:
            answer = f"[answer]\n{response.text}\n" if response.text or not asks else ""
            text = f"[thinking]\n{response.thinking}\n{answer}"
        else:
            text = response.text + "\n" if response.text or not asks else ""
        if response.citations:
            sources = [f"[{n}] {citation_source(c)}\n" for n, c in enumerate(response.citations, 1)]
            text += "[sources]\n" + "".join(sources)
        self._line_open = False
        self._emit(DONE, text, step=step_id, attempt=response.attempt, text=response.text,
                   stop_reason=response.stop_reason, output_tokens=response.usage.output_tokens)

    def on_check(self, check: CheckResult) -> None:
        self._line_open = False  # after the reply's done, whose text ended its line
        self._emit(CHECK, f"[check] {check}\n", step=check.step_id, check=check.name, type=check.kind,
                   passed=check.passed, detail=check.detail, variant=check.variant, cost=check.cost)

    def on_step_end(self, step: StepResult) -> None:
        self._thinking.discard(step.id)
        error = str(step.error) if step.error else None
        if self.format == "jsonl":
            self._emit(STEP_END, "", step=step.id, status=step.status, error=error)
        elif step.status != "ok":
            self._emit(STEP_END, f"\n[{step.id}: {step.status}{f': {error}' if error else ''}]\n\n")
        else:
            self._emit(STEP_END, "\n")

    def close(self) -> None:
        """Write what is queued, close the file; raise OSError if writing failed."""
        if self._writer is None:
            return
        self._queue.put(None)
        self._writer.join()
        self._writer = None
        if self._error is not None:
            raise self._error


# The console view lives in its own module; it subclasses StreamHandler, so it is imported last.
from ._console import ConsoleHandler  # noqa: E402, F401  (re-exported)
