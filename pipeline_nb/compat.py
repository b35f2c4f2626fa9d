"""pipeline_ex compatibility: translate a ``workflow:`` document into a pipeline_nb spec.

``parse_spec`` (so ``load_spec``, ``run`` and the CLI) translates any document whose root
has a ``workflow:`` key. The translated steps keep the original file's line:col: a new
SourceMap maps every translated key to the node it came from. Everything that cannot be
translated is collected and raised as one PipelineSpecError. See docs/pipeline_ex.md.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._compat_refs import Expressions, Path_, Problem, _Target, literal
from ._yaml import SourceMap
from ._errors import PipelineSpecError

__all__ = ["Problem", "is_workflow", "translate"]

SUPPORTED_TYPES = ("claude", "set_variable", "for_loop", "parallel_claude", "claude_batch")
MODEL_ALIASES = {"sonnet": "claude-sonnet-5-5", "opus": "claude-opus-5-5", "haiku": "claude-haiku-5-5"}
"""pipeline_ex's (Claude Code's) model aliases, as model ids."""

_WORKFLOW_KEYS = {"name", "description", "defaults", "steps", "variables"}
_WORKFLOW_IGNORED = {"version", "workspace_dir", "checkpoint_enabled", "checkpoint_dir", "gemini_functions"}
_DEFAULTS_KEYS = {"output_dir", "claude_options"}
_DEFAULTS_IGNORED = {"gemini_model", "gemini_token_budget", "claude_output_format", "claude_preset"}
_COMMON = {"name", "type", "condition", "output_to_file"}
_STEP_KEYS = {
    "claude": {"prompt", "claude_options", "output_schema"},
    "set_variable": {"variables", "scope"},
    "for_loop": {"iterator", "data_source", "steps", "parallel", "max_parallel", "break_on_error"},
    "parallel_claude": {"parallel_tasks"},
    "claude_batch": {"tasks", "prompt", "batch_config", "claude_options"},
}
_LLM_KEYS = {"prompt", "claude_options", "output_schema"}
_OPTIONS_IGNORED = {"max_turns", "verbose", "output_format", "debug_mode", "telemetry_enabled",
                    "cost_tracking", "print", "stream_handler", "stream_buffer_size"}
_PER_ITEM = "per-item output files are not supported; put output_to_file on the {} step (it writes every reply)"
HINT = ("pipeline_nb translates claude, set_variable, for_loop (with one claude step), parallel_claude and "
        "claude_batch steps; see docs/pipeline_ex.md")


def is_workflow(data: Any) -> bool:
    """Whether ``data`` is a pipeline_ex document (its root has a ``workflow:`` key)."""
    return isinstance(data, Mapping) and "workflow" in data


def translate(
    data: Mapping[str, Any], smap: SourceMap | None = None, base_dir: Path | None = None
) -> tuple[dict[str, Any], SourceMap]:
    """The pipeline_nb spec for pipeline_ex document ``data``, and a SourceMap of its keys
    into ``data``'s source. ``file`` prompt parts are read relative to ``base_dir``, then the
    working directory. Raises PipelineSpecError listing every untranslatable thing."""
    translator = _Translator(smap or SourceMap("<dict>"), base_dir)
    spec = translator.document(data)
    if translator.problems:
        raise translator.error()
    return spec, translator.source_map()


class _Translator(Expressions):
    """The document and its steps; prompts, references and conditions come from Expressions."""

    def error(self) -> PipelineSpecError:
        problems = sorted(self.problems, key=lambda p: (p.location.line, p.location.col) if p.location else (0, 0))
        if len(problems) == 1:
            err = PipelineSpecError(problems[0].message, location=problems[0].location,
                                    step_id=problems[0].step, hint=problems[0].hint or HINT)
        else:
            lines = [f"  - {p.location or self.smap.source}: " + (f"step '{p.step}': " if p.step else "")
                     + p.message + (f" (hint: {p.hint})" if p.hint else "") for p in problems]
            err = PipelineSpecError(f"{len(problems)} parts of this pipeline_ex workflow cannot be translated:\n"
                                    + "\n".join(lines), location=problems[0].location, hint=HINT)
        err.problems = tuple(problems)  # type: ignore[attr-defined]
        return err

    def source_map(self) -> SourceMap:
        new = SourceMap(self.smap.source, self.smap.line_offset)
        for path, orig in self.origin.items():
            if (where := self.smap.locate(orig)) is not None:
                new.values[path] = where
            if orig in self.smap.keys:
                new.keys[path] = self.smap.keys[orig]
        new.blocks.update({path: self.smap.blocks[orig] for path, orig in self.blocks.items()})
        return new

    def put(self, out: dict[str, Any], new: Path_, key: str, value: Any, orig: Path_,
            block: Path_ | None = None) -> None:
        out[key] = value
        self.origin[new + (key,)] = orig
        if block is not None and block in self.smap.blocks:
            self.blocks[new + (key,)] = block

    # -- the document --

    def document(self, data: Mapping[str, Any]) -> dict[str, Any]:
        for key in data:
            if key != "workflow":
                self.problem((key,), f"top-level key {key!r} next to 'workflow:'", "move it under workflow:", key=True)
        wf, at = data["workflow"], ("workflow",)
        self.origin[()] = at
        if not isinstance(wf, Mapping):
            self.problem(at, "'workflow:' must be a mapping with name: and steps:")
            return {}
        spec: dict[str, Any] = {}
        self.check_keys(wf, at, _WORKFLOW_KEYS, "workflow", ignored=_WORKFLOW_IGNORED)
        for key in ("name", "description"):
            if key in wf:
                self.put(spec, (), key, wf[key], at + (key,))
        variables = wf.get("variables", {})
        if not isinstance(variables, Mapping):
            self.problem(at + ("variables",), "workflow variables must be a mapping")
        elif variables:
            self.put(spec, (), "vars", dict(variables), at + ("variables",))
            self.vars.update(k for k in variables if isinstance(k, str))
        self.defaults(wf.get("defaults"), at + ("defaults",))
        steps = wf.get("steps")
        if not isinstance(steps, list) or not steps:
            self.problem(at + ("steps",) if "steps" in wf else at, "workflow needs a non-empty 'steps:' list")
            return spec
        self.register_ids(steps, at + ("steps",))
        translated = []
        for index, raw in enumerate(steps):
            step = self.step(raw, at + ("steps", index), ("steps", len(translated)))
            if step is not None:
                translated.append(step)
        self.put(spec, (), "steps", translated, at + ("steps",))
        return spec

    def defaults(self, defaults: Any, at: Path_) -> None:
        if defaults is None:
            return
        if not isinstance(defaults, Mapping):
            self.problem(at, "defaults must be a mapping")
            return
        self.check_keys(defaults, at, _DEFAULTS_KEYS, "defaults", ignored=_DEFAULTS_IGNORED)
        out_dir = defaults.get("output_dir", "outputs")
        if isinstance(out_dir, str) and out_dir and "{" not in out_dir:
            self.output_dir = posixpath.normpath(out_dir)
        else:
            self.problem(at + ("output_dir",), "defaults.output_dir must be a plain path")
        options = defaults.get("claude_options", {})
        if isinstance(options, Mapping):
            self.options = {k: (v, at + ("claude_options", k)) for k, v in options.items()}
        else:
            self.problem(at + ("claude_options",), "defaults.claude_options must be a mapping")

    def register_ids(self, steps: list[Any], at: Path_) -> None:
        """Give every step and parallel task an id from its name, refusing two that clash."""
        taken: dict[str, str] = {}

        def add(name: Any, where: Path_, what: str) -> None:
            if not isinstance(name, str) or not name.strip():
                self.problem(where, f"{what} needs a {where[-1]}: (a non-empty string)")
                return
            ident = re.sub(r"\W", "_", name.strip(), flags=re.ASCII)
            ident = f"_{ident}" if ident[0].isdigit() else ident
            if ident in taken:
                clash = "is used twice" if taken[ident] == name else f"gets id {ident!r}, as {taken[ident]!r} does"
                self.problem(where, f"{what} {name!r} {clash}", "give every step and parallel task its own name")
                return
            taken[ident] = name
            self.ids[name] = ident
            self.ids.setdefault(ident, ident)

        for index, raw in enumerate(steps):
            if isinstance(raw, Mapping):
                add(raw.get("name"), at + (index, "name"), "step")
                if raw.get("type") == "parallel_claude" and isinstance(raw.get("parallel_tasks"), list):
                    for j, task in enumerate(raw["parallel_tasks"]):
                        if isinstance(task, Mapping):
                            add(task.get("id"), at + (index, "parallel_tasks", j, "id"), "parallel task")

    # -- steps --

    def step(self, raw: Any, at: Path_, new: Path_) -> dict[str, Any] | None:
        if not isinstance(raw, Mapping):
            self.problem(at, "a step must be a mapping with name: and type:")
            return None
        name = raw.get("name")
        self.current = name if isinstance(name, str) else None
        ident = self.ids.get(name) if isinstance(name, str) else None
        out, target = self.translate_step(raw, at, new, ident)
        if ident is not None:
            self.order.append(ident)
        if target is not None and ident is not None:
            self.order += [c.id for c in target.children.values() if c.id not in self.order]
            self.done.update({c.id: c for c in target.children.values()})
            self.done[ident] = target
        return out if ident is not None else None

    def translate_step(self, raw: Mapping[str, Any], at: Path_, new: Path_,
                       ident: str | None) -> tuple[dict[str, Any] | None, _Target | None]:
        kind = raw.get("type")
        if kind not in _STEP_KEYS:
            if kind is None:
                self.problem(at, "step has no type:", f"use one of: {', '.join(SUPPORTED_TYPES)}")
            elif kind in ("gemini", "gemini_instructor"):
                self.problem(at + ("type",), f"{kind} steps are not supported: pipeline_nb calls Claude "
                             "(or its offline mock) only", "use type: claude; prompt parts translate unchanged")
            else:
                self.problem(at + ("type",), f"step type {kind!r} is not supported",
                             f"types that translate: {', '.join(SUPPORTED_TYPES)}")
            return None, None
        self.check_keys(raw, at, _COMMON | _STEP_KEYS[kind], f"{kind} step")
        out: dict[str, Any] = {}
        self.put(out, new, "id", ident, at + ("name",))
        self.origin[new] = at
        target = getattr(self, kind)(raw, at, new, out)
        if "condition" in raw:
            expr = self.condition(raw["condition"], at + ("condition",))
            self.put(out, new, "when", f"{{{{ {expr} }}}}", at + ("condition",))
        if "output_to_file" in raw:
            self.put(out, new, "output_to_file", self.output_path(raw["output_to_file"], at + ("output_to_file",)),
                     at + ("output_to_file",))
        return out, target

    def llm(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        """The keys of an llm step from a claude step, loop body or parallel task."""
        self.put(out, new, "type", "llm", at + ("type",) if "type" in raw else at)
        self.put(out, new, "provider", "claude", at + ("type",) if "type" in raw else at)
        if "prompt" not in raw:
            self.problem(at, "claude step needs a prompt:")
        else:
            prompt, where, block = self.prompt(raw["prompt"], at + ("prompt",))
            self.put(out, new, "prompt", prompt, where, block)
        self.claude_options(raw.get("claude_options", {}), at + ("claude_options",), new, out)
        if "output_schema" in raw:
            self.put(out, new, "output_schema", raw["output_schema"], at + ("output_schema",))
        return _Target(out.get("id") or "", "json" if "output_schema" in raw else "text")

    def claude(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        return self.llm(raw, at, new, out)

    def claude_options(self, options: Any, at: Path_, new: Path_, out: dict[str, Any]) -> None:
        if not isinstance(options, Mapping):
            self.problem(at, "claude_options must be a mapping")
            return
        merged = {**self.options, **{k: (v, at + (k,)) for k, v in options.items()}}
        system = []
        for key, (value, where) in merged.items():
            if key == "model":
                self.put(out, new, "model", MODEL_ALIASES.get(value, value), where)
            elif key == "max_tokens":
                self.put(out, new, "max_tokens", value, where)
            elif key in ("system_prompt", "append_system_prompt") and isinstance(value, str):
                system.append((key, self.text(value, where), where))
            elif key == "timeout_ms" and isinstance(value, (int, float)) and value > 0:
                self.put(out, new, "timeout", value / 1000, where)
            elif key == "async_streaming" and isinstance(value, bool):
                self.put(out, new, "stream", value, where)
            elif key in _OPTIONS_IGNORED or (key in ("allowed_tools", "disallowed_tools") and not value):
                continue
            else:
                hint = ("pipeline_nb makes plain Messages API calls, without Claude Code's tools"
                        if "tool" in key else "options that translate: model, max_tokens, system_prompt, "
                        "append_system_prompt, timeout_ms, async_streaming")
                self.problem(where, f"claude_options.{key} is not supported" + (
                    f" with value {value!r}" if key in ("system_prompt", "timeout_ms") else ""), hint, key=True)
        if system:
            system.sort(key=lambda s: s[0] != "system_prompt")
            self.put(out, new, "system", "\n\n".join(t for _, t, _ in system), system[0][2], system[0][2])

    def set_variable(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        self.put(out, new, "type", "set", at + ("type",))
        if raw.get("scope", "global") != "global":
            self.problem(at + ("scope",), f"scope {raw['scope']!r} is not supported", "only global scope translates")
        variables = raw.get("variables")
        if not isinstance(variables, Mapping) or not variables:
            self.problem(at + ("variables",) if "variables" in raw else at, "set_variable needs a 'variables:' mapping")
            return _Target(out["id"] or "", "set")
        values = {}
        for name, value in variables.items():
            where = at + ("variables", name)
            if not (isinstance(name, str) and name.isidentifier()):
                self.problem(where, f"variable name {name!r} is not a valid name", "use letters, digits and _", key=True)
                continue
            values[name] = self.value(value, where)
            self.origin[new + ("vars", name)] = where
        self.put(out, new, "vars", values, at + ("variables",))
        self.vars.update(values)
        return _Target(out["id"] or "", "set")

    def for_loop(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target | None:
        iterator = raw.get("iterator")
        if not (isinstance(iterator, str) and iterator.isidentifier()) or iterator in ("loop", "steps"):
            self.problem(at + ("iterator",) if "iterator" in raw else at, f"for_loop needs an iterator: name, "
                         f"got {iterator!r}", "letters, digits and _, not 'loop' or 'steps'")
            iterator = "item"
        if "data_source" not in raw:
            self.problem(at, "for_loop needs a data_source:")
        else:
            self.put(out, new, "for_each", self.data_source(raw["data_source"], at + ("data_source",)),
                     at + ("data_source",))
        self.put(out, new, "as", iterator, at + ("iterator",) if "iterator" in raw else at)
        parallel = raw.get("parallel", False)
        self.put(out, new, "max_parallel", raw.get("max_parallel", 5) if parallel else 1,
                 at + ("max_parallel",) if parallel and "max_parallel" in raw else at + ("parallel",))
        body = raw.get("steps")
        types = [s.get("type") if isinstance(s, Mapping) else None for s in body] if isinstance(body, list) else []
        if types != ["claude"]:
            self.problem(at + ("steps",) if "steps" in raw else at, f"for_loop translates only a body of exactly one "
                         f"claude step, this one has: {', '.join(map(str, types)) or 'none'}",
                         "split it into for_loops of one claude step each")
            return None
        inner, inner_at = body[0], at + ("steps", 0)
        self.check_keys(inner, inner_at, {"name", "type"} | _LLM_KEYS, "for_loop body step", {
            "output_to_file": _PER_ITEM.format("for_loop"),
            "condition": "a condition per item is not supported; put condition: on the for_loop step"})
        self.loop = iterator
        try:
            self.llm(inner, inner_at, new, out)
        finally:
            self.loop = None
        return _Target(out["id"] or "", "each")

    def parallel_claude(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target | None:
        self.put(out, new, "type", "parallel", at + ("type",))
        tasks = raw.get("parallel_tasks")
        if not isinstance(tasks, list) or not tasks:
            self.problem(at + ("parallel_tasks",) if "parallel_tasks" in raw else at,
                         "parallel_claude needs a non-empty 'parallel_tasks:' list")
            return None
        children, target = [], _Target(out["id"] or "", "parallel")
        for index, task in enumerate(tasks):
            task_at, child_new = at + ("parallel_tasks", index), new + ("steps", len(children))
            if not isinstance(task, Mapping):
                self.problem(task_at, "a parallel task must be a mapping with id: and prompt:")
                continue
            self.check_keys(task, task_at, {"id", "output_to_file"} | _LLM_KEYS, "parallel task")
            child: dict[str, Any] = {}
            self.put(child, child_new, "id", self.ids.get(task.get("id"), ""), task_at + ("id",))
            self.origin[child_new] = task_at
            child_target = self.llm(task, task_at, child_new, child)
            if "output_to_file" in task:
                self.put(child, child_new, "output_to_file",
                         self.output_path(task["output_to_file"], task_at + ("output_to_file",)),
                         task_at + ("output_to_file",))
            if isinstance(task.get("id"), str) and child["id"]:
                target.children[task["id"]] = target.children[child["id"]] = child_target
            children.append(child)
        self.put(out, new, "steps", children, at + ("parallel_tasks",))
        self.put(out, new, "max_parallel", min(max(len(children), 1), 256), at + ("parallel_tasks",))
        return target

    def claude_batch(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        tasks, items = raw.get("tasks"), []
        if tasks and "prompt" in raw:
            self.problem(at + ("prompt",), "claude_batch with both prompt: and tasks: is not supported "
                         "(pipeline_ex sends each task's prompt alone)", "move the shared text into each task's prompt",
                         key=True)
        if not tasks:
            if "prompt" not in raw:
                self.problem(at, "claude_batch needs 'tasks:' (or one prompt:)")
            else:
                items.append(self.prompt(raw["prompt"], at + ("prompt",))[0])
        elif not isinstance(tasks, list):
            self.problem(at + ("tasks",), "claude_batch tasks: must be a list")
        else:
            for index, task in enumerate(tasks):
                task_at = at + ("tasks", index)
                if not isinstance(task, Mapping):
                    self.problem(task_at, "a batch task must be a mapping with prompt:")
                    continue
                self.check_keys(task, task_at, {"task_id", "prompt", "file"}, "claude_batch task",
                                {"output_to_file": _PER_ITEM.format("claude_batch")})
                parts = [literal(self.read(task["file"], None, task_at + ("file",)))] if "file" in task else []
                if "prompt" in task:
                    parts.append(self.prompt(task["prompt"], task_at + ("prompt",))[0])
                elif parts:
                    parts.append("Analyze this file")
                else:
                    self.problem(task_at, "a batch task needs prompt: or file:")
                items.append("\n".join(parts))
        config = raw.get("batch_config", {})
        if not isinstance(config, Mapping):
            self.problem(at + ("batch_config",), "batch_config must be a mapping")
            config = {}
        self.check_keys(config, at + ("batch_config",), {"max_parallel", "timeout_per_task", "consolidate_results"},
                        "batch_config")
        self.put(out, new, "type", "llm", at + ("type",))
        self.put(out, new, "provider", "claude", at + ("type",))
        self.put(out, new, "for_each", items, at + ("tasks",) if "tasks" in raw else at + ("prompt",))
        self.put(out, new, "as", "task", at + ("type",))
        self.put(out, new, "prompt", "{{ task }}", at + ("tasks",) if "tasks" in raw else at + ("prompt",))
        self.put(out, new, "max_parallel", config.get("max_parallel", 3), at + ("batch_config", "max_parallel"))
        self.claude_options(raw.get("claude_options", {}), at + ("claude_options",), new, out)
        timeout = config.get("timeout_per_task")
        if isinstance(timeout, (int, float)) and timeout > 0:
            self.put(out, new, "timeout", timeout / 1000, at + ("batch_config", "timeout_per_task"))
        elif timeout is not None:
            self.problem(at + ("batch_config", "timeout_per_task"), "timeout_per_task must be milliseconds > 0")
        return _Target(out["id"] or "", "each")

