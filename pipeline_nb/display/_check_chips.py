"""What the live view's rows show of evaluation: a chip per check with its running count
(``✓ contains "Paris" 5/5``), and a matrix step's comparison rows, filled in as combinations end.

Both are fields of a step's row, so they go with the rows: as state, only when they changed, within
the view's budget of one message per interval (a check is counted as it resolves; a matrix step's
comparison is computed from its latest snapshot when the rows are next sent, not per event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._check_results import CheckResult
from .._render_checks import comparison_rows
from .._results import StepResult
from .._step_ids import owner_of


class CheckChips:
    """Running check counts by row, and matrix steps' comparisons by row."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, list[int]]] = {}  # row -> check name -> [passed, total]
        self._snapshots: dict[str, StepResult] = {}  # matrix step -> its latest snapshot, not yet tabled
        self._tables: dict[str, dict[str, Any]] = {}  # matrix step -> {"heads": [...], "rows": [[...], ...]}

    def count(self, check: CheckResult, steps: Mapping[str, Any]) -> None:
        """Count ``check`` on its step's row (an item's, a sample's, a combination's: its step's)."""
        row = owner_of(check.step_id)
        if row not in steps and check.step in steps:
            row = check.step
        counts = self._counts.setdefault(str(row), {}).setdefault(check.name, [0, 0])
        counts[0] += check.passed
        counts[1] += 1

    def snapshot(self, step: StepResult) -> bool:
        """Keep a matrix step's latest state (True if it is one: its row changed)."""
        if step.variants is None:
            return False
        self._snapshots[step.id] = step
        return True

    def fields(self, step_id: str) -> dict[str, Any]:
        """The row's ``checks`` (``[[name, passed, total], ...]``) and ``combos`` (the comparison), if any."""
        fields: dict[str, Any] = {}
        counts = self._counts.get(step_id)
        if counts:
            fields["checks"] = [[name, passed, total] for name, (passed, total) in counts.items()]
        snapshot = self._snapshots.pop(step_id, None)
        if snapshot is not None:
            heads, rows = comparison_rows(snapshot)
            self._tables[step_id] = {"heads": heads, "rows": rows}
        if step_id in self._tables:
            fields["combos"] = self._tables[step_id]
        return fields
