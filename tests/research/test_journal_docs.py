"""docs/journal.md documents the journal's schema as ``_journal_db.SCHEMA`` creates it: its version,
every table, and every column under its table's heading."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from pipeline_nb._journal_db import SCHEMA, SCHEMA_VERSION

PAGE = Path(__file__).resolve().parents[2] / "docs" / "journal.md"


def test_the_journal_page_documents_every_table_and_column_of_the_schema() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    page = PAGE.read_text(encoding="utf-8")
    assert f"`PRAGMA user_version` is the schema's version (`{SCHEMA_VERSION}`)" in page
    sections = dict(re.findall(r"^### `(\w+)`[^\n]*\n(.*?)(?=^#)", page, re.M | re.S))
    assert not set(tables) - set(sections), ("tables without a section", sorted(set(tables) - set(sections)))
    for table in tables:
        documented = set(re.findall(r"`(\w+)`", "\n".join(line.split("|")[1] for line in sections[table].splitlines()
                                                           if line.startswith("| `"))))
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        assert columns <= documented, (table, sorted(columns - documented))
        assert documented <= columns, (table, sorted(documented - columns))
