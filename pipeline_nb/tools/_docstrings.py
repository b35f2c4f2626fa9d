"""Reading a docstring: the prose that describes a tool, and the documentation of each parameter.

Three styles are understood, and may be mixed:

- Google: an ``Args:`` (``Arguments:``, ``Parameters:``, ``Attributes:``...) section with
  ``name (type): text`` entries, continued on more indented lines;
- numpy: a ``Parameters`` header underlined with dashes, ``name : type`` entries and their text
  indented below;
- reST: ``:param name: text`` (or ``:param type name: text``) fields.

The description is the prose before the first section (``Returns:``, ``Raises:``, ``:rtype:``,
a ``>>>`` example... also end it), not only its first paragraph: the model reads all of it,
and tool descriptions are the main thing it goes by.
"""

from __future__ import annotations

import inspect
import re

_PARAM_SECTIONS = frozenset({"args", "arguments", "parameters", "params", "keyword args", "keyword arguments",
                             "other parameters", "attributes"})
_SECTIONS = _PARAM_SECTIONS | {"returns", "return", "yields", "yield", "raises", "raise", "warns", "examples",
                               "example", "notes", "note", "see also", "warnings", "warning", "references", "todo",
                               "methods"}
_GOOGLE_HEADER = re.compile(r"(?P<title>[A-Za-z][A-Za-z ]*?)\s*:")
_UNDERLINE = re.compile(r"\s*-{3,}\s*")
_REST_FIELD = re.compile(r":(?P<kind>\w+)(?P<words>[^:]*):\s*(?P<text>.*)")
_REST_PARAM_KINDS = frozenset({"param", "parameter", "arg", "argument", "key", "keyword", "ivar", "var", "cvar"})
_GOOGLE_ENTRY = re.compile(r"\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:(?:\s+(?P<text>.*))?")
_NUMPY_ENTRY = re.compile(r"(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {parameter: its documentation})`` from a docstring (any indentation)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    notes: dict[str, list[str]] = {}
    prose_end = len(lines)
    style: str | None = None  # None: still in the prose; "google", "numpy", "rest", or "skip" (not parameters)
    header_indent = 0
    entry_indent: int | None = None
    current: list[str] = []  # the parameters whose text the next indented line continues
    index = 0
    while index < len(lines):
        line, stripped, indent = lines[index], lines[index].strip(), _indent(lines[index])
        following = lines[index + 1] if index + 1 < len(lines) else ""
        google = _GOOGLE_HEADER.fullmatch(stripped)
        rest = _REST_FIELD.fullmatch(stripped)
        if stripped and _UNDERLINE.fullmatch(following) and not _UNDERLINE.fullmatch(line):
            is_params = stripped.lower() in _PARAM_SECTIONS
            style, header_indent, entry_indent, current = ("numpy" if is_params else "skip"), indent, None, []
            prose_end = min(prose_end, index)
            index += 2
            continue
        if google and google["title"].lower() in _SECTIONS:
            is_params = google["title"].lower() in _PARAM_SECTIONS
            style, header_indent, entry_indent, current = ("google" if is_params else "skip"), indent, None, []
        elif rest:
            is_params = rest["kind"] in _REST_PARAM_KINDS and rest["words"].split()
            style, header_indent, current = ("rest" if is_params else "skip"), indent, []
            if is_params:
                current = [rest["words"].split()[-1]]
                notes[current[0]] = [rest["text"]]
        elif stripped.startswith(">>>"):
            style, current = "skip", []
        elif style is None or not stripped:
            pass  # prose, or a blank line inside a section: the entry may go on after it
        elif indent <= header_indent and style != "numpy":
            style, current = "skip", []  # back at the section's level: prose after the sections
        elif style == "google" and (entry_indent is None or indent <= entry_indent):
            entry = _GOOGLE_ENTRY.fullmatch(stripped)
            entry_indent, current = indent, [entry["name"]] if entry else []
            if entry:
                notes[entry["name"]] = [entry["text"] or ""]
        elif style == "numpy" and indent <= header_indent:
            entry = _NUMPY_ENTRY.fullmatch(stripped)
            current = [name.strip().lstrip("*") for name in entry["names"].split(",")] if entry else []
            for name in current:
                notes[name] = []
        else:
            for name in current:
                notes[name].append(stripped)
        if style is not None:
            prose_end = min(prose_end, index)
        index += 1
    description = "\n".join(lines[:prose_end]).strip()
    return description, {name: " ".join(" ".join(parts).split()) for name, parts in notes.items()}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
