"""Jinja2 templates, sandboxed and strict: ``{{ topic }}``, ``{{ steps.a.text }}``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

STEPS = "steps"
"""The reserved template name through which earlier steps are reached."""


class TemplateProblem(Exception):
    """A template that cannot compile or render; ``line`` is 1-based within the template."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox, plus: no module objects (``{{ os.system(...) }}`` with ``os`` in the kernel)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, ModuleType) or isinstance(value, ModuleType):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def is_safe_callable(self, obj: Any) -> bool:
        return not isinstance(obj, ModuleType) and super().is_safe_callable(obj)


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return _Sandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class Template:
    """A compiled template with the names and steps it refers to."""

    source: str
    names: frozenset[str]
    step_refs: tuple[str, ...]
    _compiled: jinja2.Template | None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """1-based line of the first use of each name and of each ``steps.<id>``."""

    @property
    def is_static(self) -> bool:
        return self._compiled is None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with only the names this template uses taken from ``context``."""
        if self._compiled is None:
            return self.source
        values = pick(self.names, context)
        try:
            return self._compiled.render(values)
        except SecurityError as exc:
            msg = f"refused by the template sandbox: {exc}"
            raise TemplateProblem(msg) from None
        except jinja2.UndefinedError as exc:
            raise TemplateProblem(f"undefined in template: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateProblem(str(exc), getattr(exc, "lineno", None)) from None
        except Exception as exc:  # a user's object raised while being rendered
            raise TemplateProblem(f"{type(exc).__name__} while rendering: {exc}") from None


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


def compile_template(source: str) -> Template:
    """Compile ``source``; raise TemplateProblem on bad syntax."""
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return literal(source)
    env = _environment()
    try:
        ast = env.parse(source)
        compiled = env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "bad template syntax", exc.lineno) from None
    names = frozenset(meta.find_undeclared_variables(ast))
    lines: dict[str, int] = {}
    for name in ast.find_all(nodes.Name):
        if name.name in names:
            lines[name.name] = min(lines.get(name.name, name.lineno), name.lineno)
    refs = _step_refs(ast, lines)
    return Template(source, names, refs, compiled, lines)


def _step_refs(ast: nodes.Template, lines: dict[str, int]) -> tuple[str, ...]:
    """Step ids named as ``steps.x`` or ``steps['x']``, in order of appearance;
    records the line of each as ``lines["steps.x"]``."""
    refs: list[str] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == STEPS):
            continue
        if isinstance(node, nodes.Getattr):
            ref = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            ref = node.arg.value
        else:
            continue
        refs.append(ref)
        key = f"{STEPS}.{ref}"
        lines[key] = min(lines.get(key, node.lineno), node.lineno)
    return tuple(dict.fromkeys(refs))
