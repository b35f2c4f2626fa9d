"""The handler protocol and the built-in handlers.

A handler has ``init(run)`` (called at run start: reset state here), ``handle_event(event)``
and ``close()``; ``flush()`` is optional and is called when the stream goes quiet.
Events arrive in order on one thread. Subclasses of :class:`StreamHandler` are
idempotent: a delta or done event seen before (same step, attempt, seq) is ignored,
and a ``retry`` drops the step's partial text so only the final attempt's text remains.
The terminal view, :class:`ConsoleHandler`, lives in ``console.py`` and is re-exported here.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .events import (DELTA, DONE, PROGRESS, RETRY, RUN_END, RUN_START, STEP_END, STEP_START, Chunk, Event,
                     Response, RetryInfo)

if TYPE_CHECKING:
    from ..results import PipelineRun, StepResult


_ON = {kind: f"on_{kind}" for kind in (RUN_START, STEP_START, DELTA, RETRY, DONE, PROGRESS, STEP_END, RUN_END)}
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
        self._positions: dict[str, tuple[int, int]] = {}
        self._done: set[tuple[str, int]] = set()

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
        if kind == DELTA:
            position = (data.attempt, data.seq)
        elif kind == RETRY:
            position = (data.attempt + 1, -1)
        elif kind == DONE:
            key = (data.step_id, data.attempt)
            if key in self._done:
                return False
            self._done.add(key)
            return True
        else:
            return True
        if position <= self._positions.get(data.step_id, (0, -1)):
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
    def on_delta(self, chunk: Chunk) -> None: ...
    def on_retry(self, info: RetryInfo) -> None: ...
    def on_done(self, response: Response) -> None: ...
    def on_progress(self, step: StepResult) -> None: ...
    def on_step_end(self, step: StepResult) -> None: ...
    def on_run_end(self, run: PipelineRun) -> None: ...


class BufferHandler(StreamHandler):
    """Keeps each step's streamed text and final response in memory.

    >>> buf = BufferHandler()
    >>> # pipeline_nb.run(spec, on_event=buf); buf.texts["a"]
    """

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[str, list[str]] = {}
        self.responses: dict[str, Response] = {}
        self.events: list[Event] = []

    def init(self, run: PipelineRun) -> None:
        self.parts, self.responses, self.events = {}, {}, []
        super().init(run)

    def handle_event(self, event: Event) -> None:
        if self.accept(event):
            self.events.append(event)
            self.dispatch(event)

    @property
    def texts(self) -> dict[str, str]:
        return {step_id: "".join(parts) for step_id, parts in self.parts.items()}

    def on_delta(self, chunk: Chunk) -> None:
        self.parts.setdefault(chunk.step_id, []).append(chunk.content)

    def on_retry(self, info: RetryInfo) -> None:
        self.parts[info.step_id] = []

    def on_done(self, response: Response) -> None:
        self.responses[response.step_id] = response


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

    ``format="text"`` writes the text with a header per step; ``format="jsonl"`` writes
    one JSON object per event. The default path is ``<run name>.stream.txt``. The file
    is opened and written on the writer thread, flushed whenever the writer catches up,
    and closed by ``close()``, which raises the writer's error if it had one.
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

    def init(self, run: PipelineRun) -> None:
        self.close()  # a run that ended without close(): finish its file first
        path = self.path or Path(f"{run.name}.stream.{'txt' if self.format == 'text' else 'jsonl'}")
        self._queue, self._error, self._streamed = queue.SimpleQueue(), None, set()
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
            self._queue.put(json.dumps({"event": kind, **fields}, ensure_ascii=False) + "\n")

    def on_step_start(self, step: StepResult) -> None:
        self._emit(STEP_START, f"## {step.id}\n", step=step.id, model=step.model)

    def on_delta(self, chunk: Chunk) -> None:
        self._streamed.add(chunk.step_id)
        self._emit(DELTA, chunk.content, step=chunk.step_id, attempt=chunk.attempt, seq=chunk.seq,
                   content=chunk.content)

    def on_retry(self, info: RetryInfo) -> None:
        self._emit(RETRY, f"\n[retry {info.attempt}/{info.retries} after {info.reason}: text above discarded]\n",
                   step=info.step_id, attempt=info.attempt, reason=info.reason, delay=info.delay)

    def on_done(self, response: Response) -> None:
        text = "\n" if response.step_id in self._streamed else response.text + "\n"
        self._emit(DONE, text, step=response.step_id, attempt=response.attempt, text=response.text,
                   stop_reason=response.stop_reason, output_tokens=response.usage.output_tokens)

    def on_step_end(self, step: StepResult) -> None:
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
from .console import ConsoleHandler  # noqa: E402, F401  (re-exported)
