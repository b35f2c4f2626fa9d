"""pipeline_ex's Claude step types, and the others that were first to translate: claude (with its
``claude_options``), set_variable, for_loop, parallel_claude and claude_batch. A mixin of the
compat translator (``compat._Translator``): one method per step type, named after it. A for_loop
whose body is one claude step is that llm step with ``for_each:`` (it streams, and can go as Message
Batches); any other body is a pipeline step run per item (``_compat_loop``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._compat_agent import ClaudeOptions
from ._compat_loop import loop_body, loop_source
from ._compat_refs import _IGNORED, Path_, _Target, literal

LLM_KEYS = {"prompt", "claude_options", "output_schema"}
_PER_ITEM = "per-item output files are not supported; put output_to_file on the {} step (it writes every reply)"


class BasicSteps(ClaudeOptions):
    """claude, set_variable, for_loop, parallel_claude and claude_batch."""

    STEP_KEYS: dict[str, set[str]] = {
        "claude": {"prompt", "claude_options", "output_schema"},
        "set_variable": {"variables", "scope", "variable", "value", "streaming"},
        "for_loop": {"iterator", "data_source", "steps", "parallel", "max_parallel", "break_on_error", "batch_size"},
        "parallel_claude": {"parallel_tasks"},
        "claude_batch": {"tasks", "prompt", "batch_config", "claude_options", "preset"},
    }
    """The keys of each step type this mixin translates (beside every step's name, type, condition
    and output_to_file)."""

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
        if "preset" in raw:
            self.note(at + ("preset",), "preset: on a claude step", "pipeline_ex's claude step does not read it "
                      "(claude_smart, claude_batch and the other enhanced steps do)")
        return self.llm(raw, at, new, out)

    def set_variable(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        self.put(out, new, "type", "set", at + ("type",))
        if raw.get("scope", "global") != "global":
            self.problem(at + ("scope",), f"scope {raw['scope']!r} is not supported", "only global scope translates")
        if "streaming" in raw:
            self.note(at + ("streaming",), "set_variable streaming:", "it tunes how pipeline_ex keeps large results "
                      "in memory; the variables are the same")
        variables = raw.get("variables")
        if variables is None and ("variable" in raw or "value" in raw):
            key = "variable" if "variable" in raw else "value"
            named = raw.get("variable") if isinstance(raw.get("variable"), str) else "name"
            self.note(at + (key,), "set_variable variable:/value:", "it reads only variables:, so this step sets "
                      f"nothing, as here (to set one, write variables: {{{named}: ...}})")
            self.put(out, new, "vars", {}, at + (key,))
            return _Target(out["id"] or "", "set")
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
        if self.scope is not None:  # in a for_loop's body: the body's own from here on
            self.scope.own.update(values)
        for name in values:  # set again after a while_loop: no longer the loop's
            self.rebound.pop(name, None)
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
            self.put(out, new, "for_each", loop_source(self, raw["data_source"], at + ("data_source",)),
                     at + ("data_source",))
        self.put(out, new, "as", iterator, at + ("iterator",) if "iterator" in raw else at)
        parallel = raw.get("parallel", False)
        self.put(out, new, "max_parallel", raw.get("max_parallel", 5) if parallel else 1,
                 at + ("max_parallel",) if parallel and "max_parallel" in raw else at + ("parallel",))
        if "batch_size" in raw:
            self.note(at + ("batch_size",), "for_loop batch_size:", "pipeline_ex reads it only for a loop over more "
                      "than 500 items, which it then runs in chunks of that size to bound its memory")
        body = raw.get("steps")
        inner = body[0] if isinstance(body, list) and len(body) == 1 and isinstance(body[0], Mapping) else {}
        if inner.get("type") != "claude" or set(inner) - ({"name", "type"} | LLM_KEYS | _IGNORED):
            return loop_body(self, raw, at, new, out, iterator)
        saved, self.loop = self.loop, iterator
        try:
            self.llm(inner, at + ("steps", 0), new, out)
        finally:
            self.loop = saved
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
            self.check_keys(task, task_at, {"id", "output_to_file"} | LLM_KEYS, "parallel task")
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
            self.note(at + ("prompt",), "claude_batch prompt: beside tasks:",
                      "pipeline_ex sends each task's own prompt and never this one")
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
                self.check_keys(task, task_at, {"task_id", "prompt", "file", "claude_options"}, "claude_batch task",
                                {"output_to_file": _PER_ITEM.format("claude_batch")})
                if "claude_options" in task:
                    self.note(task_at + ("claude_options",), "claude_options of a claude_batch task",
                              "pipeline_ex gives every task the step's options; put them on the step")
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
        self.claude_options(raw.get("claude_options", {}), at + ("claude_options",), new, out,
                            preset=self.preset_of(raw, at, "development"))
        timeout = config.get("timeout_per_task")
        if isinstance(timeout, (int, float)) and timeout > 0:
            self.put(out, new, "timeout", timeout / 1000, at + ("batch_config", "timeout_per_task"))
        elif timeout is not None:
            self.problem(at + ("batch_config", "timeout_per_task"), "timeout_per_task must be milliseconds > 0")
        return _Target(out["id"] or "", "each")

