"""Which cassette a run uses, and how: the flags, then the YAML, then the environment.

A YAML-set path stays inside the pipeline's own directory; one the user passes (a flag,
``run(cassette=)``, the environment) may go anywhere. A mode with no path is an error,
never a silent no-op.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._cassette import ENV_MODE, ENV_PATH, MODES
from ._errors import PipelineSpecError
from ._files import UnsafePath, safe_path
from ._spec import PipelineSpec


def choose_cassette(spec: PipelineSpec, path_option: str | None, mode_option: str | None) -> tuple[str, str] | None:
    """``(path, mode)`` of the run's cassette, or None when it has none (or it is ``off``)."""
    path = path_option or spec.cassette or os.environ.get(ENV_PATH)
    modes = (("the cassette_mode option", mode_option), ("defaults.cassette_mode", spec.cassette_mode),
             (ENV_MODE, os.environ.get(ENV_MODE)))
    source, mode = next(((source, mode) for source, mode in modes if mode), (None, "auto"))
    if mode not in MODES:
        raise PipelineSpecError(f"unknown cassette mode {mode!r} (from {source})",
                                hint=f"use one of: {', '.join(MODES)}")
    if not path and mode != "off" and source is not None:  # asked to record or replay, with nowhere to
        raise PipelineSpecError(
            f"cassette mode {mode!r} (from {source}) needs a cassette file, and none is named",
            hint=f"name one: --cassette PATH (on %%pipeline or the CLI), cassette: PATH under defaults:, "
                 f"run(..., cassette=PATH) or {ENV_PATH}=PATH",
        )
    if not path or mode == "off":
        return None
    if not path_option and spec.cassette:  # set in the YAML: it may not leave the YAML's directory
        path = _confined(spec, spec.cassette)
    return path, mode


def _confined(spec: PipelineSpec, path: str) -> str:
    """A YAML-set cassette path, inside the YAML file's directory (a cell's: the working directory)."""
    try:
        return str(safe_path(path, spec.base_dir or Path.cwd(), what="cassette"))
    except UnsafePath as exc:
        raise PipelineSpecError(
            str(exc).replace("the working directory", "the directory of the pipeline"), location=spec.cassette_at,
            hint="a pipeline may write its cassette beside itself; to record elsewhere, "
                 "pass --cassette PATH (or run(..., cassette=PATH))",
        ) from None
