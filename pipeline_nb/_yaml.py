"""Safe YAML loading that remembers where every key and value came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Location, PipelineSpecError

Path = tuple[Any, ...]


@dataclass
class SourceMap:
    """Locations of the values (and mapping keys) of a loaded document, by path."""

    source: str
    line_offset: int = 0
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)

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
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, smap
        return _construct(loader, node, (), smap), smap
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        hint = None
        if "\t" in text and "\\t" in problem:
            hint = "YAML indents with spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = 'quote values that contain ": ", e.g. prompt: "Note: ..."'
        location = smap._mark(mark) if mark else None
        raise PipelineSpecError(f"invalid YAML: {problem}", location=location, hint=hint) from None
    except yaml.YAMLError as exc:
        raise PipelineSpecError(f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, smap: SourceMap) -> Any:
    smap.values[path] = smap._mark(node.start_mark)
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
            result[key] = _construct(loader, value_node, path + (key,), smap)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, path + (i,), smap) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
