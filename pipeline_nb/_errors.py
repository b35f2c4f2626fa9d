"""The exceptions pipeline_nb raises.

    PipelineError                 a run did not finish cleanly; ``.run`` keeps every result
    ├── PipelineSpecError         bad YAML, schema, template or reference, found before any call
    ├── StepError                 one step failed (API error, template error, handler error)
    └── ChecksFailed              every step ran, but an expectation failed (asked for with check=True / --check)
    RunInterrupted(KeyboardInterrupt)   the user interrupted a run; ``.run`` keeps partial text

In IPython, ``_render_traceback_`` replaces the long traceback with the message,
while the frontend still receives a real ``error`` (so nbclient and nbval fail the cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._results import PipelineRun


@dataclass(frozen=True)
class Location:
    """Where in a pipeline source something is: 1-based line and column."""

    source: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}"


class PipelineError(Exception):
    """A pipeline run that failed. ``run`` holds every result produced so far."""

    def __init__(self, message: str, *, run: PipelineRun | None = None) -> None:
        super().__init__(message)
        self.run = run

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class PipelineSpecError(PipelineError):
    """A pipeline that cannot run as written: says what, where, and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        step_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.step_id = step_id
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"{self.location}: " if self.location else ""
        step = f"step '{self.step_id}': " if self.step_id else ""
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{where}{step}{self.message}{hint}"


class StepError(PipelineError):
    """A step that failed while running."""


class ChecksFailed(PipelineError):
    """Expectations failed in a run that was asked to check them (``run(check=True)``, ``--check``)."""


class RunInterrupted(KeyboardInterrupt):
    """KeyboardInterrupt that carries the interrupted run."""

    def __init__(self, run: PipelineRun) -> None:
        super().__init__(f"pipeline {run.name!r} interrupted")
        self.run = run
