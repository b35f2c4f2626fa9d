"""Templated values: ``vars:``, ``args:``, ``inputs:``, ``when:`` and ``for_each:``.

A string that is exactly one ``{{ expression }}`` evaluates to the expression's own
value (a list stays a list); any other string is rendered as text; mappings and lists
are templated item by item; everything else is kept as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SecurityError

from ._sandbox import sandbox_environment
from ._template_limits import loop_budget
from ._templates import Template, TemplateProblem, compile_template, pick

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.S)


@dataclass(frozen=True)
class Value:
    """A compiled templated value."""

    raw: Any
    """As written."""
    templates: tuple[Template, ...]
    _evaluate: Any

    @property
    def names(self) -> frozenset[str]:
        return frozenset().union(*(t.names for t in self.templates))

    @property
    def step_refs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ref for t in self.templates for ref in t.step_refs))

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        return self._evaluate(context)


def compile_value(raw: Any, *, expression: bool = False) -> Value:
    """Compile ``raw``; with ``expression``, a string without braces is one expression."""
    source = raw
    if expression and isinstance(raw, str) and "{{" not in raw:
        source = "{{ " + raw + " }}"
    templates: list[Template] = []
    evaluate = _compile(source, templates)
    return Value(raw, tuple(templates), evaluate)


def _compile(raw: Any, templates: list[Template]) -> Any:
    if isinstance(raw, Mapping):
        parts = {key: _compile(item, templates) for key, item in raw.items()}
        return lambda ctx: {key: part(ctx) for key, part in parts.items()}
    if isinstance(raw, list):
        items = [_compile(item, templates) for item in raw]
        return lambda ctx: [item(ctx) for item in items]
    if not isinstance(raw, str):
        return lambda ctx: raw
    template, evaluate = _compile_text(raw)
    templates.append(template)
    return evaluate


@lru_cache(maxsize=4096)  # YAML aliases may repeat one text thousands of times: compile it once
def _compile_text(raw: str) -> tuple[Template, Callable[[Mapping[str, Any]], Any]]:
    """The template of ``raw`` and how to evaluate it: as text, or as one expression's own value."""
    template = compile_template(raw)
    match = _SINGLE_EXPRESSION.match(raw)
    if match is None or template.is_static:
        return template, template.render
    try:
        expr = sandbox_environment().compile_expression(match["expr"], undefined_to_none=False)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "bad expression", exc.lineno) from None
    except Exception as exc:  # compile_template parsed it already; this is Jinja failing on its own
        raise TemplateProblem(f"cannot compile the expression: {type(exc).__name__}: {exc}") from None
    names = template.names

    def native(ctx: Mapping[str, Any]) -> Any:
        values = pick(names, ctx)
        try:
            with loop_budget():
                value = expr(**values)
        except TemplateProblem:
            raise
        except SecurityError as exc:
            raise TemplateProblem(f"refused by the template sandbox: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateProblem(str(exc)) from None
        except Exception as exc:
            raise TemplateProblem(f"{type(exc).__name__} while evaluating {raw!r}: {exc}") from None
        if isinstance(value, jinja2.Undefined):
            try:
                str(value)
            except jinja2.UndefinedError as exc:
                raise TemplateProblem(f"undefined in template: {exc.message}") from None
        return value

    return template, native


def truthy(value: Any) -> bool:
    """``when``'s test: rendered text such as "false", "no", "0" or "" is false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "off")
    return bool(value)
