"""Reading the run journal back: past runs as summaries, a whole run as it was, the replies a
resume reuses, and pruning old runs. The schema is in ``_journal_db.py`` and docs/journal.md."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ._check_results import CheckResult
from ._errors import PipelineError
from ._journal_db import connect, decode, journal_path, rows_as_dicts
from ._results import ErrorInfo, PipelineRun, StepResult, ToolCall
from .content import Text, Usage, block_from_api


@dataclass(frozen=True)
class RunSummary:
    """One past run, as ``history()`` lists it."""

    id: str
    name: str
    status: str
    started: dt.datetime
    duration: float | None
    steps: int | None
    failed: int | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    origin: str | None
    reused_from: str | None

    def __str__(self) -> str:
        cost = f" · ${self.cost:.4f}" if self.cost is not None else ""
        took = f" · {self.duration:.1f}s" if self.duration is not None else ""
        tokens = f" · {(self.input_tokens or 0) + (self.output_tokens or 0)} tokens"
        failed = f", {self.failed} failed" if self.failed else ""
        steps = f"{self.steps or 0} step{'' if self.steps == 1 else 's'}"
        return (f"{self.id}  {self.name}: {self.status} · {steps}{failed}{tokens}{cost}{took}"
                f"  ({self.started:%Y-%m-%d %H:%M})")


class History(list):
    """Run summaries, newest first; ``to_records()`` / ``to_pandas()`` give a table of them."""

    def to_records(self) -> list[dict[str, Any]]:
        return [{f.name: getattr(run, f.name) for f in fields(RunSummary)} for run in self]

    def to_pandas(self) -> Any:
        from ._tables import records_frame

        return records_frame(self.to_records(), columns=[f.name for f in fields(RunSummary)])

    def __str__(self) -> str:
        return "\n".join(map(str, self)) if self else "no runs in the journal"


class JournalError(PipelineError):
    """The journal cannot be read, or holds no such run."""


@contextmanager
def _reading(journal: str | Path | None) -> Iterator[sqlite3.Connection]:
    path = journal_path(str(journal)) if journal is not None else journal_path(None)
    if path is None:
        raise JournalError("the run journal is off (PIPELINE_NB_JOURNAL=off); name one with journal=PATH")
    if not path.exists():
        raise JournalError(f"there is no run journal at {path} yet: it is written by the first run")
    try:
        db = connect(path)
    except sqlite3.Error as exc:
        raise JournalError(f"the run journal {path} cannot be read: {exc}") from None
    try:
        yield db
    except sqlite3.Error as exc:
        raise JournalError(f"the run journal {path} cannot be read: {exc}") from None
    finally:
        db.close()


def history(name: str | None = None, limit: int = 20, status: str | None = None,
            journal: str | Path | None = None) -> History:
    """The journal's latest runs (of ``name``, with ``status``), newest first."""
    where, args = [], []
    if name is not None:
        where.append("name = ?")
        args.append(name)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    sql = ("SELECT id, name, status, started, duration, steps, failed, input_tokens, output_tokens, cost, origin, "
           "reused_from FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY started DESC, id DESC LIMIT ?")
    with _reading(journal) as db:
        rows = rows_as_dicts(db.execute(sql, (*args, limit)))
    return History(RunSummary(**{**row, "started": dt.datetime.fromtimestamp(row["started"])}) for row in rows)


def load_run(run_id: str, journal: str | Path | None = None) -> PipelineRun:
    """The run ``run_id`` as it was: its steps (combinations, items, samples and nested steps in
    place), texts, outputs, thinking, citations, tool calls, usage, costs, checks and errors."""
    with _reading(journal) as db:
        found = rows_as_dicts(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)))
        if not found:
            raise JournalError(f"the run journal has no run {run_id!r}; pipeline_nb.history() lists the runs")
        rows = rows_as_dicts(db.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY parent IS NOT NULL, "
                                        "position", (run_id,)))
        replies = _replies(db, run_id)
    row = decode(found[0], "warnings")
    run = PipelineRun(name=row["name"], steps={}, description=row["description"] or "", status=row["status"],
                      duration=row["duration"], warnings=row.get("warnings") or [], id=row["id"],
                      reused_from=row["reused_from"])
    run._replies = replies
    results = {r["step_id"]: _step(r) for r in rows}
    for r in rows:  # by position: each part joins its parent's list in order
        step = results[r["step_id"]]
        if r["parent"] is None:
            run.steps[step.id] = step
        elif r.get("sample") is not None:  # first: a part may carry its parent's index or values too
            _part_of(results[r["parent"]], "samples").append(step)
        elif r["item_index"] is not None:
            _part_of(results[r["parent"]], "items").append(step)
        elif r.get("matrix") is not None:
            _part_of(results[r["parent"]], "variants").append(step)
        else:  # a nested pipeline's step, stored as parent/child
            parent = results[r["parent"]]
            if parent.child is None:
                parent.child = PipelineRun(name=parent.id, steps={}, status=parent.status)
            step.id = step.id.removeprefix(f"{parent.id}/")
            parent.child.steps[step.id] = step
    return run


def _part_of(parent: StepResult, kind: str) -> list[StepResult]:
    """The parent's list of ``kind`` (items, samples, variants), made on the first part."""
    if getattr(parent, kind) is None:
        setattr(parent, kind, [])
    return getattr(parent, kind)


def _step(row: dict[str, Any]) -> StepResult:
    row = decode(row, "output", "content", "tool_calls", "item", "checks", "matrix")
    error = ErrorInfo(row["error_type"], row["error_message"] or "", row["request_id"]) if row["error_type"] else None
    usage = Usage(row["input_tokens"] or 0, row["output_tokens"] or 0, row["cache_write_tokens"] or 0,
                  row["cache_read_tokens"] or 0, row["web_search_requests"] or 0)
    return StepResult(row["step_id"], type=row["type"], status=row["status"], text=row["text"] or "",
                      output=row.get("output"), usage=usage, attempts=row["attempts"] or 0, duration=row["duration"],
                      error=error, model=row["model"], stop_reason=row["stop_reason"], note=row["note"] or "",
                      cost=row["cost"], item=row.get("item"), index=row["item_index"], loop_var=row["loop_var"],
                      content=tuple(block_from_api(b) for b in row["content"]) if row.get("content") is not None
                      else (Text(row["text"]),) if row["text"] and row["type"] == "llm" else (),
                      tool_calls=[ToolCall(**call) for call in row.get("tool_calls") or ()],
                      own_checks=[_check(check, row["step_id"]) for check in row.get("checks") or ()],
                      sample=row.get("sample"), matrix=row.get("matrix"))


def _check(saved: dict[str, Any], step_id: str) -> CheckResult:
    """A CheckResult from the ``checks`` column (``_journal.check_record``)."""
    return CheckResult(saved.get("step_id") or step_id, saved["name"], saved["kind"], saved["passed"],
                       saved.get("detail") or "", saved.get("step") or "", saved.get("variant") or "",
                       Usage(**{k: v for k, v in (saved.get("usage") or {}).items() if k in _USAGE}), saved.get("cost"))


_USAGE = {f.name for f in fields(Usage)}


def _replies(db: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    return {key: json.loads(reply) for key, reply in db.execute(
        "SELECT request_key, reply FROM calls WHERE run_id = ? AND status = 'ok' ORDER BY id", (run_id,))}


@dataclass(frozen=True)
class Earlier:
    """What a resume reuses from an earlier run: its replies by request key, and its batches that
    had not ended (their ids, and the request key of each of their items)."""

    run_id: str
    replies: dict[str, Any]
    batches: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()


def earlier_run(resume: PipelineRun | str | bool, name: str, journal: str | Path | None = None) -> Earlier:
    """The run to resume: a PipelineRun (from memory), a run id, or ``True``/``"last"`` for the
    journal's last run named ``name``."""
    if isinstance(resume, PipelineRun):
        return Earlier(resume.id, dict(resume._replies))
    with _reading(journal) as db:
        if resume is True or resume == "last":
            found = db.execute("SELECT id FROM runs WHERE name = ? ORDER BY started DESC, id DESC LIMIT 1",
                               (name,)).fetchone()
            if found is None:
                raise JournalError(f"the run journal has no earlier run named {name!r} to resume")
            resume = found[0]
        elif db.execute("SELECT 1 FROM runs WHERE id = ?", (resume,)).fetchone() is None:
            raise JournalError(f"the run journal has no run {resume!r} to resume; pipeline_nb.history() lists them")
        open_batches = tuple((tuple(json.loads(ids)), tuple(json.loads(keys))) for ids, keys in db.execute(
            "SELECT batch_ids, request_keys FROM batches WHERE run_id = ? AND ended IS NULL", (str(resume),)))
        return Earlier(str(resume), _replies(db, str(resume)), open_batches)


def prune_journal(before: dt.datetime | dt.date | str, journal: str | Path | None = None) -> int:
    """Delete the runs that started before ``before`` (a date, a datetime or ISO text), with their
    steps and calls; returns how many runs went. The file is compacted afterwards."""
    when = dt.datetime.fromisoformat(before) if isinstance(before, str) else before
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day)
    with _reading(journal) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM runs WHERE started < ?", (when.timestamp(),))]
        db.execute("BEGIN IMMEDIATE")
        for table, column in (("calls", "run_id"), ("steps", "run_id"), ("runs", "id")):
            db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
        db.execute("COMMIT")
        db.execute("VACUUM")
    return len(ids)
