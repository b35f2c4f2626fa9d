"""Pipeline specs: YAML (or a dict) in, validated frozen dataclasses out.

Every problem raises PipelineSpecError with the YAML line:col and the step id,
before any step runs.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._schema import _describe, check_schema
from ._yaml import SourceMap
from ._errors import Location, PipelineSpecError
from ._structured import schema_problem
from ._templates import STEPS, Template, TemplateProblem, compile_template
from ._values import Value, compile_value

TEMPLATE_KEYS = ("prompt", "system")
Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class StepSpec:
    """One step as written, with ``defaults`` merged in. ``None`` means unset."""

    id: str
    index: int
    type: str
    location: Location | None
    prompt: Template | None = None
    system: Template | None = None
    provider: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    stream: bool | None = None
    stream_handler: str | None = None
    save_as: str | None = None
    base_url: str | None = None
    mock_response: str | None = None
    mock_delay: float | None = None
    retries: int = 2
    retry_backoff: tuple[float, float] = (0.5, 8.0)
    retry_after_cap: float = 30.0
    timeout: float | None = None
    read_timeout: float | None = None
    continue_on_error: bool = False
    set_vars: Mapping[str, Value] = field(default_factory=dict)
    """``vars:`` of a set step."""
    call: str | None = None
    args: Value | None = None
    for_each: Value | None = None
    loop_var: str = "item"
    """``as:``, the name of the for_each item."""
    max_parallel: int = 4
    batch: bool = False
    """``batch:``: a for_each llm step sent as Message Batches."""
    batch_poll_interval: float = 10.0
    when: Value | None = None
    output_schema: Mapping[str, Any] | None = None
    system_cache: bool | str | None = None
    """``system: {text, cache}``: the system prompt is marked for prompt caching."""
    thinking: bool | Mapping[str, Any] | None = None
    effort: str | None = None
    cache: bool | str | None = None
    attachments: Value | None = None
    """Paths, ``{file: ...}`` mappings or objects (templated), sent with the prompt."""
    params: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    tools: tuple[str | Mapping[str, Any], ...] = ()
    """``tools:`` as written: names and mappings (resolved to Tools when the run is planned)."""
    tool_choice: str | None = None
    max_tool_rounds: int = 10
    tool_errors: str = "return"
    max_parallel_tools: int = 4
    workdir: str | None = None
    continue_from: str | None = None
    """``continue:``, the llm step whose conversation this one goes on with."""
    children: tuple[StepSpec, ...] = ()
    """``steps:`` of a parallel step."""
    file: str | None = None
    pipeline: Mapping[str, Any] | None = None
    inline: PipelineSpec | None = field(default=None, repr=False, compare=False)
    """``pipeline:`` parsed (checked with line:col when the parent is parsed)."""
    inputs: Value | None = None
    output_to_file: Template | None = None
    key_locations: Mapping[str, Location] = field(default_factory=dict, repr=False, compare=False)
    block_locations: Mapping[str, Location] = field(default_factory=dict, repr=False, compare=False)
    """For keys written as block scalars (``|``, ``>``): where their text starts."""

    def descendants(self) -> list[StepSpec]:
        """The children of a parallel step, theirs after them, in document order."""
        return [s for child in self.children for s in (child, *child.descendants())]

    def templates(self) -> list[tuple[str, Template]]:
        """Every template of this step (not its children), with the key it is under."""
        found = [(key, t) for key in ("prompt", "system", "output_to_file") if (t := getattr(self, key))]
        values = [("args", self.args), ("for_each", self.for_each), ("when", self.when), ("inputs", self.inputs),
                  ("attachments", self.attachments)]
        values += [("vars", v) for v in self.set_vars.values()]
        found += [(key, t) for key, value in values if value for t in value.templates]
        return found

    def step_refs(self) -> list[str]:
        """Ids of the steps this step reads (``steps.<id>`` and ``continue:``)."""
        refs = [ref for _, t in self.templates() for ref in t.step_refs]
        return refs + [self.continue_from] if self.continue_from else refs

    def where(self, key: str, line: int | None = None) -> Location | None:
        """Location of ``key`` in this step (or in defaults), else of the step;
        with ``line``, of that 1-based line of the key's text."""
        where = self.key_locations.get(key)
        if where is None:
            return self.location
        return _at_line(where, self.block_locations.get(key), line)


def _at_line(where: Location, block: Location | None, line: int | None) -> Location:
    """Line ``line`` of a string value at ``where`` (exact for ``|`` blocks, close for others)."""
    if line is None:
        return where
    if block is not None:
        return Location(block.source, block.line + max(line, 1) - 1, block.col)
    if line > 1:
        return Location(where.source, where.line + line - 1, 1)
    return where


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline."""

    name: str
    steps: tuple[StepSpec, ...]
    description: str = ""
    vars: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<pipeline>"
    base_dir: Path | None = None
    pricing: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    cassette: str | None = None
    cassette_mode: str | None = None
    cassette_at: Location | None = field(default=None, compare=False, repr=False)

    def step(self, step_id: str) -> StepSpec:
        return next(s for s in self.all_steps() if s.id == step_id)

    def all_steps(self) -> list[StepSpec]:
        """Every step, parallel children included, in document order."""
        return [s for step in self.steps for s in (step, *step.descendants())]

    def check_names(self, available: Container[str]) -> None:
        """Raise PipelineSpecError for a template name that nothing defines.

        Defined are: ``available`` (--var and the kernel), ``vars:``, the vars of earlier
        set steps, ``steps``, and in a for_each step (but not its ``for_each`` and ``when``,
        which run before the items) its loop variable and ``loop``.
        """
        defined = {STEPS, *self.vars}
        for step in self.all_steps():
            own = {step.loop_var, "loop"} if step.for_each is not None else set()
            for key, template in step.templates():
                scope = defined if key in ("for_each", "when") else defined | own  # both run before the items
                for name in sorted(template.names):
                    if name not in scope and name not in available:
                        known = [*scope, *(available if isinstance(available, Iterable) else ())]
                        close = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=1)
                        hint = f"did you mean {close[0]!r}? " if close else ""
                        hint += f"define it in the kernel, under vars:, or with --var {name}=VALUE"
                        if name in own:
                            hint = f"{key} is evaluated once, before the items: it cannot use {name}"
                        elif name == "loop":
                            hint = "loop (loop.index, loop.length) exists only in a for_each step"
                        raise PipelineSpecError(
                            f"{key} uses {{{{ {name} }}}}, which is not defined",
                            location=step.where(key, template.lines.get(name)), step_id=step.id, hint=hint,
                        )
            defined |= set(step.set_vars)


def parse_spec(
    data: Any, smap: SourceMap, *, name: str | None = None, default_name: str = "pipeline",
    base_dir: Path | None = None,
) -> PipelineSpec:
    """Validate loaded data against the schema and the reference rules."""
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else _describe(data)
        hint = "start with 'steps:' followed by '  - id: first' and '    prompt: ...'"
        if isinstance(data, str) and "\n" not in data.strip():
            hint = "to run a file, pass a pathlib.Path or a name ending in .yaml; " + hint
        raise PipelineSpecError(
            f"a pipeline must be a mapping with a 'steps' list, got {got}",
            location=smap.locate(()) or Location(smap.source, 1 + smap.line_offset, 1), hint=hint,
        )
    check_schema(data, smap)
    defaults = dict(data.get("defaults", {}))
    pricing = defaults.pop("pricing", {})
    cassette, cassette_mode = defaults.pop("cassette", None), defaults.pop("cassette_mode", None)
    builder = _StepBuilder(defaults, smap, base_dir)
    steps = tuple(builder.build(raw, ("steps", index)) for index, raw in enumerate(data["steps"]))
    builder.check_refs(steps)
    return PipelineSpec(
        name=name or data.get("name") or default_name,
        description=data.get("description", ""),
        vars=dict(data.get("vars", {})),
        steps=steps,
        source=smap.source,
        base_dir=base_dir,
        pricing=pricing,
        cassette=cassette,
        cassette_mode=cassette_mode,
        cassette_at=smap.locate(("defaults", "cassette")),
    )


_RENAMED = {"vars": "set_vars", "as": "loop_var", "continue": "continue_from", "steps": "children"}
_INFERRED = (("prompt", "llm"), ("call", "python"), ("steps", "parallel"), ("file", "pipeline"),
             ("pipeline", "pipeline"), ("vars", "set"))
_REQUIRED = {"llm": ("prompt",), "python": ("call",), "parallel": ("steps",), "set": ("vars",)}
_EXPRESSIONS = ("for_each", "when")
_ONLY_FOR = {"prompt": ("llm",), "system": ("llm",), "output_schema": ("llm",), "continue": ("llm",),
             "batch": ("llm",), "batch_poll_interval": ("llm",), "thinking": ("llm",), "effort": ("llm",),
             "cache": ("llm",), "attachments": ("llm",), "params": ("llm",), "extra_body": ("llm",),
             "tools": ("llm",), "tool_choice": ("llm",), "max_tool_rounds": ("llm",), "tool_errors": ("llm",),
             "max_parallel_tools": ("llm",), "workdir": ("llm",),
             "call": ("python",), "args": ("python",), "vars": ("set",), "steps": ("parallel",),
             "file": ("pipeline",), "pipeline": ("pipeline",), "inputs": ("pipeline",)}
"""Keys that mean something only for these step types (checked where a step writes them)."""


class _StepBuilder:
    """Builds StepSpecs (children included) and checks ids and references across them."""

    def __init__(self, defaults: Mapping[str, Any], smap: SourceMap, base_dir: Path | None = None) -> None:
        self.defaults, self.smap, self.base_dir = defaults, smap, base_dir
        self.order: list[StepSpec] = []
        self.seen: dict[str, Path_] = {}

    def build(self, raw: Mapping[str, Any], path: Path_) -> StepSpec:
        smap, step_id = self.smap, raw["id"]
        if step_id in self.seen:
            first = self.seen[step_id]
            raise PipelineSpecError(
                f"duplicate step id {step_id!r} (first used by step {first[-1] + 1})",
                location=smap.locate(path + ("id",)), step_id=step_id, hint="give every step its own id",
            )
        self.seen[step_id] = path
        merged = {**self.defaults, **raw}
        paths = {key: ("defaults", key) for key in self.defaults}
        paths.update({key: path + (key,) for key in raw})
        locations = {key: smap.locate(p) for key, p in paths.items()}
        blocks = {key: smap.blocks[p] for key, p in paths.items() if p in smap.blocks}
        here = smap.locate(path)
        step_type = merged.get("type") or next((t for key, t in _INFERRED if key in raw), None)
        if step_type is None:
            raise PipelineSpecError(
                "step has no type and no prompt", location=here, step_id=step_id,
                hint="add a prompt: for an llm step, or set type: (set, python, parallel, pipeline)",
            )
        for key in _REQUIRED.get(step_type, ()):
            if key not in merged:
                raise PipelineSpecError(f"{step_type} step is missing {key!r}", location=here, step_id=step_id,
                                        hint=f"add {key}: to the step")
        if step_type == "pipeline" and ("file" in raw) == ("pipeline" in raw):
            raise PipelineSpecError("pipeline step needs exactly one of 'file' and 'pipeline'", location=here,
                                    step_id=step_id, hint="file: child.yaml, or pipeline: {steps: [...]}")
        self._check_applies(raw, step_type, locations, step_id)
        fields: dict[str, Any] = {}
        if step_type == "pipeline" and "pipeline" in raw:  # checked now, with line:col
            fields["inline"] = parse_spec(raw["pipeline"], _sub_map(smap, path + ("pipeline",)), base_dir=self.base_dir)
        for key, value in merged.items():
            if key in ("id", "type") or (key == "steps" and step_type != "parallel"):
                continue
            where = locations[key]
            try:
                field_value = self._field(key, value, path)
                if key == "system" and isinstance(field_value, tuple):
                    field_value, fields["system_cache"] = field_value
                fields[_RENAMED.get(key, key)] = field_value
            except TemplateProblem as exc:
                where = _at_line(where, blocks.get(key), exc.line) if where else None
                syntax = not str(exc).startswith(("refused by the template sandbox", "the template nests"))
                raise PipelineSpecError(f"bad template in {key}: {exc}", location=where, step_id=step_id,
                                        hint="templates use {{ name }}; close every {{ and {%" if syntax else None,
                                        ) from None
            if key == "output_schema" and (problem := schema_problem(value)):
                raise PipelineSpecError(problem, location=where, step_id=step_id)
            if any(isinstance(v, float) and math.isnan(v) for v in (value if isinstance(value, list) else [value])):
                raise PipelineSpecError(f"{key} must not be NaN, got {value!r}", location=where, step_id=step_id)
        step = StepSpec(
            id=step_id, index=path[-1], type=step_type, location=here,
            key_locations={k: v for k, v in locations.items() if v}, block_locations=blocks, **fields,
        )
        self.order.append(step)
        return step

    def _check_applies(self, raw: Mapping[str, Any], step_type: str, locations: Mapping[str, Any],
                       step_id: str) -> None:
        """A key the step writes that its type ignores is an error, not a silent no-op."""
        for key in raw:
            types = _ONLY_FOR.get(key)
            if types and step_type not in types:
                article = "an" if step_type == "llm" else "a"
                raise PipelineSpecError(f"{key!r} does not apply to {article} {step_type} step",
                                        location=locations[key], step_id=step_id,
                                        hint=f"{key}: is for {' and '.join(types)} steps")
        for key in ("as", "max_parallel", "batch"):
            if key in raw and "for_each" not in raw and not (key == "max_parallel" and step_type == "parallel"):
                raise PipelineSpecError(f"{key!r} needs for_each", location=locations[key], step_id=step_id,
                                        hint=f"add for_each: <list>, or remove {key}:")
        for key in ("tool_choice", "max_tool_rounds", "tool_errors", "max_parallel_tools", "workdir"):
            if key in raw and "tools" not in raw:
                raise PipelineSpecError(f"{key!r} needs tools", location=locations[key], step_id=step_id,
                                        hint=f"add tools: [...] to the step, or remove {key}:")
        if raw.get("batch") and raw.get("tools"):
            raise PipelineSpecError("a batch step cannot use tools", location=locations["tools"], step_id=step_id,
                                    hint="a batch sends each request once and cannot run a tool loop; "
                                         "remove batch: true (or tools:)")
        if raw.get("batch") and raw.get("stream"):
            raise PipelineSpecError("a batch step cannot stream", location=locations["stream"], step_id=step_id,
                                    hint="batches return whole replies; remove stream: true (or batch: true)")

    def _field(self, key: str, value: Any, path: Path_) -> Any:
        if key == "system" and isinstance(value, Mapping):  # {text: ..., cache: true}: the text, and a mark
            return compile_template(value["text"]), value.get("cache")
        if key in TEMPLATE_KEYS or key == "output_to_file":
            return compile_template(value)
        if key in _EXPRESSIONS:
            return compile_value(value, expression=True)
        if key in ("args", "inputs", "attachments"):
            return compile_value(value)
        if key == "vars":
            return {name: compile_value(item) for name, item in value.items()}
        if key == "steps":
            return tuple(self.build(child, path + ("steps", i)) for i, child in enumerate(value))
        if key in ("stop_sequences", "retry_backoff", "tools"):
            return tuple(value)
        return value

    def check_refs(self, steps: tuple[StepSpec, ...]) -> None:
        """Every ``steps.<id>`` names an earlier step (a parallel step's children count after it)."""
        earlier: list[str] = []
        all_ids = list(self.seen)
        for step in steps:
            for member in (*step.descendants(), step):
                self._check_step_refs(member, earlier, all_ids)
            earlier += [step.id, *(c.id for c in step.descendants())]

    def _check_step_refs(self, step: StepSpec, earlier: list[str], all_ids: list[str]) -> None:
        keyed = [(key, t, ref) for key, t in step.templates() for ref in t.step_refs]
        if step.continue_from:
            keyed.append(("continue", None, step.continue_from))
        for key, template, ref in keyed:
            known = [s for s in earlier if s != step.id]
            hint = f"earlier steps: {', '.join(known)}" if known else "this is the first step"
            if ref == step.id:
                problem = "refers to its own result"
            elif ref in earlier:
                target = self._step(ref)
                if key == "continue" and target.type != "llm":
                    problem = f"continues step {ref!r}, which is not an llm step"
                elif key == "continue" and target.for_each is not None:
                    problem = f"continues step {ref!r}, which runs for_each (one conversation per item)"
                    hint = "continue a step without for_each"
                else:
                    continue
            elif (parent := self._parallel_parent(step.id)) and ref in (c.id for c in parent.children):
                problem = f"refers to steps.{ref}, which runs in parallel with this step (in {parent.id!r})"
                hint = f"move the step that uses it after parallel step {parent.id!r}"
            elif ref in all_ids:
                problem = f"refers to steps.{ref}, which runs after this step"
                hint = f"move step {ref!r} above step {step.id!r}" + (f"; {hint}" if known else "")
            else:
                problem = f"refers to steps.{ref}, which is not a step"
                close = difflib.get_close_matches(ref, known, n=1)
                hint = f"did you mean steps.{close[0]}? {hint}" if close else hint
            line = template.lines.get(f"{STEPS}.{ref}") if template else None
            raise PipelineSpecError(f"{key} {problem}", location=step.where(key, line), step_id=step.id, hint=hint)

    def _step(self, step_id: str) -> StepSpec:
        return next(s for s in self.order if s.id == step_id)

    def _parallel_parent(self, step_id: str) -> StepSpec | None:
        return next((s for s in self.order if any(c.id == step_id for c in s.children)), None)


def _sub_map(smap: SourceMap, prefix: Path_) -> SourceMap:
    """The part of ``smap`` under ``prefix``, with paths relative to it (for an inline pipeline)."""
    n = len(prefix)

    def under(table: Mapping[Path_, Location]) -> dict[Path_, Location]:
        return {path[n:]: loc for path, loc in table.items() if path[:n] == prefix}

    return SourceMap(smap.source, smap.line_offset, under(smap.values), under(smap.keys), under(smap.blocks))

