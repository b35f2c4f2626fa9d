"""Building StepSpecs from a pipeline's ``steps:``: defaults merged in, keys checked against the
step's type, templates compiled, ids and ``steps.<id>`` references checked, all with line:col."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import Location, PipelineSpecError
from ._expect_spec import parse_expectations
from ._matrix_spec import TEMPLATED, check_matrix
from ._schema import step_keys
from ._spec import TEMPLATE_KEYS, Path_, StepSpec, _at_line, parse_spec
from ._structured import schema_problem
from ._templates import STEPS, TemplateProblem, compile_template
from ._values import compile_value
from ._yaml import SourceMap

_RENAMED = {"vars": "set_vars", "as": "loop_var", "continue": "continue_from", "steps": "children",
            "while": "while_expr"}
_INFERRED = (("prompt", "llm"), ("call", "python"), ("steps", "parallel"), ("file", "pipeline"),
             ("pipeline", "pipeline"), ("vars", "set"))
_REQUIRED = {"llm": ("prompt",), "python": ("call",), "parallel": ("steps",), "set": ("vars",)}
_EXPRESSIONS = ("for_each", "when", "while")
_ONLY_FOR = {"prompt": ("llm",), "system": ("llm",), "output_schema": ("llm",), "continue": ("llm",),
             "batch": ("llm",), "batch_poll_interval": ("llm",), "thinking": ("llm",), "effort": ("llm",),
             "cache": ("llm",), "attachments": ("llm",), "params": ("llm",), "extra_body": ("llm",),
             "tools": ("llm",), "tool_choice": ("llm",), "max_tool_rounds": ("llm",), "tool_errors": ("llm",),
             "max_parallel_tools": ("llm",), "workdir": ("llm",), "fallback_model": ("llm",),
             "call": ("python",), "args": ("python",), "vars": ("set",), "steps": ("parallel",),
             "file": ("pipeline",), "pipeline": ("pipeline",), "inputs": ("pipeline",), "repeat": ("llm",),
             "matrix": ("llm", "python", "pipeline"), "while": ("pipeline",), "max_iterations": ("pipeline",)}
"""Keys that mean something only for these step types (checked where a step writes them)."""


class StepBuilder:
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
        if "expect" in raw:
            fields["expect"] = parse_expectations(raw["expect"], smap, path + ("expect",), step_id)
        if "matrix" in raw:
            check_matrix(raw["matrix"], raw, smap, path + ("matrix",), step_id, step_keys())
            fields["matrix"] = {key: tuple(values) for key, values in raw["matrix"].items()}
        for key in TEMPLATED:
            if "matrix" not in raw and isinstance(merged.get(key), str) and "{{" in merged[key]:
                raise PipelineSpecError(f"{key} is a template, which only a matrix step may be", location=locations[key],
                                        step_id=step_id, hint=f"write the {key} out, or vary it with matrix: "
                                                              f"{{{key}: [...]}}")
        for key, value in merged.items():
            if key in ("id", "type", "expect", "matrix") or (key == "steps" and step_type != "parallel"):
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
            spread = step_type == "parallel" or "repeat" in raw or "matrix" in raw  # its parts run concurrently too
            if key in raw and "for_each" not in raw and not (key == "max_parallel" and spread):
                raise PipelineSpecError(f"{key!r} needs for_each", location=locations[key], step_id=step_id,
                                        hint=f"add for_each: <list>, or remove {key}:")
        if ("while" in raw) != ("max_iterations" in raw):
            key = "while" if "while" in raw else "max_iterations"
            raise PipelineSpecError(f"{key!r} needs {'max_iterations' if key == 'while' else 'while'}",
                                    location=locations[key], step_id=step_id,
                                    hint="a loop is bounded: write both while: <condition> and max_iterations: N")
        if "while" in raw and ("for_each" in raw or "matrix" in raw):
            raise PipelineSpecError("a while step cannot also have for_each or matrix", location=locations["while"],
                                    step_id=step_id, hint="nest one in the other's pipeline")
        if "on_fail" in raw and "expect" not in raw:
            raise PipelineSpecError("'on_fail' needs expect", location=locations["on_fail"], step_id=step_id,
                                    hint="add expect: [...] to the step, or remove on_fail:")
        if raw.get("batch") and raw.get("repeat", 1) > 1:
            raise PipelineSpecError("a batch step cannot repeat", location=locations["repeat"], step_id=step_id,
                                    hint="remove batch: true to sample each item repeat: times, or remove repeat:")
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
        if key == "steps":
            return tuple(self.build(child, path + ("steps", i)) for i, child in enumerate(value))
        return _converted(key, value)

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


def _converted(key: str, value: Any) -> Any:
    """A key's YAML value as its StepSpec field holds it (templates compiled, lists as tuples);
    ``system`` as (template, cache mark) when written as a mapping."""
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
    if key in ("stop_sequences", "retry_backoff", "tools"):
        return tuple(value)
    return value


def step_field(key: str, value: Any) -> tuple[str, Any]:
    """The StepSpec field that step key ``key`` sets, and ``value`` converted for it; for ``system``,
    the fields it sets (``system`` and ``system_cache``) as a dict."""
    converted = _converted(key, value)
    if key == "system":
        text, cache = converted if isinstance(converted, tuple) else (converted, None)
        return "system", {"system": text, "system_cache": cache}
    return _RENAMED.get(key, key), converted


def _sub_map(smap: SourceMap, prefix: Path_) -> SourceMap:
    """The part of ``smap`` under ``prefix``, with paths relative to it (for an inline pipeline)."""
    n = len(prefix)

    def under(table: Mapping[Path_, Location]) -> dict[Path_, Location]:
        return {path[n:]: loc for path, loc in table.items() if path[:n] == prefix}

    return SourceMap(smap.source, smap.line_offset, under(smap.values), under(smap.keys), under(smap.blocks))

