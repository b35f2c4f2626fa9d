"""The built-in workspace tools: read, write, edit, list and search the files of one folder.

:func:`workspace_tools` binds ``read_file``, ``write_file``, ``edit_file``, ``list_files`` and
``search_files`` to a working directory. Every path the model gives is resolved inside it; one
that leaves it (``..``, an absolute path elsewhere, a symlink pointing out) is refused with the
words of ``output_to_file`` (:func:`pipeline_nb._files.safe_path`), and a walk through folders
skips what links outside. Writes replace a file whole (:func:`pipeline_nb._files.write_atomic`).
There is no shell tool. Every answer is bounded (lines read, entries listed, matches found) and
says so when it stops early. Refusals raise :class:`ToolInputError`: the model reads why and
tries again. The methods' docstrings are what the model is told.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from .._files import UnsafePath, safe_path, write_atomic, write_output
from ._errors import ToolDefinitionError, ToolInputError
from ._functions import tool_from_function
from ._tool import Tool

_ORDER = ("read_file", "write_file", "edit_file", "list_files", "search_files")
WORKSPACE_TOOLS = frozenset(_ORDER)
"""The names of the built-in workspace tools."""

READ_LINES = 2000
"""Lines ``read_file`` returns when not told otherwise."""
MAX_READ_CHARS = 100_000
"""Characters ``read_file`` returns at most (whole lines; the note says where to go on)."""
MAX_ENTRIES = 1000
"""Paths ``list_files`` returns at most."""
MAX_MATCHES = 200
"""Lines ``search_files`` returns at most."""
MAX_WALKED = 50_000
"""Files and folders a listing or a search looks at, at most: a bound on a huge tree."""
MAX_SEARCHED_BYTES = 10_000_000
"""Larger files are skipped by ``search_files`` (and counted in its note)."""
_SHOWN_LINE = 300  # characters of one matching line
_SNIFFED = 8192  # bytes looked at to tell a binary file: a NUL byte among them
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".venv", "node_modules"})
"""Folders a listing or a search does not enter (they can still be named as ``path``)."""


def workspace_tools(workdir: Path) -> dict[str, Tool]:
    """The workspace tools, by name, confined to ``workdir`` (an existing folder)."""
    root = Path(workdir).resolve()
    if not root.is_dir():
        raise ToolDefinitionError(None, "workdir", f"the working directory {str(workdir)!r} is not an existing "
                                                   "folder; create it, or give the path of one")
    workspace = Workspace(root)
    return {name: tool_from_function(getattr(workspace, name)) for name in _ORDER}


class Workspace:
    """The workspace tools of one folder, as methods (their docstrings are the tools' descriptions)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def read_file(self, path: str, offset: int = 1, limit: int = READ_LINES) -> str:
        """Read a text file in the working directory.

        Returns the file's lines exactly as written (no line numbers added), from line `offset` on,
        at most `limit` lines and about 100,000 characters. When lines are left out, a note in
        square brackets at the end says which, and the offset to read on from.

        Args:
            path: The file, relative to the working directory, e.g. "notes/summary.md".
            offset: The first line to return, counting from 1.
            limit: The most lines to return.
        """
        target = self._file(path, "read_file")
        if offset < 1 or limit < 1:
            raise ToolInputError("offset and limit must be 1 or more", tool="read_file")
        self._refuse_binary(target, path, "read_file")
        lines: list[str] = []
        size = 0
        more = False
        with open(target, encoding="utf-8", errors="replace", newline="") as file:
            for number, line in enumerate(file, 1):
                if number < offset:
                    continue
                if len(lines) == limit or (lines and size + len(line) > MAX_READ_CHARS):
                    more = True
                    break
                lines.append(line)
                size += len(line)
        text = "".join(lines)
        if not lines:
            return f"[{path} is empty]" if offset == 1 else f"[{path} has fewer than {offset} lines]"
        if more or offset > 1:
            last = offset + len(lines) - 1
            after = f"; more follow: read on with offset={last + 1}" if more else ", the end of the file"
            shown = f"line {offset}" if last == offset else f"lines {offset}-{last}"
            text += f"{'' if text.endswith(chr(10)) else chr(10)}[{shown} of {path}{after}]"
        return text

    def write_file(self, path: str, content: str) -> str:
        """Write a text file in the working directory, replacing it whole if it exists.

        Folders on the way are created. To change part of an existing file, use edit_file instead.

        Args:
            path: The file, relative to the working directory, e.g. "results/table.csv".
            content: The file's whole new text.
        """
        target = self._file(path, "write_file")
        existed = target.exists()
        write_output(path, content, self.root)  # the same checks again, then a whole-file replace
        return f"{'replaced' if existed else 'created'} {path} ({len(content):,} characters)"

    def edit_file(self, path: str, old: str, new: str) -> str:
        """Replace one piece of text in a file of the working directory.

        `old` must appear exactly once in the file, matched character for character (spaces,
        indentation and line breaks included); read the file first and copy the text. If it
        matches several places, include more of the surrounding lines to make it unique.

        Args:
            path: The file, relative to the working directory.
            old: The exact text to replace (not empty).
            new: The text to put in its place.
        """
        target = self._file(path, "edit_file")
        if not old:
            raise ToolInputError("old must not be empty; give the exact text to replace", tool="edit_file")
        self._refuse_binary(target, path, "edit_file")
        try:
            text = target.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ToolInputError(f"{path} is not UTF-8 text; edit_file edits text files only",
                                 tool="edit_file") from None
        found = text.count(old)
        if found == 0:
            raise ToolInputError(f"old was not found in {path}; read_file it and copy the text exactly, "
                                 "with its spaces and line breaks", tool="edit_file")
        if found > 1:
            raise ToolInputError(f"old matches {found} places in {path}, so the edit is ambiguous; include more "
                                 "of the surrounding text so that it matches exactly one", tool="edit_file")
        write_atomic(target, text.replace(old, new, 1), shown=path)
        return f"edited {path}: replaced {len(old):,} characters with {len(new):,}"

    def list_files(self, path: str = ".", pattern: str | None = None) -> str:
        """List files and folders in the working directory, one path per line (folders end with "/").

        Without a pattern, lists the folder's own entries. With a pattern, lists every file and
        folder below it that matches (folders such as .git and __pycache__ are not entered).
        Paths are relative to the working directory, ready for read_file.

        Args:
            path: The folder to list, relative to the working directory.
            pattern: A glob: "*.csv" matches names at any depth; a pattern with "/" matches paths
                relative to the folder, where "**" spans folders, e.g. "data/**/*.json".
        """
        start = self._directory(path, "list_files")
        walk = None
        if pattern is None:
            entries = sorted(Path(entry.path) for entry in os.scandir(start))
            found: Iterator[Path] = (e for e in entries if self._inside(e))
        else:
            matches = _glob(pattern, "list_files")
            walk = self._walk(start)
            found = (e for e, _ in walk if matches(e, start))
        shown: list[str] = []
        for entry in found:
            if len(shown) == MAX_ENTRIES:
                shown.append(f"[the first {MAX_ENTRIES:,} entries shown; more exist: narrow path or pattern]")
                break
            shown.append(self._shown(entry) + ("/" if entry.is_dir() else ""))
        shown += walk.note if walk else []
        if not shown:
            return f"[no entries match {pattern!r} in {path}]" if pattern else f"[{path} is empty]"
        return "\n".join(shown)

    def search_files(self, pattern: str, path: str = ".", glob: str | None = None) -> str:
        """Search the text files of the working directory for lines that match a regular expression.

        Returns one line per match, as "file:line: text", at most 200 of them. Binary files,
        files over 10 MB, and folders such as .git and __pycache__ are skipped.

        Args:
            pattern: A Python regular expression, e.g. "def \\w+_total" or "(?i)revenue".
            path: The folder to search, relative to the working directory.
            glob: Only search files whose name matches, e.g. "*.py" (see list_files).
        """
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolInputError(f"pattern {pattern!r} is not a valid regular expression: {exc}",
                                 tool="search_files") from None
        start = self._directory(path, "search_files")
        matches = _glob(glob, "search_files") if glob else None
        hits: list[str] = []
        skipped = 0
        walk = self._walk(start)
        for entry, is_dir in walk:
            if is_dir or (matches and not matches(entry, start)):
                continue
            try:
                info = entry.stat()
                if not stat.S_ISREG(info.st_mode):
                    continue  # a FIFO would block the read
                if info.st_size > MAX_SEARCHED_BYTES:
                    skipped += 1
                    continue
                data = entry.read_bytes()
            except OSError:
                continue  # unreadable, or gone since the walk saw it: not a match
            if b"\0" in data[:_SNIFFED]:
                continue
            for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                if regex.search(line):
                    cut = line if len(line) <= _SHOWN_LINE else line[:_SHOWN_LINE] + "..."
                    hits.append(f"{self._shown(entry)}:{number}: {cut}")
                    if len(hits) > MAX_MATCHES:
                        break
            if len(hits) > MAX_MATCHES:
                hits[MAX_MATCHES:] = [f"[the first {MAX_MATCHES} matches shown; more exist: narrow pattern, "
                                      "path or glob]"]
                break
        hits += walk.note
        if skipped:
            hits.append(f"[{skipped} file(s) over {MAX_SEARCHED_BYTES:,} bytes not searched]")
        return "\n".join(hits) if hits else f"[no line matches {pattern!r} in {path}]"

    # -- paths -----------------------------------------------------------------------------

    def _file(self, path: str, tool: str) -> Path:
        """A file path inside the workspace; ToolInputError in ``safe_path``'s words if not."""
        try:
            return safe_path(path, self.root, f"{tool} path")
        except UnsafePath as exc:
            raise ToolInputError(str(exc), tool=tool) from None
        except (OSError, ValueError) as exc:  # a NUL byte, a name too long
            raise ToolInputError(f"{tool} path {path!r} is not a usable path: {exc}", tool=tool) from None

    def _directory(self, path: str, tool: str) -> Path:
        """An existing folder inside the workspace; ToolInputError if not."""
        try:
            target = (self.root / path).resolve()
        except (OSError, ValueError) as exc:
            raise ToolInputError(f"{tool} path {path!r} is not a usable path: {exc}", tool=tool) from None
        if not self._inside(target):
            self._file(path, tool)  # refuses it, in the one wording for a path that leaves the workspace
        if not target.is_dir():
            what = "a file, not a folder" if target.exists() else "not a folder in the working directory"
            raise ToolInputError(f"{tool} path {path!r} is {what}; list_files shows what is there", tool=tool)
        return target

    def _inside(self, path: Path) -> bool:
        """Whether ``path``, its symlinks followed, is in the workspace."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return False
        return resolved == self.root or self.root in resolved.parents

    def _shown(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _refuse_binary(self, target: Path, path: str, tool: str) -> None:
        """ToolInputError unless ``target`` is an existing regular file of text."""
        try:
            info = target.stat()
        except FileNotFoundError:
            raise ToolInputError(f"there is no file {path!r} in the working directory; list_files shows what "
                                 "is there", tool=tool) from None
        if not stat.S_ISREG(info.st_mode):
            raise ToolInputError(f"{path} is not a regular file", tool=tool)
        with open(target, "rb") as file:
            if b"\0" in file.read(_SNIFFED):
                raise ToolInputError(f"{path} is a binary file ({info.st_size:,} bytes); {tool} works on text "
                                     "files only", tool=tool)

    def _walk(self, start: Path) -> _Walk:
        return _Walk(self, start)


class _Walk:
    """``(path, is_folder)`` below ``start``, sorted, inside the workspace; ``cut`` once it has
    stopped at MAX_WALKED entries."""

    def __init__(self, workspace: Workspace, start: Path) -> None:
        self.workspace, self.start, self.cut = workspace, start, False

    def __iter__(self) -> Iterator[tuple[Path, bool]]:
        seen = 0
        for folder, folders, files in os.walk(self.start):  # symlinked folders are listed, not entered
            folders[:] = sorted(f for f in folders if f not in SKIPPED_FOLDERS)
            for name, is_folder in sorted([*((f, True) for f in folders), *((f, False) for f in files)]):
                seen += 1
                if seen > MAX_WALKED:
                    self.cut = True
                    return
                entry = Path(folder) / name
                if self.workspace._inside(entry):
                    yield entry, is_folder

    @property
    def note(self) -> list[str]:
        if not self.cut:
            return []
        return [f"[stopped after looking at {MAX_WALKED:,} files and folders: give a narrower path]"]


def _glob(pattern: str, tool: str) -> Callable[[Path, Path], bool]:
    """A test ``(path, folder) -> bool``: the name matches a pattern without "/", the path relative
    to the folder matches one with "/". ``*`` and ``?`` stay within a name, ``**`` spans folders;
    other characters (``[`` too) match themselves."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        else:
            char = pattern[index]
            parts.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
            index += 1
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise ToolInputError(f"pattern {pattern!r} must be relative to the folder, without '..'", tool=tool)
    regex = re.compile("".join(parts))
    whole_path = "/" in pattern
    return lambda path, folder: bool(regex.fullmatch(path.relative_to(folder).as_posix() if whole_path else path.name))
