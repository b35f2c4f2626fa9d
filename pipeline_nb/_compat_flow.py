"""pipeline_ex's data and control steps: data_transform, file_ops, nested pipelines, test_echo.
A mixin of the compat translator: one method per step type, named after it.

- ``test_echo`` and ``file_ops`` become python steps calling ``pipeline_nb._compat_calls``.
- ``data_transform`` becomes a python step calling pipeline_ex's transformer, ported
  (``_compat_transform``), with its input and each join's right-hand data resolved by reference;
  what can be checked before running (operations, fields, conditions, functions) is checked here.
- ``pipeline`` becomes a ``pipeline`` step: ``pipeline_file`` is its ``file:`` (a pipeline_ex
  file is translated when it loads), an inline ``pipeline:`` is translated here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._compat_calls import FILE_OPERATIONS
from ._compat_refs import Expressions, Path_, _Target
from ._compat_loop import adopt, child_of
from ._compat_transform import AGGREGATES, EXPRESSIONS, OPERATIONS, OUTPUT_FORMATS, condition_problem

_CALLS = "pipeline_nb._compat_calls"
_NESTED_CONFIG_IGNORED = {"max_depth", "max_total_steps", "memory_limit_mb", "timeout_seconds", "workspace_enabled",
                          "cleanup_on_error"}
_OP_HINTS = {
    "filter": "write field == 'value' (==, !=, >=, <=, >, <, contains: one field, one value) or a field name alone",
    "map": "give mapping: {old: new} for field:'s values (without field: it is merged into each item), "
           "or expression: uppercase or lowercase with field:",
    "join": "a join has right_source: (previous_response:step), join_key: and, when it differs, left_field:",
    "sort": "a sort has field: and order: asc or desc",
    "group_by": "a group_by has field:",
}


class FlowSteps(Expressions):
    """Step types that translate here, by the keys each may have."""

    STEP_KEYS: dict[str, set[str]] = {
        "test_echo": {"value", "fail", "error_message"},
        "file_ops": {"operation", "source", "destination", "path", "files", "pattern", "format", "processor",
                     "replacement"},
        "data_transform": {"input_source", "operations", "output_field", "output_format", "lazy"},
        "pipeline": {"pipeline_file", "pipeline", "inputs", "config"},
        "while_loop": {"max_iterations", "steps", "timeout_seconds"},
    }
    """The keys of each step type this mixin translates (beside every step's name, type, condition
    and output_to_file)."""

    def typed(self, value: Any, at: Path_) -> Any:
        """A templated value: a string that is one ``{{ reference }}`` keeps the value's type, as
        pipeline_ex's type-preserving interpolation does; other strings are text."""
        if isinstance(value, str) and (whole := re.fullmatch(r"\s*\{\{([^{}]+)\}\}\s*", value)):
            expr = self.reference(whole[1].strip(), at, text=False)
            return f"{{{{ {expr} }}}}" if expr else ""
        if isinstance(value, list):
            return [self.typed(v, at + (i,)) for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            return {k: self.typed(v, at + (k,)) for k, v in value.items()}
        return self.value(value, at)

    def call(self, out: dict[str, Any], new: Path_, at: Path_, function: str, args: dict[str, Any]) -> _Target:
        self.put(out, new, "type", "python", at + ("type",))
        self.put(out, new, "call", f"{_CALLS}:{function}", at + ("type",))
        self.put(out, new, "args", args, at)
        self.origin.update({new + ("args", key): at + (key,) for key in args})
        return _Target(out["id"] or "", "value")

    def test_echo(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        args = {k: self.typed(raw[k], at + (k,)) for k in ("value", "fail", "error_message") if k in raw}
        return self.call(out, new, at, "echo", args)

    def file_ops(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        if raw.get("operation") not in FILE_OPERATIONS:
            self.problem(at + ("operation",) if "operation" in raw else at,
                         f"file_ops operation {raw.get('operation')!r} is not supported",
                         f"operations: {', '.join(FILE_OPERATIONS)}")
        args = {k: self.typed(v, at + (k,)) for k, v in raw.items() if k in FlowSteps.STEP_KEYS["file_ops"]}
        return self.call(out, new, at, "file_ops", args)

    # -- data_transform --

    def data_transform(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        field = raw.get("output_field", raw.get("name"))
        if not (isinstance(field, str) and field):
            self.problem(at + ("output_field",) if "output_field" in raw else at,
                         f"output_field {field!r} must be a name for the result")
            field = "result"
        source = self.source_expr(raw.get("input_source"), at + ("input_source",) if "input_source" in raw else at,
                                  "data_transform needs an input_source:")
        operations = raw.get("operations") or []
        if not isinstance(operations, list):
            self.problem(at + ("operations",), "operations must be a list")
            operations = []
        args: dict[str, Any] = {"input_source": f"{{{{ {source} }}}}", "output_field": field,
                                "operations": [self.transform_op(op, at + ("operations", i))
                                               for i, op in enumerate(operations)]}
        fmt = raw.get("output_format")
        if fmt is not None and fmt not in OUTPUT_FORMATS:
            self.problem(at + ("output_format",), f"output_format {fmt!r} is not supported", "json, string or count")
        elif fmt is not None:
            args["output_format"] = fmt
        if "lazy" in raw:
            self.note(at + ("lazy",), "data_transform lazy", "every operation runs on the whole list at once, as "
                      "pipeline_ex's transformer does without it")
        self.call(out, new, at, "data_transform", args)
        self.origin.update({new + ("args", "operations", i): at + ("operations", i) for i in range(len(operations))})
        # its value is {output_field: result}, read field by field as a set step's vars are (a "value"
        # target would take a leading "result" field for the whole value)
        return _Target(out["id"] or "", "set")

    def source_expr(self, source: Any, at: Path_, missing: str) -> str:
        """pipeline_ex's ``input_source`` (and a join's ``right_source``): ``previous_response:step[:field]``,
        ``context:name`` or a variable or step name, as an expression."""
        if not isinstance(source, str) or not source.strip():
            self.problem(at, f"{missing} previous_response:step, or a variable name")
            return "none"
        source = source.strip()
        if source.startswith("context:"):
            source = source[len("context:"):]
        return self.reference(source, at, text=False) or "none"

    def transform_op(self, op: Any, at: Path_) -> Any:
        """One operation, checked as far as it can be before running, its values templated (pipeline_ex
        interpolates a step's keys) and a join's right_source made the data it names."""
        kind = op.get("operation") if isinstance(op, Mapping) else None
        if not isinstance(op, Mapping) or kind not in OPERATIONS:
            self.problem(at + ("operation",) if isinstance(op, Mapping) and "operation" in op else at,
                         f"data_transform operation {kind!r} is not supported" if isinstance(op, Mapping)
                         else "an operation must be a mapping with operation:", f"operations: {', '.join(OPERATIONS)}")
            return {}
        for key in ("field", "left_field", "join_key"):
            if key in op and not (isinstance(op[key], str) and op[key].strip()):
                self.problem(at + (key,), f"{key} must be a field name (such as status or user.tier), got {op[key]!r}")
        needed = {"sort": "field", "group_by": "field", "join": "join_key", "filter": "condition"}.get(kind)
        if kind == "map" and "mapping" not in op:
            needed = "mapping" if "expression" not in op else "field"
        if needed and needed not in op:
            self.problem(at, f"{kind} needs {needed}:", _OP_HINTS[kind])
        if kind == "filter" and "condition" in op:
            self.condition_check(op["condition"], at + ("condition",))
        elif kind == "map":
            self.mapping_check(op, at)
        elif kind == "aggregate" and op.get("function", "sum") not in AGGREGATES:
            self.problem(at + ("function",), f"aggregate function {op.get('function')!r} is not supported",
                         f"functions: {', '.join(AGGREGATES)}")
        elif kind == "sort" and op.get("order", "asc") not in ("asc", "desc"):
            self.problem(at + ("order",), f"sort order {op.get('order')!r} is not supported", "asc or desc")
        translated = {k: self.typed(v, at + (k,)) for k, v in op.items() if k != "right_source"}
        if kind == "join":
            where = at + ("right_source",) if "right_source" in op else at
            right = self.source_expr(op.get("right_source"), where, "join needs a right_source:")
            translated["right_source"] = f"{{{{ {right} }}}}"
        return translated

    def condition_check(self, condition: Any, at: Path_) -> None:
        """A filter condition pipeline_ex would misread is refused (one templated at run time is taken as it comes)."""
        if not isinstance(condition, str):
            self.problem(at, f"filter condition must be text, got {condition!r}", _OP_HINTS["filter"])
        elif "{{" not in condition and (why := condition_problem(condition)):
            self.problem(at, f"filter condition {condition!r} is not supported: {why}", _OP_HINTS["filter"])

    def mapping_check(self, op: Mapping[str, Any], at: Path_) -> None:
        mapping = op.get("mapping")
        if "mapping" in op and not isinstance(mapping, Mapping):
            self.problem(at + ("mapping",), f"map mapping must be a mapping of values to new values, got {mapping!r}",
                         _OP_HINTS["map"])
        elif isinstance(mapping, Mapping):
            for key in mapping:
                if not isinstance(key, str):
                    self.problem(at + ("mapping", key), f"map mapping key {key!r} is not text, so it never matches: "
                                 "pipeline_ex looks up each value as text", f"quote it: \"{key}\"", key=True)
        elif "expression" in op and op["expression"] not in EXPRESSIONS:
            self.problem(at + ("expression",), f"map expression {op['expression']!r} is not supported",
                         f"expressions: {', '.join(EXPRESSIONS)}; or give mapping:")

    # -- nested pipelines --

    def pipeline(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        self.put(out, new, "type", "pipeline", at + ("type",))
        if ("pipeline_file" in raw) == ("pipeline" in raw):
            self.problem(at, "pipeline step needs exactly one of pipeline_file: and pipeline:")
        elif "pipeline_file" in raw:
            self.put(out, new, "file", self.nested_file(raw["pipeline_file"], at + ("pipeline_file",)),
                     at + ("pipeline_file",))
        else:
            self.put(out, new, "pipeline", self.inline(raw["pipeline"], at + ("pipeline",), new + ("pipeline",)),
                     at + ("pipeline",))
        if "inputs" in raw:
            if isinstance(raw["inputs"], Mapping):
                self.put(out, new, "inputs", self.typed(raw["inputs"], at + ("inputs",)), at + ("inputs",))
                for key in raw["inputs"]:
                    self.origin[new + ("inputs", key)] = at + ("inputs", key)
            else:
                self.problem(at + ("inputs",), "inputs must be a mapping of names to values")
        config = raw.get("config", {})
        if not isinstance(config, Mapping):
            self.problem(at + ("config",), "config must be a mapping")
        else:
            if config.get("inherit_context"):
                self.problem(at + ("config", "inherit_context"), "config.inherit_context is not supported",
                             "a nested pipeline sees only its inputs: pass what it needs in inputs:")
            self.check_keys({k: v for k, v in config.items() if k != "inherit_context"}, at + ("config",),
                            set(), "config", ignored=_NESTED_CONFIG_IGNORED)
        return _Target(out["id"] or "", "value")

    def while_loop(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        """A pipeline step with ``while:`` and ``max_iterations:`` whose pipeline is the body. What the body's
        set_variable steps set is carried into the next iteration, read by the condition, and after the loop
        is the last iteration's, as pipeline_ex's one state gives it; ``loop.iteration`` counts from 0."""
        self.put(out, new, "type", "pipeline", at + ("type",))
        limit = raw.get("max_iterations", 100)  # pipeline_ex's default; it allows at most 1,000
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            self.problem(at + ("max_iterations",), f"max_iterations must be 1 to 1000, got {limit!r}")
            limit = 1
        self.put(out, new, "max_iterations", limit, at + ("max_iterations",) if "max_iterations" in raw else at)
        body = raw.get("steps")
        if not isinstance(body, list) or not body:
            self.problem(at + ("steps",) if "steps" in raw else at, "while_loop needs a non-empty 'steps:' list")
            return _Target(out["id"] or "", "value")
        if isinstance(raw.get("timeout_seconds"), (int, float)) and raw["timeout_seconds"] > 0:
            self.put(out, new, "timeout", raw["timeout_seconds"], at + ("timeout_seconds",))
        child = child_of(self, loop_body=True)
        child.register_ids(body, at + ("steps",))  # type: ignore[attr-defined]  (step_list does it again: harmless)
        carried = _set_variables(body, child.ids)
        outer = set(self.vars)
        child.vars = outer | set(carried) | {"iteration"}
        child.iteration = "iteration"
        steps = child.step_list(body, at + ("steps",), new + ("pipeline",))  # type: ignore[attr-defined]
        adopt(self, child)  # its paths are already where its steps go: under new's pipeline
        self.put(out, new, "pipeline", {"steps": steps}, at + ("steps",))
        before = {name: self.reference(name, at, text=False) or name for name in outer}  # in a for_loop's body: inputs
        previous = {name: f"last.{step}.{name} if last else " + (before[name] if name in outer else "none")
                    for name, step in carried.items()}
        inputs = {name: f"{{{{ {before[name]} }}}}" for name in sorted(outer - set(carried))}
        inputs.update({name: f"{{{{ {expr} }}}}" for name, expr in previous.items()})
        inputs["iteration"] = "{{ loop.index }}"
        self.put(out, new, "inputs", inputs, at + ("steps",))
        if "condition" not in raw:
            self.problem(at, "while_loop needs a condition:")
        else:
            saved, self.rebound = self.rebound, {**self.rebound, **previous}
            try:
                expr = self.condition(raw["condition"], at + ("condition",))
            finally:
                self.rebound = saved
            self.put(out, new, "while", f"{{{{ {expr} }}}}", at + ("condition",))
        loop_id = out["id"] or ""
        self.rebound.update({name: f"steps.{loop_id}.output.{step}.{name}" for name, step in carried.items()})
        self.vars.update(carried)
        return _Target(loop_id, "value")

    def nested_file(self, path: Any, at: Path_) -> str:
        """``pipeline_file``, relative to this file's folder; else to the working directory, as pipeline_ex reads it."""
        if not isinstance(path, str) or not path or "{{" in path:
            self.problem(at, f"pipeline_file must be a plain path, got {path!r}")
            return ""
        if self.base_dir is not None and not (self.base_dir / path).exists() and (Path.cwd() / path).exists():
            return str((Path.cwd() / path).resolve())
        return path

    def inline(self, inline: Any, at: Path_, new: Path_) -> dict[str, Any]:
        """An inline pipeline (``{name, steps}`` or ``{workflow: ...}``), translated by a translator of its own
        (its steps have their own names), its source paths kept."""
        if isinstance(inline, Mapping) and "workflow" in inline:
            inline, at = inline["workflow"], at + ("workflow",)
        if not isinstance(inline, Mapping):
            self.problem(at, "an inline pipeline must be a mapping with steps:")
            return {"steps": []}
        child = child_of(self, loop_body=False)
        child.workflow_keys(inline, at, {"name", "description", "defaults", "steps", "variables", "input", "inputs"})
        spec = child.body(inline, at)  # type: ignore[attr-defined]
        adopt(self, child, new)
        return spec


def _set_variables(body: list[Any], ids: Mapping[str, str]) -> dict[str, str]:
    """The variables a loop body's set_variable steps set, each with the id of the (last) step setting it."""
    found: dict[str, str] = {}
    for raw in body:
        if isinstance(raw, Mapping) and raw.get("type") == "set_variable" and isinstance(raw.get("variables"), Mapping):
            ident = ids.get(raw.get("name"))
            found.update({name: ident for name in raw["variables"] if isinstance(name, str) and ident})
    return found

