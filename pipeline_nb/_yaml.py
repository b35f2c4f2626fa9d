"""Safe YAML loading that remembers where every key and value came from.

Aliases share their value, as in ``yaml.safe_load``: each node is built once, and an
alias returns the very object its anchor built. The document's *expanded* size, every
alias counted as a full copy of what it refers to, is capped at ``MAX_EXPANDED_NODES``
while the text is composed: an alias bomb (anchors of lists of aliases of anchors...)
stops at the alias that crosses the cap, before anything (the schema check, templates,
a repr) walks the expanded tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ._errors import Location, PipelineSpecError

Path = tuple[Any, ...]

MAX_EXPANDED_NODES = 100_000
"""The most values (scalars, lists and mappings, keys included) a document may hold,
every alias counted as a full copy of what it refers to."""


@dataclass
class SourceMap:
    """Locations of the values (and mapping keys) of a loaded document, by path.

    ``blocks`` holds, for block scalars (``|`` and ``>``), where their first text
    line starts, so a line within the text can be mapped back to the file.
    A value shared through aliases is mapped under the first path that built it;
    under its other paths, ``locate`` finds the alias.
    """

    source: str
    line_offset: int = 0
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)
    blocks: dict[Path, Location] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Location | None:
        """The location of ``path``, or of its nearest located parent."""
        table = self.keys if key else self.values
        path = tuple(path)
        while True:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return None
            path = path[:-1]

    def _mark(self, mark: yaml.Mark) -> Location:
        return Location(self.source, mark.line + 1 + self.line_offset, mark.column + 1)


def load_yaml(
    text: str, *, source: str = "<pipeline>", line_offset: int = 0, quote: bool = True,
) -> tuple[Any, SourceMap]:
    """Load one YAML document safely and return it with its source map.

    Without ``quote``, error messages name nothing from the text (no keys, tags or
    alias names): for a file that may not be a pipeline, whose content must not leak.
    """
    smap = SourceMap(source, line_offset)
    try:
        loader = _CountingLoader(text, smap)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        before = text[: exc.position]
        where = Location(source, before.count("\n") + 1 + line_offset, len(before) - before.rfind("\n"))
        raise PipelineSpecError(
            f"invalid YAML: the character U+{exc.character:04X} is not allowed", location=where,
            hint='remove it, or write it as an escape inside double quotes, e.g. "\\u0007"',
        ) from None
    lines = text.splitlines()
    try:
        node = loader.get_single_node()
        if node is None:
            return None, smap
        return _Builder(loader, smap, lines, quote).build(node, ()), smap
    except RecursionError:
        raise PipelineSpecError("invalid YAML: nested too deeply", location=Location(source, 1 + line_offset, 1)) from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, text, lines, smap, quote) from None
    except yaml.YAMLError as exc:
        raise PipelineSpecError(f"invalid YAML: {exc}" if quote else "invalid YAML") from None
    finally:
        loader.dispose()


class _CountingLoader(yaml.SafeLoader):
    """A SafeLoader that counts the expanded size of the document as the composer takes its events.

    Counting in ``get_event`` rather than ``compose_node`` adds no stack frame per level of nesting.
    """

    def __init__(self, text: str, smap: SourceMap) -> None:
        super().__init__(text)
        self.smap = smap
        self.expanded = 0
        self.sizes: dict[str, int] = {}
        """Expanded size of each anchored node, by anchor name (what an alias to it adds)."""
        self.started: list[tuple[str | None, int]] = []
        """For each collection being composed: its anchor, and the count before it began."""

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        if isinstance(event, yaml.AliasEvent):
            # an alias to a collection still open (a loop) has no size yet; the builder refuses it
            self._count(self.sizes.get(event.anchor, 1), event.start_mark, alias=True)
        elif isinstance(event, yaml.ScalarEvent):
            self._count(1, event.start_mark, alias=False)
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            self.started.append((event.anchor, self.expanded))
            self._count(1, event.start_mark, alias=False)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, before = self.started.pop()
            if anchor is not None:
                self.sizes[anchor] = self.expanded - before
        return event

    def _count(self, size: int, mark: yaml.Mark, *, alias: bool) -> None:
        self.expanded += size
        if self.expanded <= MAX_EXPANDED_NODES:
            return
        if alias:
            raise PipelineSpecError(
                f"invalid YAML: this alias takes the document past {MAX_EXPANDED_NODES:,} values "
                "(the size limit of a pipeline, where every alias counts as a full copy of what it refers to)",
                location=self.smap._mark(mark),
                hint="aliases inside anchors that are aliased again multiply; "
                     "write the repeated part once (e.g. under vars:) and use fewer levels of aliases",
            )
        raise PipelineSpecError(
            f"invalid YAML: the document holds more than {MAX_EXPANDED_NODES:,} values (the size limit of a pipeline)",
            location=self.smap._mark(mark),
            hint="split it into several pipeline files, run from a pipeline step with file:",
        )


def _yaml_error(
    exc: yaml.MarkedYAMLError, text: str, lines: list[str], smap: SourceMap, quote: bool,
) -> PipelineSpecError:
    """A YAML syntax error as a PipelineSpecError pointing where the fix goes."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if problem == "second occurrence" and exc.context:  # a duplicate anchor: the context says which
        problem = exc.context.split(";")[0]
    tab = "\t" in text and "\\t" in problem
    if not quote:
        problem = _without_names(problem)
    message, hint = f"invalid YAML: {problem}", None
    if tab:
        hint = "YAML indents with spaces, not tabs"
    elif "end of stream" in problem and exc.context and exc.context_mark is not None:
        mark = exc.context_mark  # where the unfinished thing began, not the end of the file
        if "quoted scalar" in exc.context:
            message = "invalid YAML: this quoted string is never closed"
            hint = "close the quote, or write long text as a block: prompt: | and the text indented below"
        else:
            message = f"invalid YAML: {problem} {exc.context}"
    elif "mapping values are not allowed" in problem and mark is not None:
        line = lines[mark.line] if mark.line < len(lines) else ""
        if ":" not in line[: mark.column]:
            hint = "this key is indented differently from the keys above it; keys of one mapping must line up"
        else:
            hint = 'quote values that contain ": ", e.g. prompt: "Note: ..."'
    elif "expected <block end>" in problem:
        hint = "check the indentation of this line: keys of one mapping must line up"
    return PipelineSpecError(message, location=smap._mark(mark) if mark else None, hint=hint)


_QUOTED = re.compile(r""" ?('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_NOT_A_NAME = re.compile(r"""^['"](?:.|\\[a-z0-9]+|<.*>)['"]$""")
"""What PyYAML quotes that is not a name from the text: one character ('\\t' included), a token kind ('<scalar>')."""


def _without_names(problem: str) -> str:
    """``problem`` without the names PyYAML quotes from the text (alias, anchor, tag)."""
    return _QUOTED.sub(lambda m: m[0] if _NOT_A_NAME.match(m[1]) else "", problem)


_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset({_TAG + "map", _TAG + "seq"})
_SCALAR_TAGS = frozenset(_TAG + name for name in ("null", "bool", "int", "float", "str", "binary", "timestamp"))
_MERGE, _VALUE = _TAG + "merge", _TAG + "value"
_KINDS = {_TAG + "int": "an integer", _TAG + "float": "a number", _TAG + "timestamp": "a date",
          _TAG + "bool": "a boolean", _TAG + "binary": "base64 data"}


class _Builder:
    """Builds the Python value of composed nodes, each node once, and fills the source map."""

    def __init__(self, loader: _CountingLoader, smap: SourceMap, lines: list[str], quote: bool) -> None:
        self.loader, self.smap, self.lines, self.quote = loader, smap, lines, quote
        self.built: dict[int, Any] = {}
        """The value of each collection node built so far, by id: what an alias to it returns."""
        self.first_path: dict[int, Path] = {}
        """Where each built collection was mapped (its locations are under this path)."""
        self.open: set[int] = set()
        """Collections being built: an alias to one of them is a loop."""
        self.block_starts: dict[int, Location] = {}

    def build(self, node: yaml.Node, path: Path) -> Any:
        where = self.smap._mark(node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            self.smap.values[path] = where
            if node.style in ("|", ">"):
                self.smap.blocks[path] = self._block_start(node)
            return self._scalar(node)
        if id(node) in self.built:  # an alias: the same object, mapped once under its first path
            self.smap.values[path] = where
            return self.built[id(node)]
        if id(node) in self.open:
            raise PipelineSpecError("invalid YAML: an alias refers to a value that contains it", location=where)
        if node.tag not in _PLAIN_TAGS:
            raise self._tag_error(node)
        self.smap.values[path] = where
        self.open.add(id(node))
        if isinstance(node, yaml.MappingNode):
            value: Any = self._mapping(node, path)
        else:
            value = [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        self.open.discard(id(node))
        self.built[id(node)], self.first_path[id(node)] = value, path
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        """Merged keys (``<<:``) first, then the mapping's own keys, which override them (as PyYAML does)."""
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(value_node, path, result)
        own: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node)
            if key in own:
                raise PipelineSpecError(
                    f"duplicate key {key!r}" if self.quote else "duplicate key",
                    location=self.smap._mark(key_node.start_mark), hint="each key may appear once per mapping",
                )
            own.add(key)
            self.smap.keys[path + (key,)] = self.smap._mark(key_node.start_mark)
            result[key] = self.build(value_node, path + (key,))
        return result

    def _merge(self, node: yaml.Node, path: Path, into: dict[Any, Any]) -> None:
        """Add the keys of ``<<: mapping`` (or of a list of mappings, the earlier ones winning) to ``into``."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not sources or not all(isinstance(source, yaml.MappingNode) for source in sources):
            raise PipelineSpecError(
                "invalid YAML: merging (<<:) needs a mapping or a list of mappings",
                location=self.smap._mark(node.start_mark), hint="write <<: *name, where &name marks a mapping",
            )
        for source in reversed(sources):
            merged = self.build(source, path + ("<<",))
            origin = self.first_path[id(source)]
            into.update(merged)
            for key in merged:  # each merged key is located where its mapping wrote it
                for table in (self.smap.values, self.smap.keys, self.smap.blocks):
                    if origin + (key,) in table:
                        table[path + (key,)] = table[origin + (key,)]

    def _key(self, node: yaml.Node) -> Any:
        key = self._scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(key, (str, int, float, bool)):
            kind = {yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}.get(type(node), type(key).__name__)
            braces = isinstance(node, yaml.MappingNode) and node.flow_style  # prompt: {{ topic }}, unquoted
            raise PipelineSpecError(f"mapping keys must be plain strings, not {kind}",
                                    location=self.smap._mark(node.start_mark),
                                    hint='a value that starts with {{ must be quoted, e.g. prompt: "{{ topic }}"'
                                    if braces else None)
        return key

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _VALUE:  # a plain "=": PyYAML has no constructor for it, but it is just text
            return node.value
        if node.tag not in _SCALAR_TAGS:
            raise self._tag_error(node)
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError):  # e.g. 2024-02-30, or !!int x: Python refuses the value
            raise PipelineSpecError(
                f"invalid YAML: this value is read as {_KINDS.get(node.tag, node.tag)}, but it is not a valid one",
                location=self.smap._mark(node.start_mark), hint='quote it to keep it as text, e.g. "..."',
            ) from None

    def _tag_error(self, node: yaml.Node) -> PipelineSpecError:
        tag = node.tag.replace(_TAG, "!!")
        named = f"YAML tag {tag!r}" if self.quote else "this YAML tag"
        return PipelineSpecError(f"{named} is not allowed in a pipeline", location=self.smap._mark(node.start_mark),
                                 hint="write plain values, mappings and lists, without tags")

    def _block_start(self, node: yaml.ScalarNode) -> Location:
        """Where the text of a ``|`` or ``>`` block starts: the line after the indicator, at its indent."""
        if id(node) not in self.block_starts:
            first = node.start_mark.line + 1
            lines = self.lines  # indexed, not sliced: a slice per block is quadratic in a file of many blocks
            index = next((i for i in range(first, len(lines)) if lines[i].strip()), None)
            body = lines[index] if index is not None else ""
            indent = len(body) - len(body.lstrip(" "))
            self.block_starts[id(node)] = Location(self.smap.source, first + 1 + self.smap.line_offset, indent + 1)
        return self.block_starts[id(node)]
