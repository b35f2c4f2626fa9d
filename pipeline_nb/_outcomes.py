"""How a step's outcome is decided: what its work raises becomes a value on its result, and a
step made of parts (children, items, a nested run) settles from theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import _llm_call as llm_call
from ._files import UnsafePath, WriteError
from ._llm_call import StepProblem, fail
from ._results import PipelineRun, StepResult
from ._spec import StepSpec
from ._templates import RenderInterrupted, TemplateProblem, render_cancelled_by


@contextmanager
def outcome(step: StepSpec, result: StepResult, cancelled: Callable[[], bool]) -> Iterator[None]:
    """Run a step's (or an item's) work: what it raises becomes its outcome, a value on ``result``;
    templates rendered meanwhile stop when the run is cancelled."""
    with render_cancelled_by(cancelled):
        try:
            yield
        except RenderInterrupted:
            llm_call.interrupted(result)
        except StepProblem as exc:
            exc.fail(step, result)
        except TemplateProblem as exc:
            fail(result, "template_error", str(exc))
        except UnsafePath as exc:
            fail(result, "unsafe_path", str(exc))
        except WriteError as exc:  # output_to_file on a full disk: the output stays on the step
            fail(result, "write_error", str(exc))
        except Exception as exc:  # a bug or a user's function must not lose the run
            fail(result, "python_error", f"{type(exc).__name__}: {exc}")


def run_status(run: PipelineRun) -> str:
    """A finished run's status: interrupted, error, or ok."""
    if any(s.status == "interrupted" for s in run.steps.values()):
        return "interrupted"
    if any(s.status == "error" for s in run.steps.values()):
        return "error"
    return "ok"


def settle(result: StepResult, parts: list[StepResult], noun: str) -> None:
    """Status of a step made of parts: ok if all are, else interrupted or error (naming the first)."""
    if any(p.status in ("interrupted", "pending", "running") for p in parts):
        result.status = "interrupted"
        return
    bad = [p for p in parts if p.status == "error"]
    if not bad:
        result.status = "ok"
        return
    first = bad[0]
    plural = "children" if noun == "child" else f"{noun}s"
    fail(result, f"{noun}_failed", f"{len(bad)} of {len(parts)} {plural} failed; first: {first.id}: {first.error}")


def items_note(items: list[StepResult], how: str) -> str:
    """``40 items, 2 failed, 10 interrupted``: an item stopped by an interrupt did not fail."""
    failed = sum(r.status == "error" for r in items)
    stopped = sum(r.status in ("interrupted", "pending", "running") for r in items)
    counts = [f"{n} {label}" for n, label in ((failed, "failed"), (stopped, "interrupted")) if n]
    return ", ".join([f"{len(items)} items{how}", *counts])
