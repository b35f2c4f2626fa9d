"""pipeline_ex step executors that pipeline_nb's language has no step for, as functions that
translated python steps call (see compat.py): ``test_echo`` and ``file_ops``, and
``data_transform`` (ported in _compat_transform, named here so translated steps call one module).

Each follows pipeline_ex's executor (lib/pipeline/step/test_echo.ex, file_ops.ex and
lib/pipeline/utils/file_utils.ex): same results, same failures. One difference: every path
is confined to the working directory (as ``output_to_file`` and the workspace tools are), so
a path that leaves it fails the step instead of touching the file.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._compat_transform import data_transform  # noqa: F401  (called as pipeline_nb._compat_calls:data_transform)
from ._files import UnsafePath

FILE_OPERATIONS = ("copy", "move", "delete", "validate", "list", "convert", "stream_copy", "stream_process")
CONVERSIONS = ("csv_to_json", "json_to_csv", "yaml_to_json")
PROCESSORS = ("identity", "uppercase", "lowercase", "trim", "replace")


class FileOpError(RuntimeError):
    """A file operation that failed, with pipeline_ex's message."""


def echo(value: Any = None, fail: bool = False, error_message: str | None = None) -> Any:
    """pipeline_ex's test_echo: ``value`` (default ``"default_echo"``); fails when ``fail`` is true
    or ``value`` is ``"__FAIL__"``."""
    if fail is True or value == "__FAIL__":
        raise FileOpError(error_message or "Test step intentionally failed")
    return "default_echo" if value is None else value


def file_ops(operation: str, source: str | None = None, destination: str | None = None, path: str | None = None,
             files: list[Mapping[str, Any]] | None = None, pattern: str | None = None, format: str | None = None,  # noqa: A002  pipeline_ex's key
             processor: str = "identity", replacement: str = "") -> dict[str, Any]:
    """pipeline_ex's file_ops step, under the working directory: its result mapping, or FileOpError."""
    root = Path.cwd().resolve()
    if operation in ("copy", "move", "stream_copy", "convert"):
        src, dst = _inside(root, source, "source"), _inside(root, destination, "destination")
        if not src.exists():
            raise FileOpError(f"Source file does not exist: {source}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        result = {"operation": operation, "source": source, "destination": destination, "status": "completed"}
        if operation == "convert":
            if not format:
                raise FileOpError("Format conversion type must be specified")
            dst.write_text(_convert(src.read_text(encoding="utf-8"), format), encoding="utf-8")
            return {**result, "format": format}
        if operation == "move":
            src.replace(dst)
        elif src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dst)
        return {**result, "method": "streaming"} if operation == "stream_copy" else result
    if operation == "delete":
        target = _inside(root, path, "path")
        if target == root:
            raise UnsafePath(f"path {path!r} is the working directory itself, which file_ops does not delete")
        if target.is_file() or target.is_symlink():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        else:
            raise FileOpError(f"Path does not exist: {path}")
        return {"operation": "delete", "path": path, "status": "completed"}
    if operation == "list":
        return _list(root, path, pattern)
    if operation == "validate":
        return _validate(root, files or [])
    if operation == "stream_process":
        return _process(root, source, processor, pattern or "", replacement)
    raise FileOpError(f"Unsupported operation: {operation}")


def _inside(root: Path, path: Any, what: str) -> Path:
    if not isinstance(path, str) or not path:
        raise FileOpError(f"file_ops needs a {what}: path")
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise UnsafePath(f"{what} {path!r} is outside the working directory {root}; use a relative path without '..'")
    return target


def _list(root: Path, path: str | None, pattern: str | None) -> dict[str, Any]:
    folder = _inside(root, path or ".", "path")
    if not folder.exists():
        raise FileOpError(f"Path does not exist: {path}")
    if not folder.is_dir():
        raise FileOpError(f"Path is not a directory: {path}")
    names = sorted(p.name for p in folder.iterdir())
    if pattern:
        names = [n for n in names if re.search(pattern, n)]
    found = [str(Path(path or ".") / n) for n in names]
    return {"operation": "list", "path": path, "pattern": pattern, "files": found, "count": len(found)}


def _validate(root: Path, files: list[Mapping[str, Any]]) -> dict[str, Any]:
    results, failed = [], []
    for spec in files:
        criteria = {k: v for k, v in spec.items() if k != "path"}
        problem = _check(_inside(root, spec.get("path"), "path"), spec.get("path"), criteria)
        entry = {"path": spec.get("path"), "status": "invalid" if problem else "valid", "criteria": criteria}
        results.append({**entry, "error": problem} if problem else entry)
        if problem:
            failed.append(f"{spec.get('path')}: {problem}")
    if failed:
        raise FileOpError(f"Validation failed for {len(failed)} file(s): " + "; ".join(failed))
    return {"operation": "validate", "results": results, "status": "all_valid"}


def _check(target: Path, shown: Any, criteria: Mapping[str, Any]) -> str | None:
    exists = target.exists()
    if criteria.get("must_exist", True) and not exists:
        return f"File must exist but does not: {shown}"
    if not criteria.get("must_exist", True) and exists:
        return f"File must not exist but does: {shown}"
    if criteria.get("must_be_file") and not target.is_file():
        return f"Path must be a file: {shown}"
    if criteria.get("must_be_dir") and not target.is_dir():
        return f"Path must be a directory: {shown}"
    if target.is_file():
        size = target.stat().st_size
        if "min_size" in criteria and size < criteria["min_size"]:
            return f"File too small: {size} < {criteria['min_size']} bytes"
        if "max_size" in criteria and size > criteria["max_size"]:
            return f"File too large: {size} > {criteria['max_size']} bytes"
    return None


def _convert(text: str, conversion: str) -> str:
    if conversion == "csv_to_json":
        rows = list(csv.reader(io.StringIO(text)))
        rows = [r for r in rows if r]
        if not rows:
            return "[]"
        header = [h.strip() for h in rows[0]]
        return json.dumps([dict(zip(header, (v.strip() for v in row))) for row in rows[1:]], ensure_ascii=False)
    if conversion == "json_to_csv":
        data = json.loads(text)
        if not (isinstance(data, list) and data and all(isinstance(d, dict) for d in data)):
            raise FileOpError("JSON must be an array of objects for CSV conversion")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(data[0]), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
        return out.getvalue().rstrip("\n")
    if conversion == "yaml_to_json":
        return json.dumps(yaml.safe_load(text), ensure_ascii=False)
    raise FileOpError(f"Unsupported format conversion: {conversion}")


def _process(root: Path, source: str | None, processor: str, pattern: str, replacement: str) -> dict[str, Any]:
    """stream_process: rewrite ``source`` line by line in place, as pipeline_ex does."""
    target = _inside(root, source, "source")
    if not target.is_file():
        raise FileOpError(f"Stream processing failed: {source} is not a file")
    lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
    change = {"uppercase": str.upper, "lowercase": str.lower, "trim": lambda line: line.strip() + "\n",
              "replace": lambda line: line.replace(pattern, replacement)}.get(processor, lambda line: line)
    target.write_text("".join(change(line) for line in lines), encoding="utf-8")
    return {"operation": "stream_process", "source": source, "processed_path": source, "processor": processor,
            "status": "completed", "method": "streaming"}
