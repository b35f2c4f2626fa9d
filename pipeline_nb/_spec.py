"""Pipeline specs: YAML (or a dict) in, validated frozen dataclasses out.

Every problem raises PipelineSpecError with the YAML line:col and the step id,
before any step runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._expect_spec import Expectation
from ._mcp_spec import bind_servers, parse_mcp_servers
from ._schema import _describe, check_schema
from ._yaml import SourceMap
from ._errors import Location, PipelineSpecError
from ._templates import STEPS, Template, compile_template
from ._values import Value

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
    fallback_model: str | None = None
    """``fallback_model:``: the model a call that failed for its model's service is tried once more with."""
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
    while_expr: Value | None = None
    """``while:`` of a pipeline step: run its pipeline again while this holds (``loop``, ``last``)."""
    max_iterations: int | None = None
    output_to_file: Template | None = None
    expect: tuple[Expectation, ...] = ()
    """``expect:``, the checks of the step's output (of each item, sample and combination)."""
    on_fail: str = "warn"
    """``on_fail:``: a failed check warns (the step succeeds) or is an ``error`` (the step fails)."""
    repeat: int = 1
    """``repeat:``: how many samples of an llm step to take."""
    matrix: Mapping[str, tuple[Any, ...]] | None = None
    """``matrix:``: the values to combine, by key (None for a combination itself)."""
    matrix_values: Mapping[str, Any] | None = field(default=None, compare=False)
    """For one combination of a matrix step (see _matrix_spec.variants): its values."""
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
                  ("while", self.while_expr),
                  ("attachments", self.attachments)]
        values += [("vars", v) for v in self.set_vars.values()]
        values += [("expect", check.value) for check in self.expect]
        found += [(key, t) for key, value in values if value for t in value.templates]
        for key in ("prompt", "system"):  # a matrix may set them, as templates
            found += [("matrix", compile_template(v)) for v in (self.matrix or {}).get(key, ()) if isinstance(v, str)]
        return found

    @property
    def output_per_item(self) -> bool:
        """A for_each step whose ``output_to_file`` names the item: one file per item."""
        target = self.output_to_file
        return self.for_each is not None and target is not None and bool({self.loop_var, "loop"} & target.names)

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
    journal: str | None = None
    """``defaults.journal``: where this pipeline's runs are journaled (``off``: nowhere)."""
    max_cost: float | None = None
    """``defaults.max_cost``: the run's budget in USD."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What loading it read and ignored (a pipeline_ex file's runtime settings): its runs' warnings."""
    text: str | None = field(default=None, compare=False, repr=False)
    """The YAML it was loaded from (None for a dict), kept by the run journal."""

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
            own |= {"loop", "last"} if step.while_expr is not None else set()  # an iteration's number, outputs
            matrix = set(step.matrix or ())  # a combination's names: for_each runs once per combination
            for key, template in step.templates():
                scope = (defined if key == "when" else defined | matrix) | (set() if key in ("for_each", "when") else own)
                for name in sorted(template.names - template.optional):  # a default covers an optional one
                    if name not in scope and name not in available:
                        known = [*scope, *(available if isinstance(available, Iterable) else ())]
                        close = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=1)
                        hint = f"did you mean {close[0]!r}? " if close else ""
                        hint += f"define it in the kernel, under vars:, or with --var {name}=VALUE"
                        if name in own:
                            hint = f"{key} is evaluated once, before the items: it cannot use {name}"
                        elif name in matrix:
                            hint = f"when is evaluated once, before the matrix's combinations: it cannot use {name}"
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
    servers = parse_mcp_servers(data.get("mcp_servers"), smap, base_dir)
    defaults = dict(data.get("defaults", {}))
    pricing = defaults.pop("pricing", {})
    cassette, cassette_mode = defaults.pop("cassette", None), defaults.pop("cassette_mode", None)
    journal, max_cost = defaults.pop("journal", None), defaults.pop("max_cost", None)
    journal = "off" if journal is False else journal  # YAML reads a bare off as false
    from ._step_builder import StepBuilder  # it builds StepSpecs, and inline pipelines with parse_spec

    builder = StepBuilder(defaults, smap, base_dir)
    steps = tuple(builder.build(raw, ("steps", index)) for index, raw in enumerate(data["steps"]))
    builder.check_refs(steps)
    steps = bind_servers(steps, servers)
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
        journal=journal,
        max_cost=max_cost,
    )
