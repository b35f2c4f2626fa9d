"""Safe YAML loading that remembers where every key and value came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Location, PipelineSpecError

Path = tuple[Any, ...]


@dataclass
class SourceMap:
    """Locations of the values (and mapping keys) of a loaded document, by path.

    ``blocks`` holds, for block scalars (``|`` and ``>``), where their first text
    line starts, so a line within the text can be mapped back to the file.
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


def load_yaml(text: str, *, source: str = "<pipeline>", line_offset: int = 0) -> tuple[Any, SourceMap]:
    """Load one YAML document safely and return it with its source map."""
    smap = SourceMap(source, line_offset)
    try:
        loader = yaml.SafeLoader(text)
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
        return _construct(loader, node, (), smap, lines, set()), smap
    except RecursionError:
        raise PipelineSpecError("invalid YAML: nested too deeply", location=Location(source, 1 + line_offset, 1)) from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, text, lines, smap) from None
    except yaml.YAMLError as exc:
        raise PipelineSpecError(f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, text: str, lines: list[str], smap: SourceMap) -> PipelineSpecError:
    """A YAML syntax error as a PipelineSpecError pointing where the fix goes."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    message, hint = f"invalid YAML: {problem}", None
    if "\t" in text and "\\t" in problem:
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


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, path: Path, smap: SourceMap, lines: list[str], open_: set[int]
) -> Any:
    """Build the value of ``node``; ``open_`` holds the collections being built, to catch alias loops."""
    smap.values[path] = smap._mark(node.start_mark)
    if isinstance(node, yaml.CollectionNode):
        if node.tag not in _PLAIN_TAGS:
            raise PipelineSpecError(
                f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')!r} is not allowed in a pipeline",
                location=smap._mark(node.start_mark), hint="write plain mappings and lists, without tags",
            )
        if id(node) in open_:
            raise PipelineSpecError("invalid YAML: an alias refers to a value that contains it",
                                    location=smap._mark(node.start_mark))
        open_ = open_ | {id(node)}
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise PipelineSpecError(
                    f"mapping keys must be plain strings, not {type(key).__name__}",
                    location=smap._mark(key_node.start_mark),
                )
            if key in result:
                raise PipelineSpecError(
                    f"duplicate key {key!r}",
                    location=smap._mark(key_node.start_mark),
                    hint="each key may appear once per mapping",
                )
            smap.keys[path + (key,)] = smap._mark(key_node.start_mark)
            result[key] = _construct(loader, value_node, path + (key,), smap, lines, open_)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, path + (i,), smap, lines, open_) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        first = node.start_mark.line + 1  # block text starts on the line after the indicator
        body = next((text for text in lines[first:] if text.strip()), "")
        indent = len(body) - len(body.lstrip(" "))
        smap.blocks[path] = Location(smap.source, first + 1 + smap.line_offset, indent + 1)
    return loader.construct_object(node, deep=True)
