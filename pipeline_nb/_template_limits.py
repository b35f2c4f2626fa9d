"""What one template render may cost: the named bounds, the per-thread loop budget, cancellation.

Templates are for text. These bounds keep a template from freezing or filling the kernel:
a number, width or count the template chooses cannot make Python build a huge value, and a
render stops after ``MAX_LOOP_STEPS`` loop iterations and macro calls, or when the run that
started it is interrupted (see ``render_cancelled_by``). Every refusal is a TemplateProblem
that names the bound and says where the work belongs: a python step.

    TemplateProblem      a template that cannot compile or render
     └── RenderInterrupted   the render stopped because its run was cancelled
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2.sandbox import MAX_RANGE  # Jinja's bound on range(): 100,000 items, kept as it is

MAX_INT_BITS = 4_096
"""Largest integer ``*`` and ``**`` may produce, in bits (about 1,233 decimal digits)."""
MAX_REPEAT = 1_000_000
"""Most characters or items ``*`` repetition may build, and the most that the width-like
arguments of one call may ask for: ``center``/``ljust``/``rjust``/``zfill`` and ``indent``
widths, the widths and precisions of one ``%`` or ``format`` (added up), ``batch``, ``slice``,
``to_bytes``."""
MAX_TEXT = 10_000_000
"""Most characters of a rendered template, and of a string or list grown from others by ``~``,
``+``, ``join``, ``replace``, ``indent``, ``wordwrap``, ``expandtabs``, ``translate``, ``extend``
or ``sum``."""
MAX_LOOP_STEPS = 1_000_000
"""Loop iterations plus macro calls allowed in one render."""
MAX_JSON_INDENT = 100
"""Largest ``tojson(indent=...)``."""
MAX_LIPSUM_WORDS = 100_000
"""Most words ``lipsum(n, ..., max=...)`` may ask for (``n`` times ``max``)."""
CANCEL_POLL_EVERY = 256
"""Loop steps (and output chunks) between two looks at the cancel flag."""

PYTHON_STEP = "do the work in a python step (call: ...) and use its output"


class TemplateProblem(Exception):
    """A template that cannot compile or render; ``line`` is 1-based within the template."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class RenderInterrupted(TemplateProblem):
    """The render stopped because the run that started it was interrupted."""


def refused(problem: str, fix: str = PYTHON_STEP) -> TemplateProblem:
    """The error for a template that asked for what the sandbox does not allow; ``fix`` says what to do."""
    return TemplateProblem(f"refused by the template sandbox: {problem}" + (f"; {fix}" if fix else ""))


# -- the per-thread render budget and cancel flag --

_state = threading.local()


@contextmanager
def render_cancelled_by(is_cancelled: Callable[[], bool]) -> Iterator[None]:
    """Within this block, a render on this thread raises RenderInterrupted soon after
    ``is_cancelled()`` turns true (it is polled every ``CANCEL_POLL_EVERY`` loop steps).

    The executor wraps each worker's work in it, e.g.
    ``with render_cancelled_by(lambda: token.cancelled): ...``.
    """
    previous = getattr(_state, "is_cancelled", None)
    _state.is_cancelled = is_cancelled
    try:
        yield
    finally:
        _state.is_cancelled = previous


@contextmanager
def loop_budget() -> Iterator[None]:
    """One render's loop budget: ``MAX_LOOP_STEPS`` steps, counted from zero."""
    previous = getattr(_state, "steps", None)
    _state.steps = 0
    try:
        yield
    finally:
        _state.steps = previous


def count_steps(done: int = 1) -> None:
    """Count ``done`` loop iterations or macro calls; refuse past the budget; look at the cancel
    flag each time the count passes a multiple of ``CANCEL_POLL_EVERY``."""
    steps = getattr(_state, "steps", None)
    if steps is None:  # a Jinja render outside Template.render: no budget to count against
        return
    _state.steps = steps + done
    if steps + done > MAX_LOOP_STEPS:
        raise refused(f"the template ran more than {MAX_LOOP_STEPS:,} loop iterations and macro calls in one render;"
                      " templates are for text")
    if (steps + done) // CANCEL_POLL_EVERY != steps // CANCEL_POLL_EVERY:
        check_cancelled()


def check_cancelled() -> None:
    """Raise RenderInterrupted if this thread's run has been cancelled."""
    is_cancelled = getattr(_state, "is_cancelled", None)
    if is_cancelled is not None and is_cancelled():
        raise RenderInterrupted("template rendering interrupted: the run was cancelled")


def bounded_range(*args: int) -> range:
    """``range()`` in templates: at most ``MAX_RANGE`` items."""
    items = range(*args)
    try:
        size = f"{len(items):,}" if len(items) > MAX_RANGE else None
    except OverflowError:  # longer than sys.maxsize
        size = "too many"
    if size is not None:
        raise refused(f"range() of {size} items; templates may use ranges of up to {MAX_RANGE:,}")
    return items


def counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable``, counting its items against the render's loop budget.

    Items are counted here and handed on in blocks, which keeps a loop step to ~two bytecodes.
    """
    pending = 0
    for item in iterable:
        pending += 1
        if pending == CANCEL_POLL_EVERY:
            count_steps(pending)
            pending = 0
        yield item
    count_steps(pending)  # not on the way out of an error: that would poll (and raise) once more


# -- sizes: each check runs before the big value would be built --

def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` when its result would pass a bound."""
    if operator == "**":
        _check_power(left, right)
    elif operator == "*":
        _check_product(left, right)
    elif operator == "%" and isinstance(left, (str, bytes)):
        check_printf(left, right)
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        check_size(f"{_kind(left)} + {_kind(right)}", len(left) + len(right), _unit(left))


_SEQUENCES = (str, bytes, bytearray, list, tuple)


def _is_int(value: Any) -> bool:
    """An integer of any kind: kernel values may be numpy ints, whose products can silently wrap."""
    return isinstance(value, numbers.Integral)


def _check_power(base: Any, exponent: Any) -> None:
    if not (_is_int(base) and _is_int(exponent)):
        return
    base, exponent = int(base), int(exponent)
    if exponent <= 0 or abs(base) <= 1:
        return
    bits = exponent * math.log2(abs(base))
    if bits > MAX_INT_BITS:
        raise refused(f"{_number(base)} ** {exponent:,} would be an integer of about {bits:,.0f} bits;"
                      f" templates compute integers up to {MAX_INT_BITS:,} bits")


def _check_product(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        left, right = int(left), int(right)
        bits = abs(left).bit_length() + abs(right).bit_length()
        if bits > MAX_INT_BITS:
            raise refused(f"{_number(left)} * {_number(right)} would be an integer of about {bits:,} bits;"
                          f" templates compute integers up to {MAX_INT_BITS:,} bits")
        return
    sequence, times = (left, right) if _is_int(right) else (right, left)
    if isinstance(sequence, _SEQUENCES) and _is_int(times) and times > 1:
        times = int(times)
        size = len(sequence) * times
        if size > MAX_REPEAT:
            raise refused(f"{_kind(sequence)} * {times:,} would build {size:,} {_unit(sequence)};"
                          f" templates may repeat up to {MAX_REPEAT:,}")


def check_size(what: str, size: int, unit: str = "characters") -> None:
    """Refuse a string or list of more than ``MAX_TEXT`` characters or items."""
    if size > MAX_TEXT:
        raise refused(f"{what} would build {size:,} {unit}; templates build at most {MAX_TEXT:,}")


def check_width(what: str, width: Any) -> None:
    """Refuse a width-like argument (``center``, ``batch``, a format width) above ``MAX_REPEAT``."""
    if isinstance(width, str):
        width = len(width)
    if _is_int(width) and width > MAX_REPEAT:
        raise refused(f"{what} is {int(width):,}; templates may ask for at most {MAX_REPEAT:,}")


_PRINTF = re.compile(r"%(?:\((?P<key>[^)]*)\))?[#0 +-]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?"
                     r"(?P<conversion>[\s\S])?")


def check_printf(template: str | bytes, values: Any) -> None:
    """Refuse a ``%`` format whose widths and precisions add up to more than ``MAX_REPEAT``
    (``"%0*d" % (10**9, 1)``), before Python pads anything."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    positional = values if isinstance(values, tuple) else (values,)
    index, total = 0, 0
    for spec in _PRINTF.finditer(text):
        for part in ("width", "precision"):
            amount = spec[part]
            if amount == "*":
                amount = positional[index] if index < len(positional) else 0
                index += 1
            if part == "precision" and spec["conversion"] in ("s", "r", "a", "c", "%"):
                continue  # a precision that truncates builds nothing
            total += _digits(amount)
        if spec["conversion"] != "%":
            index += 1
    check_width("the total width and precision of this % format", total)


def check_format_spec(spec: str) -> int:
    """The width and precision a ``str.format`` field asks for (every number in its spec)."""
    return sum(_digits(run) for run in re.findall(r"\d+", spec))


def _digits(amount: Any) -> int:
    if isinstance(amount, str):
        return int(amount) if amount and len(amount) <= 18 else (MAX_REPEAT + 1 if amount else 0)
    return int(amount) if _is_int(amount) and amount > 0 else 0


# -- methods of plain data that can build big values from small arguments --

def check_method_call(owner: Any, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse ``owner.name(*args)`` when it would pass a bound; the args to call with
    (an iterator given to ``join`` or ``extend`` comes back as a list)."""
    if isinstance(owner, (str, bytes, bytearray)):
        if name in ("center", "ljust", "rjust", "zfill") and args:
            check_width(f"{name}() width", args[0])
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if _is_int(tabsize):
                tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
                check_size("expandtabs()", len(owner) + tabs * int(tabsize))
        elif name == "replace" and len(args) >= 2:
            check_size("replace()", replaced_size(owner, *args))
        elif name == "join" and args:
            items = list(args[0])
            check_size("join()", joined_size(owner, items))
            return (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping) and isinstance(owner, str):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            check_size("translate()", len(owner) * longest)
    if isinstance(owner, (list, bytearray)) and name == "extend" and args:
        items = args[0] if isinstance(args[0], (list, tuple, bytes, bytearray, str)) else list(args[0])
        check_size("extend()", len(owner) + len(items), "items")
        return (items, *args[1:])
    if _is_int(owner) and name == "to_bytes":
        check_width("to_bytes() length", args[0] if args else kwargs.get("length", 1))
    return args


def replaced_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    """The length of ``text.replace(old, new, count)``, without building it."""
    if not (isinstance(text, (str, bytes, bytearray)) and type(old) is type(new) and isinstance(old, type(text))):
        text, old, new = str(text), str(old), str(new)
    found = text.count(old)
    if _is_int(count) and 0 <= count < found:
        found = count
    return len(text) + found * (len(new) - len(old))


def joined_size(separator: Any, items: list[Any]) -> int:
    """A lower bound on the length of ``separator.join(items)``, counting string items only."""
    strings = sum(len(item) for item in items if isinstance(item, (str, bytes)))
    return len(str(separator)) * max(len(items) - 1, 0) + strings


def _kind(value: Any) -> str:
    if isinstance(value, (str, bytes)) and len(value) <= 20:
        return repr(value)
    return f"a {type(value).__name__} of {len(value):,}"


def _unit(value: Any) -> str:
    return "characters" if isinstance(value, (str, bytes, bytearray)) else "items"


def _number(value: int) -> str:
    return f"{value:,}" if abs(value).bit_length() <= 64 else f"an integer of {abs(value).bit_length():,} bits"
