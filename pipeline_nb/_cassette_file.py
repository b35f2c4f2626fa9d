"""The cassette file: JSON Lines, checked line by line, appended under a lock, compacted once.

While recording, each reply is one line appended to the file under an exclusive ``flock``
on the file itself, so the steps and processes recording one cassette never interleave or
lose a line, and a reply costs one short write, not a rewrite of the file. On load, the
last line of a key wins. ``compact`` then rewrites the file once, at the end of a run: the
last line per key, sorted by key, through ``files.write_atomic``; a finished recording is
therefore the same bytes every time. A compaction replaces the file, so a writer that
waited for the lock checks that the path still names the file it holds, and opens it
again if not.

A last line without its newline is a reply cut short (a process killed mid-write): it is
ignored on load (the cassette warns), and cut off by the next append or compaction.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from ._files import remove_dead_temps, write_atomic

try:
    import fcntl
except ImportError:  # Windows has no flock: one process per cassette at a time there
    fcntl = None  # type: ignore[assignment]

Entry = dict[str, Any]
_BINARY = getattr(os, "O_BINARY", 0)


class CassetteError(ValueError):
    """A cassette file that cannot be used: unreadable, or a line that is not a valid entry.
    Its message names the file and line, says what is wrong and how to fix it."""


def entry_line(entry: Entry) -> str:
    """``entry`` as one line of the file, newline included (the same bytes for the same entry)."""
    return json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"


def read_entries(path: Path, known: dict[bytes, str]) -> tuple[dict[str, Entry], int | None]:
    """The entries of ``path`` by key, and the number of a torn last line that was ignored, if any;
    adds each line to ``known`` (line → key). A missing file has no entries. Raises
    CassetteError for an unreadable file or a bad line."""
    try:
        with open(path, "rb") as handle:
            _lock(handle.fileno(), shared=True)  # no append is half done while we read
            data = handle.read()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        raise CassetteError(f"cannot read the cassette {path}: {exc.strerror or exc}") from None
    entries: dict[str, Entry] = {}
    torn = None
    for number, raw, ended in _lines(data):
        try:
            entry = _checked(raw, path, number)
        except CassetteError:
            if ended:
                raise
            torn = number  # a cut-off reply; one whole but for its newline (a hand edit) is kept
            continue
        entries[entry["key"]] = entry  # the last line of a key wins
        known[raw] = entry["key"]
    return entries, torn


def _lines(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(number, line, whether it ends with a newline) of each line that is not blank."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, as a whole recording does
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            yield number, raw, True
    if tail.strip():
        yield len(lines) + 1, tail, False


class Appender:
    """Appends whole lines to one cassette file under its lock, keeping the file open between
    appends: a reply costs a handful of system calls, each of which lets other threads run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._end = -1
        """The file's size after our last append, when it ended with our newline."""
        self._lock = threading.Lock()

    def append(self, data: bytes) -> None:
        """Append ``data``: all of it, or nothing (OSError)."""
        with self._lock:
            fd, size = self._acquire()
            try:
                if size and size != self._end and _byte_at(fd, size - 1) != b"\n":
                    size, newline = _mend_tail(fd, self.path)
                    data = newline + data
                self._end = -1
                try:
                    _write_all(fd, data)
                except BaseException:
                    try:  # a full disk may take half a line: take it back so the file stays whole
                        os.ftruncate(fd, size)
                    except OSError:
                        pass  # the torn line will be dropped on load and cut by the next append
                    raise
                self._end = size + len(data)
            finally:
                _unlock(fd)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _acquire(self) -> tuple[int, int]:
        """The file, locked, and its size; opened again if a compaction replaced it meanwhile."""
        while True:
            if self._file is None:
                self._file = open(self.path, "a+b", buffering=0)  # noqa: SIM115 (kept open; GC closes it too)
                self._end = -1
            fd = self._file.fileno()
            try:
                _lock(fd, shared=False)
                held = os.fstat(fd)
                if _names(self.path, held):
                    return fd, held.st_size
            except BaseException:
                self._close()
                raise
            self._close()  # which also unlocks

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def compact(path: Path, extra: dict[str, Entry], known: dict[bytes, str]) -> None:
    """Rewrite ``path`` as its lines (every process's) plus ``extra``, one per key, sorted by key.
    Lines in ``known`` (line → key) are taken as they are; others are checked. Does nothing if
    the file is already so. Raises OSError (WriteError) or CassetteError."""
    remove_dead_temps(path.parent)  # a compaction killed mid-write left one
    with _locked(path) as fd:
        data = _read_all(fd)
        lines: dict[str, bytes] = {}
        for number, raw, ended in _lines(data):
            key = known.get(raw)
            if key is None:
                try:
                    key = _checked(raw, path, number)["key"]
                except CassetteError:
                    if ended:
                        raise
                    continue  # a torn last line goes
            lines[key] = raw  # the last line of a key wins
        lines.update((key, entry_line(entry).encode("utf-8")[:-1]) for key, entry in extra.items())
        text = b"".join(lines[key] + b"\n" for key in sorted(lines))
        if text != data:
            write_atomic(path, text)  # under the lock: waiting writers then find the new file


# -- the lock --

@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """``path`` opened for appending (created if missing), locked against other writers."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _BINARY, 0o666)
        try:
            _lock(fd, shared=False)
            if _names(path, os.fstat(fd)):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # a compaction replaced the file while we waited: lock the new one
    try:
        yield fd
    finally:
        os.close(fd)  # and with it the lock


def _lock(fd: int, shared: bool) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    except OSError:
        if not shared:
            raise
        # a read without the lock may see a half-written last line, which is ignored


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _names(path: Path, held: os.stat_result) -> bool:
    """Whether ``path`` still names the file whose status is ``held``: a compaction renames a new
    file over it, which leaves the old one with no name (``st_nlink`` 0); no second stat needed."""
    return held.st_nlink > 0


# -- reading and writing a locked file --

def _byte_at(fd: int, offset: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, 1)


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _mend_tail(fd: int, path: Path) -> tuple[int, bytes]:
    """The file does not end with a newline. A torn last line is cut off; a whole entry that
    lacks only its newline (a hand edit) stays and needs one. Returns (size, what to prepend)."""
    data = _read_all(fd)
    cut = data.rfind(b"\n") + 1
    try:
        _checked(data[cut:], path, data.count(b"\n") + 1)
    except CassetteError:
        os.ftruncate(fd, cut)
        return cut, b""
    return len(data), b"\n"


# -- what an entry is --

def _checked(raw: bytes, path: Path, number: int) -> Entry:
    """Line ``number`` of ``path`` as an entry; CassetteError naming the line and what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"it is not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
    else:
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError) as exc:
            where = f" (column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            problem = f"it is not JSON: {getattr(exc, 'msg', exc)}{where}"
        else:
            problem = _problem(entry)
            if problem is None:
                return entry
    raise CassetteError(f"{path}:{number}: not a cassette entry; re-record the cassette, or delete line "
                        f"{number}: {problem}")


def _problem(entry: Any) -> str | None:
    """What is wrong with ``entry`` (``reply.stop_reason must be a string or null, got 3``), or None."""
    if not isinstance(entry, dict):
        return f"an entry must be a JSON object, got {_describe(entry)}"
    if "v" not in entry and "response" in entry:
        return ("it was recorded by an earlier pipeline_nb (cassette format 1, text only); delete the cassette "
                "and record it again with --cassette-mode record (the bundled notebooks: python notebooks/record.py)")
    for where, fields in (("", _FIELDS), ("reply.", _REPLY)):
        scope = entry if not where else entry["reply"]
        for name, (required, check, expected) in fields.items():
            if name not in scope:
                if required:
                    return f"{where}{name} is missing"
            elif not check(scope[name]):
                return f"{where}{name} must be {expected}, got {_describe(scope[name])}"
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(map(check, value))


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_text_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_event(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and _is_count(value[1])
            and isinstance(value[2], (str, dict)))


def _is_usage(value: Any) -> bool:
    """Token counts, and the server tools' request counts (``server_tool_use``: an object of counts)."""
    return isinstance(value, dict) and all(_is_count(n) or (name == "server_tool_use" and _is_usage(n))
                                           for name, n in value.items())


def _is_block(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("type"), str)


_FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "v": (True, lambda v: v == 2, "2, the format this version reads"),
    "key": (True, lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "model": (True, _is_text_or_null, "a string or null"),
    "prompt": (True, _is_text, "a string"),
    "reply": (True, lambda v: isinstance(v, dict), "an object"),
    "events": (False, _list_of(_is_event), "a list of [kind, block index, piece]"),
    "pace_ms": (False, _list_of(_is_count), "a list of whole milliseconds (0 or more)"),
}
"""Each field: (required, check, what it must be)."""
_REPLY: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "content": (True, _list_of(_is_block), "a list of content blocks (objects with a type)"),
    "usage": (True, _is_usage, "an object of token counts (0 or more)"),
    "stop_reason": (True, _is_text_or_null, "a string or null"),
    "model": (True, _is_text_or_null, "a string or null"),
}


def _describe(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."
