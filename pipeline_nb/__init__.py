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

from .api import invoke, raise_for_status, run
from .context import Step, StepContext
from .errors import PipelineError, PipelineSpecError, RunInterrupted, StepError
from .results import ErrorInfo, PipelineRun, StepResult, Usage

__version__ = "0.1.0"

__all__ = [
    "ErrorInfo",
    "PipelineError",
    "PipelineRun",
    "PipelineSpecError",
    "RunInterrupted",
    "Step",
    "StepContext",
    "StepError",
    "StepResult",
    "Usage",
    "invoke",
    "load_ipython_extension",
    "raise_for_status",
    "run",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pipeline_nb``: register ``%%pipeline``."""
    from .magics import PipelineMagics

    ipython.register_magics(PipelineMagics)
