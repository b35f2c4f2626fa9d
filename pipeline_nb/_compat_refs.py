"""pipeline_ex prompts, references and conditions, as pipeline_nb templates (see compat.py)."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._compat_expr import FUNCTION_START, OPERATORS, builtin_value, computed, nothing
from ._pipeline_file import MAX_PIPELINE_FILE_BYTES
from ._yaml import SourceMap
from ._errors import Location

if TYPE_CHECKING:
    from ._compat_loop import LoopScope

Path_ = tuple[Any, ...]
_BUILTINS = {"workflow", "step", "execution_id", "environment", "env", "config"}
_IGNORED = {"role", "preset"}
"""Step keys that only configure Claude Code (presets, roles): dropped."""


def literal(text: str) -> str:
    """A template that renders to ``text`` exactly: any ``{`` goes inside ``{% raw %}``."""
    if "{" not in text:
        return text
    return "{% raw %}" + text.replace("endraw", "end{% endraw %}{% raw %}raw") + "{% endraw %}"


def segments(path: str) -> list[str] | None:
    """``a.b-c.0`` as ``["a", "b-c", "0"]``; None unless it is such a dotted path."""
    parts = path.strip().split(".")
    return parts if all(re.fullmatch(r"[\w-]+", p, flags=re.ASCII) for p in parts) else None


def subscript(fields: list[str]) -> str:
    """``["a", "0"]`` as ``["a"][0]`` (subscripts, so ``items`` is a key, not dict.items)."""
    return "".join(f"[{f}]" if f.isdigit() else f"[{json.dumps(f)}]" for f in fields)


class CompatNote(UserWarning):
    """Something of a pipeline_ex workflow that the translation read and ignored, and why."""


class Problem(NamedTuple):
    """One thing that cannot be translated."""

    location: Location | None
    step: str | None
    message: str
    hint: str | None = None


@dataclass
class _Target:
    """What a translated step gives later steps: ``kind`` is text, json, set, parallel, each, value, or
    loop and outer (whose ``resolve`` translates a reference to them)."""

    id: str
    kind: str
    children: dict[str, _Target] = field(default_factory=dict)
    """parallel: the children, by task id as written and by step id."""
    resolve: Callable[[str, list[str], Path_, bool], str | None] | None = field(default=None, compare=False)
    """``(name, fields, at, text)`` → the expression for ``fields`` of this step's result, when its kind
    has its own (a for_loop's result map, a step outside a loop's body)."""

    def tasks(self) -> dict[str, _Target]:
        """The children by task id as written, in order."""
        seen: dict[str, str] = {}
        for name, child in self.children.items():
            seen.setdefault(child.id, name)
        return {name: self.children[name] for name in seen.values()}


class Expressions:
    """Translator state, problem reporting, and the translation of prompts, references and conditions."""

    def __init__(self, smap: SourceMap, base_dir: Path | None) -> None:
        self.smap, self.base_dir = smap, base_dir
        self.problems: list[Problem] = []
        self.origin: dict[Path_, Path_] = {}
        """Translated path → the original path it came from."""
        self.blocks: dict[Path_, Path_] = {}
        self.ids: dict[str, str] = {}
        """Step and parallel task names (and their ids) → step id."""
        self.done: dict[str, _Target] = {}
        self.order: list[str] = []
        """Ids of the steps seen so far, translated or not."""
        self.vars: set[str] = set()
        self.loop: str | None = None
        self.current: str | None = None
        self.output_dir = "outputs"
        self.options: dict[str, tuple[Any, Path_]] = {}
        self.ignored: list[tuple[str, Path_]] = []
        """Runtime settings read and ignored, with where they are (one note lists them)."""
        self.notes: dict[str, str] = {}
        """What else was read and ignored, and why: one note per subject."""
        self.rebound: dict[str, str] = {}
        """Variables whose value is now an expression: those a while_loop's body sets (in its condition,
        the last iteration's or the value before the loop; after it, the loop's output)."""
        self.iteration: str | None = None
        """In a while_loop's body: the name its ``loop.iteration`` (and ``loop.count``) becomes."""
        self.workflow_name = ""
        self.scope: LoopScope | None = None
        """In a for_loop's body: the workflow around it, whose names the body reads through inputs."""

    # -- reporting and source locations --

    def note(self, at: Path_, subject: str, why: str) -> None:
        """Note, once per ``subject``, that ``subject`` (at ``at``) is read and ignored: ``why``."""
        if subject not in self.notes:
            where = self.smap.locate(at)
            self.notes[subject] = f"pipeline_ex's {subject} is ignored: {why} (at {where or self.smap.source})"

    def remark(self, at: Path_, subject: str, text: str) -> None:
        """Note ``text`` (what the translation does and why), once per ``subject``, with where it is."""
        self.notes.setdefault(subject, f"{text} (at {self.smap.locate(at) or self.smap.source})")

    def problem(self, at: Path_, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.problems.append(Problem(self.smap.locate(at, key=key), self.current, message, hint))

    def check_keys(self, raw: Mapping[str, Any], at: Path_, allowed: set[str], what: str,
                   hints: Mapping[str, str] | None = None, ignored: set[str] = _IGNORED) -> None:
        for key in raw:
            if key not in allowed and key not in ignored:
                hint = (hints or {}).get(key) or f"{what} keys that translate: {', '.join(sorted(allowed))}"
                self.problem(at + (key,), f"{what} key {key!r} is not supported", hint, key=True)

    # -- values, prompts, references --

    def prompt(self, value: Any, at: Path_) -> tuple[str, Path_, Path_ | None]:
        """The template for prompt ``value``, where its text is, and its block scalar if it is one."""
        if isinstance(value, str):
            return self.text(value, at), at, at
        if not isinstance(value, list) or not value:
            self.problem(at, "prompt must be text or a list of parts ({type: static, content: ...})")
            return "", at, None
        pieces = []
        for index, part in enumerate(value):
            part_at = at + (index,)
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "static":
                self.check_keys(part, part_at, {"type", "content"}, "static prompt part")
                content = part.get("content")
                pieces.append(self.text("" if content is None else str(content), part_at + ("content",)))
            elif kind == "file":
                self.check_keys(part, part_at, {"type", "path", "encoding"}, "file prompt part")
                path = part.get("path")
                if isinstance(path, str) and "{{" in path:  # named at run time: read when the step runs
                    pieces.append(self.read_at_run_time(path, part.get("encoding"), part_at + ("path",)))
                else:
                    pieces.append(literal(self.read(path, part.get("encoding"), part_at + ("path",))))
            elif kind == "previous_response":
                self.check_keys(part, part_at, {"type", "step", "extract", "extract_with"},
                                "previous_response prompt part")
                if "extract_with" in part:  # pipeline_ex's content extractor gives the text unchanged
                    self.note(part_at + ("extract_with",), "previous_response extract_with:",
                              "pipeline_ex's content extractor returns the reply's text as it is, as this does")
                pieces.append(self.previous(part, part_at))
            else:
                self.problem(part_at + ("type",) if isinstance(part, Mapping) and "type" in part else part_at,
                             f"prompt part type {kind!r} is not supported",
                             "parts that translate: static, file, previous_response")
        if len(value) == 1 and isinstance(value[0], Mapping) and value[0].get("type") == "static":
            return "\n".join(pieces), at + (0, "content"), at + (0, "content")
        return "\n".join(pieces), at, None

    def read_at_run_time(self, path: str, encoding: Any, at: Path_) -> str:
        """A file part whose path is a template: the sandbox's ``read_text`` of the path, as the step
        renders it (relative to the working directory, as pipeline_ex reads it; it may not leave it)."""
        terms, pos = [], 0
        for match in re.finditer(r"\{\{([^{}]+)\}\}", path):
            if path[pos:match.start()]:
                terms.append(json.dumps(path[pos:match.start()]))
            expr = self.reference(match[1].strip(), at, text=True)
            terms.append(f"({expr})" if expr else json.dumps(match[0]))
            pos = match.end()
        if path[pos:]:
            terms.append(json.dumps(path[pos:]))
        how = f", {json.dumps(encoding)}" if isinstance(encoding, str) else ""
        return f"{{{{ read_text({' ~ '.join(terms)}{how}) }}}}"

    def read(self, path: Any, encoding: Any, at: Path_) -> str:
        """A prompt file's text: relative to the pipeline file's directory, then the working directory."""
        if not isinstance(path, str) or not path or "{{" in path:
            self.problem(at, f"file part needs a plain path, got {path!r}")
            return ""
        bases = [b for b in dict.fromkeys([self.base_dir, Path.cwd()]) if b is not None]
        for base in bases:
            if (candidate := base / path).is_file():
                try:
                    if (size := candidate.stat().st_size) > MAX_PIPELINE_FILE_BYTES:
                        self.problem(at, f"prompt file {path!r} is {size:,} bytes, over the limit of "
                                         f"{MAX_PIPELINE_FILE_BYTES:,}")
                        return ""
                    return candidate.read_text(encoding=encoding or "utf-8")
                except (OSError, UnicodeDecodeError, LookupError) as exc:
                    self.problem(at, f"cannot read prompt file {path!r}: {exc}")
                    return ""
        self.problem(at, f"prompt file {path!r} not found", "looked in " + ", ".join(str(b) for b in bases))
        return ""

    def previous(self, part: Mapping[str, Any], at: Path_) -> str:
        name, extract = part.get("step"), part.get("extract")
        target = self.target(name, at + ("step",))
        fields = segments(extract.replace("[", ".").replace("]", "")) if isinstance(extract, str) else []
        if extract is not None and fields is None:
            self.problem(at + ("extract",), f"extract {extract!r} is not supported", "use field.sub[0] paths")
        if target is None or fields is None:
            return ""
        if target.kind == "parallel" and not fields:
            return "\n".join(f"{literal(f'===[{t}]===')}\n{{{{ steps.{c.id}.text }}}}" for t, c in target.tasks().items())
        expr = self.step_expr(target, name, fields, at + ("extract",) if fields else at)
        return "" if expr is None else f"{{{{ {expr} }}}}"

    def target(self, name: Any, at: Path_) -> _Target | None:
        ident = self.ids.get(name) if isinstance(name, str) else None
        if ident is not None and ident == self.ids.get(self.current or ""):
            which = "is this step"
        elif ident in self.done:
            return self.done[ident]
        elif ident in self.order:
            return None  # that step could not be translated, and says so
        elif ident is None and self.scope is not None and self.scope.knows_step(name):
            return _Target(name, "outer", resolve=self.scope.step)
        else:
            which = "runs later" if ident is not None else "is not a step"
        self.problem(at, f"refers to step {name!r}, which {which}", f"earlier steps: {', '.join(self.order) or 'none'}")
        return None

    def step_expr(self, target: _Target, name: str, fields: list[str], at: Path_, text: bool = True) -> str | None:
        """The expression for ``fields`` of a step's result; with ``text``, shown as text (JSON if structured)."""
        if target.resolve is not None:
            return target.resolve(name, fields, at, text)
        base = f"steps.{target.id}"
        if target.kind == "parallel" and fields:
            child = target.children.get(fields[0])
            if child is None:
                self.problem(at, f"step {name!r} has no task {fields[0]!r}",
                             f"its tasks: {', '.join(target.tasks())}")
                return None
            return self.step_expr(child, fields[0], fields[1:], at, text)
        if target.kind == "value":  # a python step's return value (test_echo, file_ops) or a pipeline's outputs
            fields = fields[1:] if fields[:1] == ["result"] else fields
            expr = f"{base}.output{subscript(fields)}"
            return f"({expr} if {expr} is string else {expr} | tojson)" if text else expr
        if target.kind in ("text", "each") and (not fields or fields in (["text"], ["content"], ["result"])):
            return f"{base}.text"
        if target.kind == "text" and fields in (["success"], ["cost"]):  # the other keys of pipeline_ex's reply map
            ok = f'({base}.status == "ok")'  # text: Elixir's true / false
            return f"({base}.cost or 0)" if fields == ["cost"] else f'("true" if {ok} else "false")' if text else ok
        if target.kind == "text" or (target.kind == "each" and not fields[0].isdigit()):
            self.problem(at, f"step {name!r} gives text, so it has no field {'.'.join(fields)!r}",
                         f"add output_schema: to step {name!r} for a structured reply, or read {name}.text")
            return None
        expr = f"{base}.output{subscript(fields)}"
        return f"{expr} if {expr} is string else {expr} | tojson" if text else expr

    def text(self, source: str, at: Path_) -> str:
        """``source`` as a template: pipeline_ex ``{{ references }}`` translated, everything else literal."""
        out, pos = [], 0
        for match in re.finditer(r"\{\{([^{}]+)\}\}", source):
            expr = self.reference(match[1].strip(), at, text=True)
            out += [literal(source[pos:match.start()]), f"{{{{ {expr} }}}}" if expr else literal(match[0])]
            pos = match.end()
        return "".join(out) + literal(source[pos:])

    def value(self, value: Any, at: Path_) -> Any:
        if isinstance(value, str):
            return self.text(value, at)
        if isinstance(value, list):
            return [self.value(v, at + (i,)) for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            return {k: self.value(v, at + (k,)) for k, v in value.items()}
        return value

    def reference(self, source: str, at: Path_, text: bool) -> str | None:
        """A pipeline_ex reference (``state.x``, ``loop.item.f``, ``steps.a.f``, ``a.f``) as Jinja; one pipeline_ex
        computes (``multiply(a, 2)``, ``state.n + 1``) as it computes it; one it renders empty, empty."""
        if source.startswith("previous_response:"):  # previous_response:step[:field.path]
            name, _, path = source[len("previous_response:"):].partition(":")
            fields = segments(path) if path else []
            if fields is None or segments(name) is None:
                self.problem(at, f"{{{{{source}}}}} is not supported", "write previous_response:step:field.path")
                return None
            head, *rest = segments(name) or [name]
            return self.step_ref(head, rest + fields, at, text)
        if (builtin := builtin_value(source, self.workflow_name, self.current)) is not None:
            return builtin
        parts = segments(source)  # a hyphen in these paths is part of a name (pipeline_ex looks them up first)
        if FUNCTION_START.match(source) or parts is None or (any(op in source for op in OPERATORS) and not (
                parts[0] in ("steps", "inputs", "global_vars", "loop") or self.is_step(parts[0]))):
            return computed(self, source, at)
        head, rest = parts[0], parts[1:]
        if head == "loop":
            return self.loop_ref(rest, at)
        if head in ("state", "variables", "inputs", "global_vars") and rest:  # inputs: a nested pipeline's
            head, rest = rest[0], rest[1:]
        elif head == "steps" and rest:
            return self.step_ref(rest[0], rest[1:], at, text)
        elif self.is_step(head) and head not in self.vars and head != self.loop:
            return self.step_ref(head, rest, at, text)
        elif rest and head not in self.vars and head not in self.rebound and head not in _BUILTINS:
            return nothing(self, source, at)
        if head in _BUILTINS:
            self.problem(at, f"pipeline_ex's built-in {{{{{source}}}}} is not supported", "pass it as a variable")
            return None
        if not head.isidentifier():
            self.problem(at, f"{head!r} in {{{{{source}}}}} is not a step or a valid variable name")
            return None
        if head in self.rebound:
            return f"({self.rebound[head]})" + subscript(rest)
        return (head if self.scope is None else self.scope.variable(head, at)) + subscript(rest)

    def is_step(self, name: str) -> bool:
        """Whether ``name`` is a step here (or, in a loop's body, around it)."""
        return name in self.ids or (self.scope is not None and self.scope.knows_step(name))

    def step_ref(self, name: str, fields: list[str], at: Path_, text: bool) -> str | None:
        target = self.target(name, at)
        return None if target is None else self.step_expr(target, name, fields, at, text)

    def loop_ref(self, rest: list[str], at: Path_) -> str | None:
        special = {"index": "loop.index", "total": "loop.length", "first": "(loop.index == 0)",
                   "last": "(loop.index == loop.length - 1)"}
        if self.loop is None and self.iteration is not None and rest in (["iteration"], ["count"]):
            return self.iteration
        if self.loop is None:
            self.problem(at, "loop.* is only defined in a for_loop's steps")
        elif rest and rest[0] == self.loop:
            return self.loop + subscript(rest[1:])
        elif len(rest) == 1 and rest[0] in special:
            return special[rest[0]]
        else:
            self.problem(at, f"loop.{'.'.join(rest)} is not supported",
                         f"use loop.{self.loop}, loop.index, loop.total, loop.first or loop.last")
        return None

    def data_source(self, value: Any, at: Path_) -> Any:
        if isinstance(value, list):
            return self.value(value, at)
        source = value.strip() if isinstance(value, str) else ""
        source = re.sub(r"^\{\{(.*)\}\}$", r"\1", source, flags=re.DOTALL).strip()
        if not source:
            self.problem(at, f"data_source {value!r} is not supported", "name a step field, a variable, or write a list")
            return []
        expr = self.reference(source, at, text=False)
        return f"{{{{ {expr} }}}}" if expr else []

    def condition(self, value: Any, at: Path_) -> str:
        """A pipeline_ex condition as a Jinja expression."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "(" + " and ".join([self.condition(v, at + (i,)) for i, v in enumerate(value)] or ["true"]) + ")"
        if isinstance(value, Mapping) and len(value) == 1:
            (op, arg), = value.items()
            if op in ("and", "or") and isinstance(arg, list) and arg:
                return "(" + f" {op} ".join(self.condition(v, at + (op, i)) for i, v in enumerate(arg)) + ")"
            if op == "not":
                return f"not ({self.condition(arg, at + (op,))})"
        if isinstance(value, str):
            source = re.sub(r"^\s*\{\{(.*)\}\}\s*$", r"\1", value, flags=re.DOTALL).strip()
            match = _COMPARISON.fullmatch(source)
            if match:
                left, op, right = (self.operand(match[1], at), match[2].strip(), self.operand(match[3], at))
                return f"({right} in {left})" if op == "contains" else f"{left} {op} {right}"
            if _TRUTHY.fullmatch(source) and source not in ("true", "false", "null"):
                return self.operand(source, at)
        self.problem(at, f"condition {value!r} is not supported",
                     "write 'step.field == value' (==, !=, <, <=, >, >=, contains), combined with and:/or:/not:")
        return "false"

    def operand(self, token: str, at: Path_) -> str:
        if token[0] in "'\"":
            return json.dumps(token[1:-1], ensure_ascii=False)
        if token in ("true", "false", "null") or token.lstrip("-")[:1].isdigit():
            return {"null": "none"}.get(token, token)
        return self.reference(token, at, text=False) or "none"

    def output_path(self, value: Any, at: Path_) -> str:
        if not isinstance(value, str) or not value:
            self.problem(at, "output_to_file must be a file name")
            return "output"
        path = value if value.startswith("/") else posixpath.join(self.output_dir, value)
        return self.text(path, at)


_OPERAND = r"'[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?|[A-Za-z_][\w-]*(?:\.[\w-]+)*"
_COMPARISON = re.compile(rf"({_OPERAND})\s*(==|!=|>=|<=|>|<|(?<=\s)contains(?=\s))\s*({_OPERAND})")
_TRUTHY = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*")
