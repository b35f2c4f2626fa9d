"""The Jinja2 sandbox templates run in: what they may reach, call and build.

Templates see kernel names, but they are for text. They may read attributes (not private
ones, not modules) and call methods of plain data: str, bytes, numbers, lists, dicts, sets,
dates, Decimal, Jinja's own helpers, and pipeline_nb's results. Any other call (a kernel
function, a class, a method of some other object) is refused with a pointer to python
steps. Arithmetic, repetition, widths and loops are bounded by ``template_limits``.

This is not a security boundary against pipeline authors, who can run any code in a python
step: it keeps a text template from running shell commands or freezing the kernel by accident.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import string
import types
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import filters, pass_context, pass_environment, pass_eval_context
from jinja2.runtime import BlockReference, Context, LoopContext, Macro, TemplateReference, Undefined
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Cycler, Joiner, Namespace, generate_lorem_ipsum
from markupsafe import Markup

from . import _template_limits as limits
from ._results import ErrorInfo, PipelineRun, StepResult, Usage
from ._template_limits import TemplateProblem, refused

COUNTED_LOOP = "_pipeline_nb_counted_loop"
"""The filter ``compile_template`` puts around every ``{% for %}`` iterable."""
BOUNDED_TEXT = "_pipeline_nb_bounded_text"
"""The filter ``compile_template`` puts around every ``a ~ b``."""

PLAIN_DATA: frozenset[type] = frozenset({
    str, bytes, bytearray, int, float, complex, bool, list, tuple, dict, set, frozenset, range,
    type({}.keys()), type({}.values()), type({}.items()),
    datetime.date, datetime.datetime, datetime.time, datetime.timedelta, datetime.tzinfo, datetime.timezone,
    decimal.Decimal, collections.OrderedDict, collections.defaultdict, collections.Counter, collections.deque,
    Markup, StepResult, PipelineRun, Usage, ErrorInfo,
    LoopContext, Cycler, Joiner, Namespace,
})
"""Classes whose own methods templates may call (``loop.cycle``, ``text.upper()``, ``d.items()``)."""
_JINJA_CALLABLES = (Macro, LoopContext, Joiner, BlockReference, TemplateReference, Undefined)
"""Jinja runtime objects called directly: macros, ``caller()``, ``loop(children)``; an undefined
name called raises its own "is undefined" error."""


class Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox, plus: no modules, calls only on plain data, and bounded sizes and loops."""

    intercepted_binops = frozenset({"**", "*", "%", "+"})
    """Routed through ``call_binop``; this also stops Jinja from folding them at compile time."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.update(range=limits.bounded_range, lipsum=_lipsum, now=_now, read_text=_read_text)
        self.filters.update(_BOUNDED_FILTERS)
        self._global_ids = frozenset(id(value) for value in self.globals.values())

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, types.ModuleType) or isinstance(value, types.ModuleType):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def is_safe_callable(self, obj: Any) -> bool:
        """Jinja's globals, its runtime objects, and methods defined by a PLAIN_DATA class.
        (Jinja's ``@unsafe`` marks matter no more: nothing on this list carries one.)"""
        if id(obj) in self._global_ids or isinstance(obj, (_BoundedFormat, *_JINJA_CALLABLES)):
            return True
        return _method_owner(obj) in PLAIN_DATA

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj`` from a template: refused unless plain data; macro calls count as loop steps."""
        if not self.is_safe_callable(obj):
            raise refused("templates may only call methods of plain data (str, list, dict, numbers);"
                          f" {_describe(obj)}: call it from a python step (call: ...) and use its output", fix="")
        if isinstance(obj, (Macro, LoopContext)):
            limits.count_steps()
            if isinstance(obj, LoopContext) and args:  # ``loop(children)`` of a recursive loop
                args = (limits.counted(args[0]), *args[1:])
        elif (owner := getattr(obj, "__self__", None)) is not None:
            args = limits.check_method_call(owner, obj.__name__, args, kwargs)
        return context.call(obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return self.binop_table[operator](left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``text.format`` and ``text.format_map``, sandboxed and with bounded widths."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
                "format", "format_map") or not isinstance(value.__self__, str):
            return None
        return _BoundedFormat(self, value.__self__, value.__name__ == "format_map")


def _method_owner(obj: Any) -> type | None:
    """The class that defines the bound method ``obj``, or None if ``obj`` is no bound method."""
    if not isinstance(obj, (types.MethodType, types.BuiltinMethodType, types.MethodWrapperType)):
        return None
    bound = obj.__self__
    if bound is None or isinstance(bound, types.ModuleType):  # a builtin function such as open
        return None
    return _defining_class(bound if isinstance(bound, type) else type(bound), obj.__name__)


@lru_cache(maxsize=4096)
def _defining_class(cls: type, name: str) -> type | None:
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def _describe(obj: Any) -> str:
    """What ``obj`` is, for a refusal: "get_ipython is a function from the kernel"."""
    name = getattr(obj, "__name__", None)
    if isinstance(obj, type):
        return f"{name} is a class from the kernel"
    if isinstance(obj, (types.MethodType, types.BuiltinMethodType)) and not isinstance(obj.__self__, (
            types.ModuleType, type(None))):
        bound = obj.__self__
        owner = bound.__name__ if isinstance(bound, type) else type(bound).__name__
        return f"{name} is a method of {owner}, which is not plain data"
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)) and name:
        return f"{name} is a function from the kernel"
    return f"a {type(obj).__name__} object is not plain data"


# -- str.format with bounded widths --

class _BoundedFormatter(SandboxedFormatter):
    """The sandbox's formatter; the widths and precisions of one call add up to at most MAX_REPEAT."""

    _asked = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._asked = 0
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._asked += limits.check_format_spec(format_spec)
        limits.check_width("the total width and precision of this format()", self._asked)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


class _BoundedFormat:
    """``text.format`` (or ``format_map``) as templates call it."""

    def __init__(self, env: Sandbox, text: str, is_map: bool) -> None:
        self.env, self.text, self.is_map = env, text, is_map

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        if self.is_map:
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            args, kwargs = (), args[0]
        formatter: string.Formatter
        if isinstance(self.text, Markup):
            formatter = _BoundedEscapeFormatter(self.env, escape=self.text.escape)
        else:
            formatter = _BoundedFormatter(self.env)
        return type(self.text)(formatter.vformat(self.text, args, kwargs))


# -- Jinja's filters and lipsum, with their size arguments bounded --

@pass_context
def _counted_loop(context: Context, iterable: Any) -> Any:
    return limits.counted(iterable)


def _bounded_text(text: Any) -> Any:
    if isinstance(text, str):  # checked once built: ``~`` adds lengths, it cannot multiply them
        limits.check_size("this ~ concatenation", len(text))
    return text


def _center(value: Any, width: int = 80) -> str:
    limits.check_width("center() width", width)
    return filters.do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    limits.check_width("indent() width", width)
    if isinstance(s, str):
        indention = len(width) if isinstance(width, str) else width
        limits.check_size("indent()", len(s) + (s.count("\n") + 1) * max(indention, 0))
    return filters.do_indent(s, width, first, blank)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    limits.check_printf(str(value), kwargs or args)
    return filters.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    limits.check_size("join", limits.joined_size(d, items))
    return filters.sync_do_join(eval_ctx, items, d, attribute)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    limits.check_size("replace", limits.replaced_size(s, old, new, -1 if count is None else count))
    return filters.do_replace(eval_ctx, s, old, new, count)


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    limits.check_width("batch() size", linecount)
    return filters.do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    limits.check_width("slice() count", slices)
    return filters.sync_do_slice(value, slices, fill_with)


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, (list, tuple, str)):
        return filters.sync_do_sum(environment, iterable, attribute, start)
    if attribute is not None:
        iterable = map(filters.make_attrgetter(environment, attribute), iterable)
    total = start  # adding lists one by one, so each step is checked before it is built
    for item in iterable:
        limits.check_binop("+", total, item)
        total = total + item
    return total


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Markup:
    width = len(indent) if isinstance(indent, str) else indent
    if isinstance(width, int) and width > limits.MAX_JSON_INDENT:
        raise refused(f"tojson indent {width:,} is more than {limits.MAX_JSON_INDENT}", fix="use a smaller indent")
    return filters.do_tojson(eval_ctx, value, indent)


@pass_environment
def _wordwrap(environment: Any, s: str, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    if isinstance(wrapstring, str) and isinstance(s, str) and isinstance(width, int) and width > 0:
        limits.check_size("wordwrap()", len(s) + (len(s) // width + s.count("\n") + 1) * len(wrapstring))
    return filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _now(utc: bool = False) -> datetime.datetime:
    """``now()``: the current local time (``now(utc=true)``: UTC), a datetime (``.strftime``, ``.isoformat``)."""
    return datetime.datetime.now(datetime.timezone.utc) if utc else datetime.datetime.now()


def _read_text(path: Any, encoding: str = "utf-8") -> str:
    """``read_text(path)``: a text file's contents, for a prompt made of files named at run time. The
    path is relative to the working directory and may not leave it; past ``MAX_TEXT`` it is refused."""
    from ._files import UnsafePath, safe_path

    if not isinstance(path, str) or not path:
        raise TemplateProblem(f"read_text needs a file path, got {path!r}")
    try:
        target = safe_path(path, what="read_text")
    except UnsafePath as exc:
        raise refused(str(exc), fix="") from None
    if not target.is_file():
        raise TemplateProblem(f"read_text: no file {path!r} (looked in {Path.cwd()})")
    if target.stat().st_size > limits.MAX_TEXT:
        raise refused(f"read_text: {path!r} is more than {limits.MAX_TEXT:,} bytes", fix="")
    try:
        return target.read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError, LookupError) as exc:
        raise TemplateProblem(f"read_text: {path!r} cannot be read as {encoding} text: {exc}") from None


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002  Jinja's names
    words = n * (min if min > max else max)
    if words > limits.MAX_LIPSUM_WORDS:
        raise refused(f"lipsum() would write up to {words:,} words; at most {limits.MAX_LIPSUM_WORDS:,}",
                      fix="ask for fewer paragraphs")
    return generate_lorem_ipsum(n, html, min, max)


_BOUNDED_FILTERS = {
    COUNTED_LOOP: _counted_loop, BOUNDED_TEXT: _bounded_text,
    "center": _center, "indent": _indent, "format": _format, "join": _join, "replace": _replace,
    "batch": _batch, "slice": _slice, "sum": _sum, "tojson": _tojson, "wordwrap": _wordwrap,
}


@lru_cache(maxsize=1)
def sandbox_environment() -> Sandbox:
    """The one environment every template compiles in."""
    return Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
