"""Jinja2 templates, sandboxed and strict: ``{{ topic }}``, ``{{ steps.a.text }}``.

What a template may call and build is decided in ``sandbox``; the bounds, the loop budget
and ``render_cancelled_by`` (which stops a render when its run is interrupted) live in
``template_limits`` and are re-exported here.
"""

from __future__ import annotations

from functools import lru_cache

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SecurityError
from jinja2.visitor import NodeTransformer

from ._sandbox import BOUNDED_TEXT, COUNTED_LOOP, Sandbox, sandbox_environment
from ._template_limits import (
    CANCEL_POLL_EVERY,
    MAX_TEXT,
    RenderInterrupted,
    TemplateProblem,
    check_binop,
    check_cancelled,
    loop_budget,
    refused,
    render_cancelled_by,
)

__all__ = ["STEPS", "RenderInterrupted", "Template", "TemplateProblem", "compile_template", "literal", "pick",
           "render_cancelled_by"]

STEPS = "steps"
"""The reserved template name through which earlier steps are reached."""


@dataclass(frozen=True)
class Template:
    """A compiled template with the names and steps it refers to."""

    source: str
    names: frozenset[str]
    step_refs: tuple[str, ...]
    _compiled: jinja2.Template | None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """1-based line of the first use of each name and of each ``steps.<id>``."""
    step_attributes: tuple[tuple[str, str, int], ...] = field(default=(), compare=False, repr=False)
    """``(step id, attribute, line)`` for each ``steps.<id>.<attribute>``, to check before the run."""
    optional: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Names used only under a ``default`` filter (``{{ tone | default("plain") }}``): they may be undefined."""

    @property
    def is_static(self) -> bool:
        return self._compiled is None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with only the names this template uses taken from ``context``."""
        if self._compiled is None:
            return self.source
        values = pick(self.names, context)
        try:
            with loop_budget():
                return _collect(self._compiled.generate(values))
        except TemplateProblem as exc:
            exc.line = exc.line or _template_line(exc.__traceback__)
            raise
        except SecurityError as exc:
            msg = f"refused by the template sandbox: {exc}"
            raise TemplateProblem(msg, _template_line(exc.__traceback__)) from None
        except jinja2.UndefinedError as exc:
            raise TemplateProblem(f"undefined in template: {exc.message}", _template_line(exc.__traceback__)) from None
        except jinja2.TemplateError as exc:
            raise TemplateProblem(str(exc), getattr(exc, "lineno", None)) from None
        except Exception as exc:  # a user's object raised while being rendered, or RecursionError
            line = _template_line(exc.__traceback__)
            raise TemplateProblem(f"{type(exc).__name__} while rendering: {exc}", line) from None


def _collect(chunks: Generator[str, None, None]) -> str:
    """The rendered text, refused past ``MAX_TEXT`` characters; polls the cancel flag as it goes."""
    parts: list[str] = []
    size = 0
    try:
        for count, chunk in enumerate(chunks, 1):
            size += len(chunk)
            if size > MAX_TEXT:
                raise refused(f"the rendered text passed {MAX_TEXT:,} characters",
                              fix="render less: cut or summarise the inputs in a python step")
            parts.append(chunk)
            if count % CANCEL_POLL_EVERY == 0:
                check_cancelled()
    finally:
        chunks.close()
    return "".join(parts)


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line an exception was raised at: Jinja rewrites its frames to ``<template>``."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def pick(names: frozenset[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``names`` found in ``context``; a module among them is refused."""
    values = {name: context[name] for name in names if name in context}
    for name, value in values.items():
        if isinstance(value, ModuleType):
            raise TemplateProblem(f"refused by the template sandbox: {name!r} is a module, "
                                  "and templates may not use modules")
    return values


def literal(text: str) -> Template:
    """A template that renders to ``text`` exactly, braces and all."""
    return Template(text, frozenset(), (), None)


@lru_cache(maxsize=4096)  # a Template is immutable, and YAML aliases may repeat one text thousands of times
def compile_template(source: str) -> Template:
    """Compile ``source``; raise TemplateProblem on bad syntax, or on a constant the sandbox refuses."""
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return literal(source)
    env = sandbox_environment()
    try:
        ast = env.parse(source)
        _check_constants(env, ast)
        names = frozenset(meta.find_undeclared_variables(ast))
        lines: dict[str, int] = {}
        for name in ast.find_all(nodes.Name):
            if name.name in names:
                lines[name.name] = min(lines.get(name.name, name.lineno), name.lineno)
        refs = _step_refs(ast, lines)
        compiled = env.from_string(_Bounded(env).visit(ast))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "bad template syntax", exc.lineno) from None
    except RecursionError:
        raise TemplateProblem("the template nests too deeply for Jinja (brackets, filters or blocks);"
                              " split it into smaller expressions, or build the value in a python step") from None
    except TemplateProblem:
        raise
    except Exception as exc:  # Jinja failing on a template it parsed: say so rather than crash
        raise TemplateProblem(f"cannot compile the template: {type(exc).__name__}: {exc}") from None
    return Template(source, names, refs, compiled, lines, _step_attributes(ast), _optional(ast, names))


def _optional(ast: nodes.Template, names: frozenset[str]) -> frozenset[str]:
    """The names that appear only as what a ``default`` filter guards: undefined, they take the default."""
    guarded = {id(f.node) for f in ast.find_all(nodes.Filter)
               if f.name in ("default", "d") and isinstance(f.node, nodes.Name)}
    required = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load" and id(n) not in guarded}
    return frozenset(names - required)


_INTERCEPTED = {nodes.Pow: "**", nodes.Mul: "*", nodes.Mod: "%", nodes.Add: "+"}


def _check_constants(env: Sandbox, ast: nodes.Template) -> None:
    """Refuse, at load, arithmetic on literals that would pass a bound: ``{{ 2 ** 100000000 }}``.
    (Jinja does not fold these operators in the sandbox, so nothing is computed here.)"""
    eval_ctx = nodes.EvalContext(env)
    for node in ast.find_all(tuple(_INTERCEPTED)):
        try:
            left, right = node.left.as_const(eval_ctx), node.right.as_const(eval_ctx)
        except nodes.Impossible:
            continue
        try:
            check_binop(_INTERCEPTED[type(node)], left, right)
        except TemplateProblem as exc:
            exc.line = node.lineno
            raise


class _Bounded(NodeTransformer):
    """Routes every ``{% for %}`` iterable through the loop budget, and every ``~`` through a size check."""

    def __init__(self, env: Sandbox) -> None:
        self.env = env

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = self._filter(COUNTED_LOOP, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        return self._filter(BOUNDED_TEXT, self.generic_visit(node))

    def _filter(self, name: str, node: nodes.Expr) -> nodes.Filter:
        wrapped = nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
        wrapped.set_environment(self.env)
        return wrapped


def _step_refs(ast: nodes.Template, lines: dict[str, int]) -> tuple[str, ...]:
    """Step ids named as ``steps.x`` or ``steps['x']``, in order of appearance;
    records the line of each as ``lines["steps.x"]``."""
    refs: list[str] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        ref = _step_id(node)
        if ref is None:
            continue
        refs.append(ref)
        key = f"{STEPS}.{ref}"
        lines[key] = min(lines.get(key, node.lineno), node.lineno)
    return tuple(dict.fromkeys(refs))


def _step_attributes(ast: nodes.Template) -> tuple[tuple[str, str, int], ...]:
    """``(id, attribute, line)`` of each ``steps.<id>.<attribute>`` (or ``steps['id'].attribute``)."""
    return tuple((ref, node.attr, node.lineno) for node in ast.find_all(nodes.Getattr)
                 if (ref := _step_id(node.node)) is not None)


def _step_id(node: nodes.Node) -> str | None:
    """The id in ``steps.<id>`` or ``steps['<id>']``, if ``node`` is one."""
    if not isinstance(node, (nodes.Getattr, nodes.Getitem)):
        return None
    if not (isinstance(node.node, nodes.Name) and node.node.name == STEPS):
        return None
    if isinstance(node, nodes.Getattr):
        return node.attr
    return node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None
