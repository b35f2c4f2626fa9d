"""``output_to_file``: write a step's output inside the working directory, never outside."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class UnsafePath(ValueError):
    """A path that would leave the working directory."""


def safe_path(path: str, root: Path | None = None) -> Path:
    """``path`` resolved under ``root`` (default: the working directory); UnsafePath if it escapes."""
    root = (root or Path.cwd()).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise UnsafePath(f"output_to_file {path!r} is outside the working directory {root}; "
                         "use a relative path without '..'")
    return target


def write_output(path: str, value: Any, root: Path | None = None) -> Path:
    """Write ``value`` (text as is, anything else as JSON) atomically; returns the file written."""
    target = safe_path(path, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target
