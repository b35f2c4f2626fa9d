"""The run journal: every run, its steps and its model calls, written to SQLite as they happen.

One writer thread per run drains a queue into the database, one transaction per batch, in WAL
mode with a busy timeout, so several kernels and processes can write one journal at once and
the stream never waits for the disk. A run row is written when the run starts, a step's rows
when it ends (its items and nested steps with it), a call's row when its reply arrives: a
kernel that dies keeps everything that finished. The journal never fails a run: its first
error becomes one warning on the run, saying what was not recorded, and nothing more is
written for that run. Requests are recorded as sent (``LLMRequest.api_params``): no key,
header or base_url is ever in them. The schema is in docs/journal.md; a journal of an older
schema is brought up to this one when it is opened (``connect``).
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ._cassette import request_key
from ._check_results import CheckResult
from ._llm import CALLING_STEP, BatchProvider, BatchStatus, CancelToken, Emit, LLMRequest, Provider, ProviderError
from ._results import PipelineRun, StepResult
from ._spec import PipelineSpec
from .content import Reply, Text
from .streaming._events import RUN_END, STEP_END, Event
from ._journal_db import connect, _transaction

MAX_WAITING = 1000
"""Rows waiting for the writer, at most: a step that outruns it waits for it (briefly: a row is
written in well under a millisecond), so memory stays bounded however many items a step has."""
CLOSE_WAIT = 10.0
"""Seconds the end of a run waits for the journal to catch up."""


class JournalRecorder:
    """Records one run: a handler for its events (run start, step ends, run end) and a provider
    wrapper for its calls, both only queueing rows for the writer thread. With no ``path`` (the
    journal is off) it only keeps the run's replies in memory, for a resume of it."""

    def __init__(self, path: Path | None, spec: PipelineSpec, origin: str | None = None) -> None:
        self.path, self.spec, self.origin = path, spec, origin
        self.warnings: list[str] = []
        self.replies: dict[str, Reply] = {}
        """The run's successful replies by request key (what a resume of it reuses)."""
        # bounded: 100,000 items must not queue 100,000 rows while the writer catches up
        self._rows: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=MAX_WAITING)
        self._writer: threading.Thread | None = None
        self._failed = threading.Event()
        self._run: PipelineRun | None = None

    # -- the handler side (the engine's thread) --

    def init(self, run: PipelineRun) -> None:
        self._run = run
        run._replies = self.replies
        if self.path is None:
            return
        self._writer = threading.Thread(target=self._write, name=f"pipeline_nb:journal:{run.id}", daemon=True)
        self._writer.start()
        self._put("INSERT OR REPLACE INTO runs (id, name, description, status, started, origin, pipeline, "
                  "reused_from, pid) VALUES (?,?,?,?,?,?,?,?,?)",
                  (run.id, run.name, run.description, "running", time.time(), self.origin, self.spec.text,
                   run.reused_from, os.getpid()))

    def handle_event(self, event: Event) -> None:
        kind = event.kind
        if kind == STEP_END:  # its rows are made by the writer: a for_each's 100,000 wait as one job
            step, run_id, position = event.data, self._run.id, self._position(event.data.id)
            self._put(_STEP_INSERT, lambda: step_rows(run_id, step, position))
        elif kind == RUN_END:
            run = event.data
            run.warnings += [w for w in self.warnings if w not in run.warnings]  # before the summaries print
            usage = run.usage
            self._put("UPDATE runs SET status=?, ended=?, duration=?, steps=?, failed=?, input_tokens=?, "
                      "output_tokens=?, cache_write_tokens=?, cache_read_tokens=?, cost=?, warnings=? WHERE id=?",
                      (run.status, time.time(), run.duration, len(run.steps), len(run.failed), usage.input_tokens,
                       usage.output_tokens, usage.cache_write_tokens, usage.cache_read_tokens, run.cost,
                       json.dumps(run.warnings) if run.warnings else None, run.id))

    def close(self) -> None:
        """Wait (a bounded time) for every row to be written; problems become run warnings."""
        if self._writer is None:
            return
        if self._writer.is_alive():  # a writer that gave up reads no more: nothing to tell it
            try:
                self._rows.put(None, timeout=CLOSE_WAIT)
            except queue.Full:
                pass
        self._writer.join(CLOSE_WAIT)
        if self._writer.is_alive():
            self._warn(f"the journal {self.path} was still being written {CLOSE_WAIT:g} s after the run ended")
        if self._run is not None:
            self._run.warnings += [w for w in self.warnings if w not in self._run.warnings]

    def _position(self, step_id: str) -> int:
        return list(self._run.steps).index(step_id) if step_id in self._run.steps else -1

    # -- the provider side (worker threads) --

    def wrap(self, provider: Provider) -> Provider:
        return JournaledProvider(provider, self)

    def call(self, request: LLMRequest, reply: Reply | None, error: ProviderError | None, started: float,
             reused_from: str | None = None) -> None:
        key = request_key(request)
        if reply is not None:
            self.replies[key] = reply
        run_id, step_id, ended = self._run.id if self._run else None, CALLING_STEP.get(), time.time()

        def row() -> list[tuple[Any, ...]]:  # made by the writer: the queue holds only references
            sent = {"provider": request.provider, **request.api_params()}
            if request.extra_body:
                sent["extra_body"] = dict(request.extra_body)
            return [(run_id, step_id, key, Json(sent), Json(reply.to_api()) if reply is not None else None,
                     "ok" if error is None else "error", error.type if error else None,
                     error.message if error else None,
                     reply.request_id if reply else error.request_id if error else None, started, ended - started,
                     reused_from)]

        self._put("INSERT INTO calls (run_id, step_id, request_key, request, reply, status, error_type, "
                  "error_message, request_id, started, duration, reused_from) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def batch(self, step_id: str | None, batch_ids: str, keys: list[str]) -> None:
        self._put("INSERT OR REPLACE INTO batches (run_id, step_id, batch_ids, request_keys, created) "
                  "VALUES (?,?,?,?,?)", (self._run.id if self._run else None, step_id, batch_ids, _json(keys), time.time()))

    def batch_ended(self, batch_ids: str) -> None:
        self._put("UPDATE batches SET ended = ? WHERE run_id = ? AND batch_ids = ?",
                  (time.time(), self._run.id if self._run else None, batch_ids))

    # -- the writer thread --

    def _put(self, sql: str, row: Sequence[Any] | Callable[[], Iterator[Sequence[Any]]]) -> None:
        if self.path is not None and not self._failed.is_set():
            self._rows.put((sql, row))  # blocks while MAX_WAITING rows wait (the writer is behind)

    def _write(self) -> None:
        try:
            db = connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            self._give_up(exc)
            return
        try:
            for batch in _batches(self._rows):
                try:
                    with _transaction(db):
                        for sql, row in batch:  # JSON made here, a row at a time: one copy of a long reply
                            if callable(row):  # rows made only now, one at a time
                                db.executemany(sql, ([_json(v.value) if type(v) is Json else v for v in r]
                                                     for r in row()))
                            else:
                                db.execute(sql, [_json(v.value) if type(v) is Json else v for v in row])
                except (sqlite3.Error, OSError) as exc:
                    self._give_up(exc)
                    return
        finally:
            db.close()

    def _give_up(self, exc: BaseException) -> None:
        self._failed.set()
        self._warn(f"the run journal {self.path} could not be written ({type(exc).__name__}: {exc}); "
                   "this run is not fully recorded in it")
        while True:  # drop what waits, and stop at the end marker
            try:
                if self._rows.get_nowait() is None:
                    return
            except queue.Empty:
                return

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


class JournaledProvider:
    """A provider whose every call (reply or error) is recorded in the run's journal."""

    def __init__(self, inner: Provider, recorder: JournalRecorder) -> None:
        self.inner, self.recorder = inner, recorder
        self.name = getattr(inner, "name", "provider")

    def check(self, request: LLMRequest) -> None:
        self.inner.check(request)

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        started = time.time()
        try:
            reply = self.inner.complete(request, emit, cancel)
        except ProviderError as exc:
            self.recorder.call(request, None, exc, started)
            raise
        self.recorder.call(request, reply, None, started, getattr(reply, "reused_from", None))
        return reply

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[Any]:
        """The inner batch, its batch ids journaled as soon as they exist (so that a resume after
        the kernel died finds them), and each outcome journaled as a call."""
        if not isinstance(self.inner, BatchProvider):
            raise ProviderError("batch_unsupported", f"provider {self.name!r} cannot send batches", retryable=False)
        started, keys, seen = time.time(), [request_key(r) for r in requests], []

        def journaled(status: BatchStatus) -> None:
            if status.batch_ids and not seen:
                seen.append(_json(list(status.batch_ids)))
                self.recorder.batch(CALLING_STEP.get(), seen[0], keys)
            on_status(status)

        outcomes = self.inner.batch(requests, journaled, cancel, poll_interval)
        if seen:
            self.recorder.batch_ended(seen[0])
        for request, outcome in zip(requests, outcomes):
            if isinstance(outcome, Reply):
                self.recorder.call(request, outcome, None, started)
            elif isinstance(outcome, ProviderError):
                self.recorder.call(request, None, outcome, started)
        return outcomes


_STEP_INSERT = ("INSERT OR REPLACE INTO steps (run_id, step_id, parent, position, type, status, text, output, "
                "content, tool_calls, item, item_index, loop_var, input_tokens, output_tokens, cache_write_tokens, "
                "cache_read_tokens, web_search_requests, cost, duration, attempts, model, stop_reason, error_type, "
                "error_message, request_id, note, checks, sample, matrix) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def step_rows(run_id: str, step: StepResult, position: int, parent: str | None = None) -> Iterator[tuple[Any, ...]]:
    """The rows of ``step``: its own, then its combinations', items', samples' and its nested
    pipeline's steps' (``parent`` set: the result they are part of)."""
    usage, error = step.usage, step.error
    plain = len(step.content) == 1 and step.content[0] == Text(step.text)  # the text says it all
    yield (run_id, step.id, parent, position, step.type, step.status, step.text, Json(step.output),
           Json([block.to_api() for block in step.content]) if step.content and not plain else None,
           Json([asdict(call) for call in step.tool_calls]) if step.tool_calls else None,
           Json(step.item) if step.index is not None else None, step.index, step.loop_var, usage.input_tokens,
           usage.output_tokens, usage.cache_write_tokens, usage.cache_read_tokens, usage.web_search_requests,
           step.cost, step.duration, step.attempts, step.model, step.stop_reason, error.type if error else None,
           error.message if error else None, error.request_id if error else None, step.note,
           Json([check_record(check) for check in step.own_checks]) if step.own_checks else None, step.sample,
           Json(step.matrix) if step.matrix is not None else None)
    for parts in (step.variants, step.items, step.samples):
        for number, part in enumerate(parts or ()):
            yield from step_rows(run_id, part, number, step.id)
    if step.child is not None:
        for number, child in enumerate(step.child.steps.values()):
            yield from step_rows(run_id, replace(child, id=f"{step.id}/{child.id}"), number, step.id)


def check_record(check: CheckResult) -> dict[str, Any]:
    """A CheckResult as the ``checks`` column holds it (``_journal_read`` makes it again)."""
    return {"step_id": str(check.step_id), "name": check.name, "kind": check.kind, "passed": check.passed,
            "detail": check.detail, "step": check.step, "variant": check.variant, "usage": asdict(check.usage),
            "cost": check.cost}


class Json:
    """A value to be written as JSON by the writer thread (not before: a long reply is then
    encoded once, while nothing else of the run holds a second copy)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _json(value: Any) -> str | None:
    """JSON of a value for a TEXT column; what JSON cannot hold is written as its str()."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, default=str)


def _batches(rows: queue.Queue[Any]) -> Iterator[list[tuple[str, Sequence[Any]]]]:
    """What waits in the queue, a batch at a time (one transaction each), until the end marker."""
    while True:
        first = rows.get()
        if first is None:
            return
        batch = [first]
        while len(batch) < 500:
            try:
                row = rows.get_nowait()
            except queue.Empty:
                break
            if row is None:
                yield batch
                return
            batch.append(row)
        yield batch


