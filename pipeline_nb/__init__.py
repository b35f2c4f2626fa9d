"""pipeline_nb: YAML LLM pipelines for Jupyter, streamed live, results kept in the kernel.

    %load_ext pipeline_nb

    %%pipeline res
    steps:
      - id: a
        prompt: "Explain {{ topic }}."
        stream: true

From Python: ``pipeline_nb.run(yaml_or_path_or_dict)`` and ``pipeline_nb.invoke(prompt)``.
"""

from __future__ import annotations

from typing import Any

from ._api import invoke, raise_for_status, run
from ._journal_read import JournalError, RunSummary, history, load_run, prune_journal
from ._context import Step, StepContext
from ._check_results import CheckList, CheckResult
from ._compare import RunComparison, compare
from ._errors import ChecksFailed, PipelineError, PipelineSpecError, RunInterrupted, StepError
from ._tables import records_frame
from ._results import ERROR_TYPES, ErrorInfo, PipelineRun, StepResult, ToolCall, Usage
from ._step_ids import StepId

__version__ = "0.1.0"

__all__ = [
    "ERROR_TYPES",
    "CheckList",
    "CheckResult",
    "ChecksFailed",
    "ErrorInfo",
    "JournalError",
    "PipelineError",
    "PipelineRun",
    "PipelineSpecError",
    "RunComparison",
    "RunInterrupted",
    "RunSummary",
    "Step",
    "StepContext",
    "StepError",
    "StepId",
    "StepResult",
    "ToolCall",
    "Usage",
    "compare",
    "history",
    "invoke",
    "load_ipython_extension",
    "load_run",
    "prune_journal",
    "raise_for_status",
    "records_frame",
    "run",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pipeline_nb``: register ``%%pipeline``."""
    from ._magics import PipelineMagics

    ipython.register_magics(PipelineMagics)
    _show_results_as_html(ipython)


def _show_results_as_html(ipython: Any) -> None:
    """Runs and steps shown in IPython (``res`` alone in a cell) render as the final rendering's HTML.

    The results are plain data and the rendering plain functions of them; this is where the two
    meet, for IPython only."""
    from ._render import run_html, step_html

    html = ipython.display_formatter.formatters["text/html"]
    html.for_type(PipelineRun, run_html)
    html.for_type(StepResult, step_html)


def _in_ipython() -> Any:
    import sys

    if "IPython" not in sys.modules:  # importing IPython just to ask would cost a plain script 0.2 s
        return None
    return sys.modules["IPython"].get_ipython()


if (_shell := _in_ipython()) is not None:  # ``import pipeline_nb`` in a notebook, without %load_ext
    _show_results_as_html(_shell)
