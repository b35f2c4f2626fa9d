"""Reading a pipeline file, in one place: ``load_spec`` (so ``run``, the CLI and ``file:`` steps).

Only a regular file is read (a FIFO would block, ``/dev/zero`` never ends), at most
``MAX_PIPELINE_FILE_BYTES`` of it, as strict UTF-8. A ``file:`` step may name any file,
and an error message travels (a step error is a value later steps can read), so until
a file shows it is a pipeline no error quotes its text: ``declares_pipeline`` decides
whether YAML errors may name keys and tags, ``check_is_pipeline`` refuses the rest.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ._schema import _describe, schema
from ._yaml import SourceMap
from ._errors import Location, PipelineSpecError

MAX_PIPELINE_FILE_BYTES = 10_000_000
"""The largest pipeline file read (10 MB); a larger one is refused before it is read."""

_PIPELINE_KEYS = ("steps", "workflow")  # workflow: a pipeline_ex file, translated by compat.py
_DECLARES = re.compile(r"""^[ \t{]*["']?(?:steps|workflow)["']?[ \t]*:""", re.M)
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_pipeline_file(path: Path) -> str:
    """The text of the pipeline file at ``path``; PipelineSpecError naming the file if it cannot be one."""
    try:
        _check_kind(path, os.stat(path))  # before opening: opening a FIFO blocks, opening a device may act
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            _check_kind(path, info)  # the file opened, should it have been swapped since
            data = _read_at_most(handle, MAX_PIPELINE_FILE_BYTES + 1, info.st_size)
    except OSError as exc:
        raise PipelineSpecError(f"cannot read pipeline file: {exc.strerror or exc}: {path}") from None
    if len(data) > MAX_PIPELINE_FILE_BYTES:
        raise _too_large(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")  # valid up to the bad byte, by definition
        where = Location(str(path), before.count("\n") + 1, len(before) - before.rfind("\n"))
        raise PipelineSpecError(
            f"invalid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason})",
            location=where, hint="save the file as UTF-8 (editors offer the encoding in 'Save as')",
        ) from None


def _read_at_most(handle: BinaryIO, limit: int, size: int) -> bytes:
    """Up to ``limit`` bytes: the size stat gave in one read (not a ``limit``-sized buffer),
    then more in chunks, for a file that grew or reports no size (``/proc``)."""
    data = handle.read(min(size + 1, limit))
    while len(data) < limit and (more := handle.read(min(1 << 20, limit - len(data)))):
        data += more
    return data


def _check_kind(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "a special file")
        raise PipelineSpecError(f"cannot read pipeline file: {path} is {kind}, not a regular file",
                                hint="name a YAML file")
    if info.st_size > MAX_PIPELINE_FILE_BYTES:
        raise _too_large(path, info.st_size)


def _too_large(path: Path, size: int | None = None) -> PipelineSpecError:
    actual = f" ({size:,} bytes)" if size else ""
    return PipelineSpecError(
        f"cannot read pipeline file: {path}{actual} is larger than {MAX_PIPELINE_FILE_BYTES:,} bytes, "
        "the limit for a pipeline file",
        hint="check that this is the file you meant; split a very large pipeline into files run by pipeline steps",
    )


def declares_pipeline(text: str) -> bool:
    """Whether ``text`` has a top-level-looking ``steps:`` or ``workflow:`` key: then its
    YAML errors may quote names from it (a duplicate key, an undefined alias)."""
    return _DECLARES.search(text) is not None


def check_is_pipeline(data: Any, smap: SourceMap) -> None:
    """Refuse, quoting nothing, a file's document that is not a pipeline: not a mapping, or a
    mapping without ``steps`` (or ``workflow``) that is not a pipeline with ``steps`` misspelt.

    Left to ``parse_spec``, whose messages name keys: an empty document, a real pipeline,
    and one whose keys are all pipeline keys but for a misspelt ``steps`` (did you mean 'steps'?).
    """
    where = smap.locate(()) or Location(smap.source, 1 + smap.line_offset, 1)
    start = "start it with 'steps:', then '  - id: first' and '    prompt: ...'"
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise PipelineSpecError(f"a pipeline must be a mapping with a 'steps' list, got {_describe(data, quote=False)}",
                                location=where, hint=f"this file is not a pipeline; {start}")
    if any(key in data for key in _PIPELINE_KEYS):
        return
    misspelt = [key for key in data if isinstance(key, str) and difflib.get_close_matches(key, _PIPELINE_KEYS, n=1)]
    if misspelt and all(key in schema()["properties"] or key in misspelt for key in data):
        return
    if "input" in data and "expected_output" in data:  # pipeline_ex's examples/meta: a generator's input
        raise PipelineSpecError("this file is not a pipeline: it is a pipeline_ex example of a pipeline generator's "
                                "input (input:) and the output expected (expected_output:)", location=where,
                                hint="run the generator pipeline itself, giving each input with --var NAME=VALUE")
    raise PipelineSpecError(f"pipeline is missing 'steps': this file is {_describe(data, quote=False)} "
                            "and no 'steps'", location=where, hint=f"if it is meant as a pipeline, {start}")
