"""pipeline_ex compatibility: translate a ``workflow:`` document into a pipeline_nb spec.

``parse_spec`` (so ``load_spec``, ``run`` and the CLI) translates any document whose root
has a ``workflow:`` key. The translated steps keep the original file's line:col: a new
SourceMap maps every translated key to the node it came from. Everything that cannot be
translated is collected and raised as one PipelineSpecError. See docs/pipeline_ex.md.
"""

from __future__ import annotations

import posixpath
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._compat_claude import ClaudeFamily
from ._compat_flow import FlowSteps
from ._compat_refs import CompatNote, Path_, Problem, _Target
from ._compat_steps import BasicSteps
from ._yaml import SourceMap
from ._errors import PipelineSpecError

__all__ = ["CompatNote", "Problem", "is_workflow", "translate"]

_STEP_KEYS = {**BasicSteps.STEP_KEYS, **ClaudeFamily.STEP_KEYS, **FlowSteps.STEP_KEYS}
"""The keys of every step type that translates, by type."""
SUPPORTED_TYPES = tuple(_STEP_KEYS)

_WORKFLOW_KEYS = {"name", "description", "defaults", "steps", "variables", "input", "inputs", "mcp_servers",
                  "enable_skills", "agents"}
RUNTIME_KEYS = {"version", "workspace_dir", "checkpoint_enabled", "checkpoint_dir", "gemini_functions", "environment",
                "setting_sources", "enable_context_management", "memory_config", "hooks", "metadata", "author", "tags"}
"""Workflow keys that only configure pipeline_ex's runtime (checkpoints, workspace, logging, Claude Code's
settings and hooks): read and ignored, with one note naming them."""
_STEP_KEY_HINTS = {
    "conversation": "pipeline_ex's claude_session does not read conversation: (it sends an empty prompt); write "
                    "each turn as a claude_session step of its own, with one session_config.session_name",
}
"""Hints for step keys that are refused, where the generic list of keys would not help."""

_ROOT_STEPS_KEYS = {"name", "description", "steps", "pipeline"}
_DEFAULTS_KEYS = {"output_dir", "claude_options", "claude_preset", "gemini_model", "gemini_token_budget"}
_DEFAULTS_IGNORED = {"claude_output_format"}
_COMMON = {"name", "type", "condition", "output_to_file"}
HINT = ("pipeline_nb translates pipeline_ex's step types " + ", ".join(SUPPORTED_TYPES)
        + "; see docs/pipeline_ex.md")


def is_workflow(data: Any) -> bool:
    """Whether ``data`` is a pipeline_ex document: its root has a ``workflow:`` key, or it is a
    root ``steps:`` list of pipeline_ex steps (each with ``name:`` and ``type:``, none with ``id:``)."""
    if not isinstance(data, Mapping):
        return False
    if "workflow" in data:
        return True
    steps = data.get("steps")
    return (isinstance(steps, list) and bool(steps) and "vars" not in data and all(
        isinstance(s, Mapping) and "name" in s and "id" not in s for s in steps)
        and any(s.get("type") in KNOWN_TYPES for s in steps))


KNOWN_TYPES = {"claude", "gemini", "set_variable", "for_loop", "while_loop", "parallel_claude", "gemini_instructor",
               "claude_smart", "claude_session", "claude_extract", "claude_batch", "claude_robust",
               "data_transform", "file_ops", "pipeline", "test_echo", "codebase_query", "checkpoint", "switch"}
"""pipeline_ex's step types (lib/pipeline/executor.ex), translated or not: they mark a root steps: list."""


def translate(
    data: Mapping[str, Any], smap: SourceMap | None = None, base_dir: Path | None = None, *,
    notes: list[str] | None = None,
) -> tuple[dict[str, Any], SourceMap]:
    """The pipeline_nb spec for pipeline_ex document ``data``, and a SourceMap of its keys
    into ``data``'s source. ``file`` prompt parts are read relative to ``base_dir``, then the
    working directory. Raises PipelineSpecError listing every untranslatable thing. What it read
    and ignored is appended to ``notes`` (a loaded spec's, which its runs show as warnings), or
    without ``notes`` warned as CompatNote."""
    translator = _Translator(smap or SourceMap("<dict>"), base_dir)
    spec = translator.document(data)
    if translator.problems:
        raise translator.error()
    found = ([_runtime_note(translator)] if translator.ignored else []) + list(translator.notes.values())
    if notes is not None:
        notes += found
    for note in found if notes is None else ():
        warnings.warn(note, CompatNote, stacklevel=2)
    return spec, translator.source_map()


def _runtime_note(translator: _Translator) -> str:
    """One note listing the runtime keys read and ignored, and where the first is."""
    keys = ", ".join(key for key, _ in translator.ignored)
    where = translator.smap.locate(translator.ignored[0][1], key=True)
    return (f"pipeline_ex settings read and ignored (they configure pipeline_ex's own runtime): {keys} "
            f"(at {where or translator.smap.source}); see docs/pipeline_ex.md")


class _Translator(BasicSteps, ClaudeFamily, FlowSteps):
    """The document and its steps. Each step type is a method of a mixin (``_compat_steps``,
    ``_compat_claude``, ``_compat_flow``); prompts, references and conditions come from Expressions."""

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
        if "workflow" in data:
            for key in data:
                if key != "workflow":
                    self.problem((key,), f"top-level key {key!r} next to 'workflow:'", "move it under workflow:",
                                 key=True)
            wf, at = data["workflow"], ("workflow",)
            if not isinstance(wf, Mapping):
                self.problem(at, "'workflow:' must be a mapping with name: and steps:")
                return {}
            self.workflow_keys(wf, at, _WORKFLOW_KEYS)
        else:  # a root steps: list of pipeline_ex steps (pipeline_ex's generated pipelines)
            wf, at = dict(data), ()
            self.workflow_keys(wf, at, _ROOT_STEPS_KEYS)
            if isinstance(data.get("pipeline"), Mapping):  # pipeline: {name, description}
                wf.update({k: data["pipeline"][k] for k in ("name", "description") if k in data["pipeline"]})
        return self.body(wf, at)

    def body(self, wf: Mapping[str, Any], at: Path_) -> dict[str, Any]:
        """The spec of a workflow mapping at ``at`` (whose keys were checked): a document's, or an inline pipeline's."""
        self.origin[()] = at
        spec: dict[str, Any] = {}
        self.workflow_name = wf.get("name") if isinstance(wf.get("name"), str) else ""
        for key in ("name", "description"):
            if key in wf:
                self.put(spec, (), key, wf[key], at + (key,))
        self.variables(wf, at, spec)
        self.declare_mcp_servers(wf.get("mcp_servers"), at + ("mcp_servers",), spec)
        self.declare_agent_extras(wf, at)
        self.defaults(wf.get("defaults"), at + ("defaults",))
        steps = wf.get("steps")
        if not isinstance(steps, list) or not steps:
            self.problem(at + ("steps",) if "steps" in wf else at, "workflow needs a non-empty 'steps:' list")
            return spec
        self.put(spec, (), "steps", self.step_list(steps, at + ("steps",), ()), at + ("steps",))
        return spec

    def workflow_keys(self, wf: Mapping[str, Any], at: Path_, allowed: set[str]) -> None:
        for key in wf:
            if key in RUNTIME_KEYS:
                self.ignored.append((key, at + (key,)))
        self.check_keys(wf, at, allowed, "workflow" if at else "pipeline", ignored=RUNTIME_KEYS)

    def variables(self, wf: Mapping[str, Any], at: Path_, spec: dict[str, Any]) -> None:
        """``variables:`` and the declared ``input:``/``inputs:`` as vars: a declared input with a
        value is a default (--var overrides it); one without must come from --var."""
        values: dict[str, Any] = {}
        for key in ("variables", "input", "inputs"):
            given = wf.get(key)
            if given is None:
                continue
            if isinstance(given, list) and key != "variables":  # names only: each must come from --var
                names = [g.get("name") if isinstance(g, Mapping) else g for g in given]
                bad = [n for n in names if not (isinstance(n, str) and n.isidentifier())]
                if bad:
                    self.problem(at + (key,), f"workflow {key} must name variables, got {bad[0]!r}")
                self.vars.update(n for n in names if isinstance(n, str))
                given = {g["name"]: g["default"] for g in given if isinstance(g, Mapping) and "default" in g
                         and isinstance(g.get("name"), str)}
            if not isinstance(given, Mapping):
                self.problem(at + (key,), f"workflow {key} must be a mapping of names to values (or a list of names)")
                continue
            values.update(given)
            self.origin[("vars",)] = at + (key,)
        if values:
            self.put(spec, (), "vars", values, self.origin[("vars",)])
            self.vars.update(k for k in values if isinstance(k, str))

    def step_list(self, steps: list[Any], at: Path_, new: Path_) -> list[dict[str, Any]]:
        """The translated steps of a list at ``at``, put at ``new + ("steps", i)``."""
        self.register_ids(steps, at)
        translated = []
        for index, raw in enumerate(steps):
            step = self.step(raw, at + (index,), new + ("steps", len(translated)))
            if step is not None:
                translated.append(step)
        return translated

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
        for key in ("claude_preset", "gemini_model", "gemini_token_budget"):  # read by the step types' mixins
            if key in defaults:
                setattr(self, key, (defaults[key], at + (key,)))
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
            else:
                self.problem(at + ("type",), f"step type {kind!r} is not supported",
                             f"types that translate: {', '.join(SUPPORTED_TYPES)}")
            return None, None
        self.check_keys(raw, at, _COMMON | _STEP_KEYS[kind], f"{kind} step", _STEP_KEY_HINTS)
        out: dict[str, Any] = {}
        self.put(out, new, "id", ident, at + ("name",))
        self.origin[new] = at
        target = getattr(self, kind)(raw, at, new, out)
        if "condition" in raw and kind != "while_loop":  # a while_loop's is its loop's (while:)
            expr = self.condition(raw["condition"], at + ("condition",))
            self.put(out, new, "when", f"{{{{ {expr} }}}}", at + ("condition",))
        if "output_to_file" in raw:
            self.put(out, new, "output_to_file", self.output_path(raw["output_to_file"], at + ("output_to_file",)),
                     at + ("output_to_file",))
        return out, target
