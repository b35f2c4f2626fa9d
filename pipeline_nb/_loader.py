"""Input formats, in one place: a pipeline from YAML text, a file or a dict, pipeline_ex's included.

``spec`` validates this project's own language; a pipeline_ex file (``workflow:``) is
translated into it here first, so the spec knows nothing of other formats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._pipeline_file import check_is_pipeline, declares_pipeline, read_pipeline_file
from ._yaml import SourceMap, load_yaml
from ._spec import PipelineSpec, parse_spec


def load_spec(
    source: str | Path | Mapping[str, Any],
    *,
    name: str | None = None,
    default_name: str = "pipeline",
    line_offset: int = 0,
    source_name: str | None = None,
) -> PipelineSpec:
    """Load a spec from YAML text, a path to a YAML file, or a dict.

    ``name`` overrides the spec's ``name:``; ``default_name`` is used when it has none."""
    base_dir, text = None, None
    if isinstance(source, Mapping):
        data, smap = source, SourceMap(source_name or "<dict>")
    elif isinstance(source, os.PathLike) or ("\n" not in str(source) and str(source).endswith((".yaml", ".yml"))):
        path = Path(source)
        text = read_pipeline_file(path)
        # any file can be named here: until it declares itself a pipeline, errors quote none of its text
        data, smap = load_yaml(text, source=str(path), line_offset=line_offset, quote=declares_pipeline(text))
        check_is_pipeline(data, smap)
        base_dir = path.parent
    else:
        text = str(source)
        data, smap = load_yaml(text, source=source_name or "<pipeline>", line_offset=line_offset)
    from .compat import is_workflow, translate

    notes: list[str] = []
    if is_workflow(data):  # a pipeline_ex file: translate it first
        data, smap = translate(data, smap, base_dir, notes=notes)
    spec = parse_spec(data, smap, name=name, default_name=default_name, base_dir=base_dir)
    return replace(spec, text=text, notes=tuple(notes)) if text is not None or notes else spec
