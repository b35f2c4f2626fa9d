"""The run journal's database: where it is, its schema (and the migration of older ones), and the
connection every writer and reader opens, in WAL mode. The schema is documented in docs/journal.md."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._spec import PipelineSpec

ENV = "PIPELINE_NB_JOURNAL"
OFF = "off"
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, status TEXT NOT NULL,
    started REAL NOT NULL, ended REAL, duration REAL, origin TEXT, pipeline TEXT,
    steps INTEGER, failed INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cache_write_tokens INTEGER, cache_read_tokens INTEGER, cost REAL, warnings TEXT,
    reused_from TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step_id TEXT NOT NULL, parent TEXT,
    position INTEGER, type TEXT, status TEXT, text TEXT, output TEXT, content TEXT, tool_calls TEXT,
    item TEXT, item_index INTEGER, loop_var TEXT, input_tokens INTEGER, output_tokens INTEGER, cache_write_tokens INTEGER,
    cache_read_tokens INTEGER, web_search_requests INTEGER, cost REAL, duration REAL, attempts INTEGER,
    model TEXT, stop_reason TEXT, error_type TEXT, error_message TEXT, request_id TEXT, note TEXT,
    checks TEXT, sample INTEGER, matrix TEXT, PRIMARY KEY (run_id, step_id));
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id TEXT, request_key TEXT NOT NULL, request TEXT, reply TEXT, status TEXT NOT NULL,
    error_type TEXT, error_message TEXT, request_id TEXT, started REAL, duration REAL, reused_from TEXT);
CREATE INDEX IF NOT EXISTS calls_by_run ON calls (run_id, request_key);
CREATE TABLE IF NOT EXISTS batches (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step_id TEXT, batch_ids TEXT NOT NULL,
    request_keys TEXT NOT NULL, created REAL, ended REAL, PRIMARY KEY (run_id, batch_ids));
"""
ADDED_COLUMNS = {2: (("steps", "checks", "TEXT"), ("steps", "sample", "INTEGER"), ("steps", "matrix", "TEXT"))}
"""The columns each schema version added to an older journal's tables (SCHEMA has them all)."""
BUSY_TIMEOUT = 10.0
"""Seconds a writer waits for another process's transaction before giving up on a batch."""


def journal_path(option: str | None, spec: PipelineSpec | None = None) -> Path | None:
    """The journal a run writes to: ``option`` (``run(journal=)``, ``--journal``, ``%config``), then
    ``defaults.journal`` (relative to the pipeline file), then $PIPELINE_NB_JOURNAL, then the
    per-user data directory. None when any of them, first found, says ``off``."""
    chosen = option or (spec.journal if spec is not None else None)
    base = spec.base_dir if spec is not None and not option and spec.journal else None
    chosen = chosen or os.environ.get(ENV) or str(default_journal())
    if chosen.strip().lower() in (OFF, "false", "none", "no"):
        return None
    path = Path(chosen).expanduser()
    return path if path.is_absolute() or base is None else base / path


def default_journal() -> Path:
    """Where journals live unless told otherwise: the per-user data directory (platformdirs')."""
    import platformdirs

    return Path(platformdirs.user_data_dir("pipeline_nb", appauthor=False)) / "journal.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the journal at ``path`` (created with its schema if new), in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    _into_wal(db)
    db.execute("PRAGMA foreign_keys=ON")
    if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        _bring_up_to_date(db)
    return db


def _into_wal(db: sqlite3.Connection) -> None:
    """Put the journal in WAL mode. Switching a journal that is not yet in WAL mode needs it to
    itself, and SQLite answers "locked" at once, without its busy wait, while another process
    holds a write lock (migrating it, say): so wait here, as long as the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _bring_up_to_date(db: sqlite3.Connection) -> None:
    """Create the schema in a new journal, or add what a journal of an older version lacks
    (``ALTER TABLE ... ADD COLUMN``: its rows stay as they are). Two processes may open an old
    journal at once: the version is read again inside the write lock, so one of them migrates
    it and the other finds it done."""
    with _transaction(db):
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found >= SCHEMA_VERSION:
            return
        for statement in SCHEMA.split(";"):  # not executescript: it would commit the open transaction
            if statement.strip():
                db.execute(statement)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for table, column, kind in ADDED_COLUMNS.get(version, ()):
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:  # a new journal's tables were made with it
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer at a time, across processes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def rows_as_dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def decode(row: Mapping[str, Any], *columns: str) -> dict[str, Any]:
    """``row`` with the JSON ``columns`` decoded."""
    return {**row, **{c: json.loads(row[c]) for c in columns if row.get(c) is not None}}
