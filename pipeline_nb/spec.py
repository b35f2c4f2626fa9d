"""Pipeline specs: YAML (or a dict) in, validated frozen dataclasses out.

Every problem raises PipelineSpecError with the YAML line:col and the step id,
before any step runs.
"""

from __future__ import annotations

import difflib
import os
import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ._schema import _describe, check_schema
from ._yaml import SourceMap, load_yaml
from .errors import Location, PipelineSpecError
from .templates import STEPS, Template, TemplateProblem, compile_template

TEMPLATE_KEYS = ("prompt", "system")


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
    key_locations: Mapping[str, Location] = field(default_factory=dict, repr=False, compare=False)
    block_locations: Mapping[str, Location] = field(default_factory=dict, repr=False, compare=False)
    """For keys written as block scalars (``|``, ``>``): where their text starts."""

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

    def step(self, step_id: str) -> StepSpec:
        return next(s for s in self.steps if s.id == step_id)

    def check_names(self, available: Container[str]) -> None:
        """Raise PipelineSpecError for a template name that nothing defines."""
        for step in self.steps:
            for key in TEMPLATE_KEYS:
                template = getattr(step, key)
                if template is None:
                    continue
                for name in sorted(template.names):
                    if name != STEPS and name not in self.vars and name not in available:
                        known = [*self.vars, *(available if isinstance(available, Iterable) else ())]
                        close = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=1)
                        hint = f"did you mean {close[0]!r}? " if close else ""
                        raise PipelineSpecError(
                            f"{key} uses {{{{ {name} }}}}, which is not defined",
                            location=step.where(key, template.lines.get(name)),
                            step_id=step.id,
                            hint=hint + f"define it in the kernel, under vars:, or with --var {name}=VALUE",
                        )


def load_spec(
    source: str | Path | Mapping[str, Any],
    *,
    name: str | None = None,
    line_offset: int = 0,
    source_name: str | None = None,
) -> PipelineSpec:
    """Load a spec from YAML text, a path to a YAML file, or a dict."""
    base_dir = None
    if isinstance(source, Mapping):
        data, smap = source, SourceMap(source_name or "<dict>")
    else:
        text, label = str(source), source_name or "<pipeline>"
        if isinstance(source, os.PathLike) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
            path = Path(text)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise PipelineSpecError(f"cannot read pipeline file: {exc.strerror}: {path}") from None
            label, base_dir = str(path), path.parent
        data, smap = load_yaml(text, source=label, line_offset=line_offset)
    return parse_spec(data, smap, name=name, base_dir=base_dir)


def parse_spec(
    data: Any, smap: SourceMap, *, name: str | None = None, base_dir: Path | None = None
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
    defaults = data.get("defaults", {})
    steps: list[StepSpec] = []
    seen: dict[str, int] = {}
    all_ids = [raw["id"] for raw in data["steps"]]
    for index, raw in enumerate(data["steps"]):
        step = _build_step(index, raw, defaults, smap)
        if step.id in seen:
            raise PipelineSpecError(
                f"duplicate step id {step.id!r} (first used by step {seen[step.id] + 1})",
                location=smap.locate(("steps", index, "id")),
                step_id=step.id,
                hint="give every step its own id",
            )
        seen[step.id] = index
        _check_refs(step, seen, all_ids)
        steps.append(step)
    return PipelineSpec(
        name=name or data.get("name") or "pipeline",
        description=data.get("description", ""),
        vars=dict(data.get("vars", {})),
        steps=tuple(steps),
        source=smap.source,
        base_dir=base_dir,
    )


def _build_step(index: int, raw: Mapping[str, Any], defaults: Mapping[str, Any], smap: SourceMap) -> StepSpec:
    step_id = raw["id"]
    merged = {**defaults, **raw}
    paths = {key: ("defaults", key) for key in defaults}
    paths.update({key: ("steps", index, key) for key in raw})
    locations = {key: smap.locate(path) for key, path in paths.items()}
    blocks = {key: smap.blocks[path] for key, path in paths.items() if path in smap.blocks}
    step_type = merged.get("type") or ("llm" if "prompt" in merged else None)
    here = smap.locate(("steps", index))
    if step_type is None:
        raise PipelineSpecError(
            "step has no type and no prompt", location=here, step_id=step_id,
            hint="add a prompt: for an llm step, or set type:",
        )
    if step_type == "llm" and "prompt" not in merged:
        raise PipelineSpecError(
            "llm step is missing 'prompt'", location=here, step_id=step_id,
            hint='add prompt: "..." to the step',
        )
    templates = {}
    for key in TEMPLATE_KEYS:
        if key in merged:
            try:
                templates[key] = compile_template(merged[key])
            except TemplateProblem as exc:
                where = locations[key]
                if where is not None:
                    where = _at_line(where, blocks.get(key), exc.line)
                raise PipelineSpecError(
                    f"bad template in {key}: {exc}", location=where, step_id=step_id,
                    hint="templates use {{ name }}; close every {{ and {%",
                ) from None
    plain = {k: v for k, v in merged.items() if k not in ("id", "type", *TEMPLATE_KEYS)}
    for key, value in plain.items():  # JSON Schema lets NaN through every bound
        if any(isinstance(v, float) and math.isnan(v) for v in (value if isinstance(value, list) else [value])):
            raise PipelineSpecError(f"{key} must not be NaN, got {value!r}", location=locations[key], step_id=step_id)
    for key in ("stop_sequences", "retry_backoff"):
        if key in plain:
            plain[key] = tuple(plain[key])
    return StepSpec(
        id=step_id, index=index, type=step_type, location=here,
        key_locations={k: v for k, v in locations.items() if v}, block_locations=blocks, **templates, **plain,
    )


def _check_refs(step: StepSpec, earlier: Mapping[str, int], all_ids: list[str]) -> None:
    for key in TEMPLATE_KEYS:
        template = getattr(step, key)
        for ref in template.step_refs if template else ():
            known = [s for s in earlier if s != step.id]
            hint = f"earlier steps: {', '.join(known)}" if known else "this is the first step"
            if ref == step.id:
                problem = "refers to its own result"
            elif ref in earlier:
                continue
            elif ref in all_ids:
                problem = f"refers to steps.{ref}, which runs after this step"
                hint = f"move step {ref!r} above step {step.id!r}" + (f"; {hint}" if known else "")
            else:
                problem = f"refers to steps.{ref}, which is not a step"
                close = difflib.get_close_matches(ref, known, n=1)
                hint = f"did you mean steps.{close[0]}? {hint}" if close else hint
            raise PipelineSpecError(
                f"{key} {problem}",
                location=step.where(key, template.lines.get(f"{STEPS}.{ref}")),
                step_id=step.id,
                hint=hint,
            )
