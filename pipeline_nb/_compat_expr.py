"""pipeline_ex's computed references as Jinja expressions: its function calls and its arithmetic,
each evaluated the way its variable engine (lib/pipeline/state/variable_engine.ex) evaluates it.

pipeline_ex tries, in order: a function call (a name and ``(`` at the start), then ``steps.``,
``inputs.`` and ``global_vars.`` paths, then arithmetic (the text holds any of ``+ - * /``), then a
``state.`` path, then a variable name. Its arithmetic puts each reference's text in its place
(``0`` for a variable that is not set), then computes one integer ``+``, ``-`` or ``*`` when the
text is exactly ``a op b``; anything else (a division, two operators, a decimal) is that text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._compat_refs import Expressions, Path_

FUNCTION_START = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\s*\(")
"""pipeline_ex's test for a function call, its first check."""
OPERATORS = ("+", "-", "*", "/")
"""Any of these in a reference makes it arithmetic for pipeline_ex (after the checks above)."""
ZERO = '"0"'
"""What a lookup returns for a variable that is not set: pipeline_ex puts ``0`` in its place."""

_CALL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*\((.*)\)", re.DOTALL)
_ARITY = {"multiply": 2, "add": 2, "subtract": 2, "divide": 2, "round": 1, "floor": 1, "ceil": 1, "max": 0, "min": 0}
"""pipeline_ex's functions and their argument counts (0: one or more)."""
_LITERAL_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_STATE_PATH = re.compile(r"state\.([a-zA-Z_][a-zA-Z0-9_.]*)")
_WORD = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\b", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+")
_BRANCHES = ((" + ", "+"), ("+", "+"), (" - ", "-"), ("-", "-"), (" * ", "*"), ("*", "*"))
"""evaluate_simple_arithmetic's separators, in the order it tries them, and the operation of each."""

Lookup = Callable[[str], "str | None"]
"""A reference (or an argument, a variable path, a name) → the Jinja expression of its value; None when
it cannot be translated (the caller has said why)."""


@dataclass(frozen=True)
class Refused:
    """A computed reference that does not translate: why, and what to write instead."""

    message: str
    hint: str


@dataclass(frozen=True)
class Arithmetic:
    """An arithmetic reference's expression; ``computed`` is false when pipeline_ex renders its text
    whatever the values (a division, two operators, a decimal)."""

    expression: str
    computed: bool


def builtin_value(source: str, workflow: str, step: str | None) -> str | None:
    """pipeline_ex's documented built-ins: ``timestamp``, ``date``, ``workflow.name``, ``step.name``."""
    if source == "timestamp":
        return 'now().strftime("%Y%m%d_%H%M%S")'
    if source == "date":
        return 'now().strftime("%Y-%m-%d")'
    if source == "workflow.name":
        return json.dumps(workflow, ensure_ascii=False)
    if source == "step.name" and step:
        return json.dumps(step, ensure_ascii=False)
    return None


def computed(tr: Expressions, source: str, at: Path_) -> str | None:
    """A reference that is not a plain path, in pipeline_ex's order: a function call, a ``steps.``
    (``inputs.``, ``global_vars.``) path it leaves as written, arithmetic, else a name it does not find
    (empty, with a note). Problems and notes go to the translator ``tr``."""
    subject = f"{{{{{source}}}}}"
    if FUNCTION_START.match(source):
        found = function_call(source, lambda arg: tr.reference(arg, at, text=False))
    elif source.startswith(("steps.", "inputs.", "global_vars.")):
        found = Refused(f"pipeline_ex leaves {subject} as it is written (it reads all after the dot as one name)",
                        "compute it with set_variable and state. references")
    elif any(op in source for op in OPERATORS):
        def variable(path: str) -> str | None:  # a name, or a state. path
            return _variable(tr, path, subject, at)
        found = arithmetic(source, variable, variable)
    else:
        tr.remark(at, subject, f"pipeline_ex does not evaluate {subject}: it looks it up as a variable name, finds "
                               "none and renders it empty, and so does the translation")
        return '""'
    if isinstance(found, Refused):
        tr.problem(at, found.message, found.hint)
        return None
    if isinstance(found, Arithmetic) and not found.computed:
        tr.remark(at, subject, f"pipeline_ex computes only one integer +, - or * in a reference, so {subject} "
                               "renders as its text with the values in place, as here")
    return found.expression if isinstance(found, Arithmetic) else found


def nothing(tr: Expressions, source: str, at: Path_) -> str:
    """A field of a name the workflow never defines (``{{first_step.output}}`` in a prompt's example
    YAML): pipeline_ex renders it empty, and so does the translation, with a note. (A bare name is
    different: it is an input, asked for with ``--var``.)"""
    subject = f"{{{{{source}}}}}"
    tr.remark(at, subject, f"{subject} names nothing this workflow defines, so it renders empty, as in pipeline_ex")
    return '""'


def _variable(tr: Expressions, path: str, subject: str, at: Path_) -> str | None:
    """A variable (``a``, ``a.b``) in an arithmetic reference; ``ZERO`` when it is not set, as pipeline_ex reads it."""
    head = path.split(".")[0]
    if "" not in path.split(".") and (head in tr.vars or head in tr.rebound):
        return tr.reference(f"state.{path}", at, text=False)
    tr.remark(at, f"{subject} {head}", f"{subject} reads {head!r}, which is not set there, so pipeline_ex reads it "
                                       "as 0, and so does the translation")
    return ZERO


def number(expr: str) -> str:
    """pipeline_ex's ``ensure_number``: a number, or text read as one (integers stay integers)."""
    return f"(({expr} | int) if ({expr} | string).lstrip('-').isdigit() else ({expr} | float))"


def function_call(source: str, argument: Lookup) -> str | Refused | None:
    """``multiply(a, b)``, ``add``, ``subtract``, ``divide`` (0 for a zero divisor), ``max``, ``min``,
    ``round``, ``floor``, ``ceil`` on references and numbers, as pipeline_ex computes them."""
    call = _CALL.fullmatch(source.strip())
    name = call[1] if call else ""
    args = [a.strip() for a in call[2].split(",")] if call else []  # pipeline_ex splits on every comma
    if name not in _ARITY or len(args) != (_ARITY[name] or max(len(args), 1)) or "" in args:
        return Refused(f"{{{{{source}}}}} is not one of pipeline_ex's functions with its arguments, so pipeline_ex "
                       "renders it as text", "use multiply(a, b), add, subtract, divide, max(a, ...), min, round(a), "
                       "floor or ceil")
    values = [a if _LITERAL_NUMBER.fullmatch(a) else argument(a) for a in args]
    if any(v is None for v in values):
        return None
    numbers = [number(v) for v in values if v is not None]
    a, b = numbers[0], numbers[-1]
    # Elixir's round goes half away from zero (Jinja's round would go to the even neighbour)
    away = f"((({a} | abs) + 0.5) | round(0, 'floor') | int) * (-1 if {a} < 0 else 1)"
    return {"multiply": f"({a} * {b})", "add": f"({a} + {b})", "subtract": f"({a} - {b})",
            "divide": f"(({a} / {b}) if {b} != 0 else 0)", "round": f"({away})",
            "floor": f"({a} | round(0, 'floor') | int)", "ceil": f"({a} | round(0, 'ceil') | int)",
            "max": f"([{', '.join(numbers)}] | max)", "min": f"([{', '.join(numbers)}] | min)"}[name]


def arithmetic(source: str, variable: Lookup, word: Lookup) -> Arithmetic | None:
    """pipeline_ex's ``evaluate_arithmetic``: with ``state.`` in the text, each ``state.path`` is replaced
    by its value's text (``variable(path)``), else each word by its variable's (``word(name)``); then one
    integer operation when the text is ``a op b``, else the text."""
    pattern, lookup = (_STATE_PATH, variable) if "state." in source else (_WORD, word)
    pieces: list[str | _Slot] = []
    pos = 0
    for match in pattern.finditer(source):
        value = lookup(match[1])
        if value is None:
            return None
        pieces += [source[pos:match.start()], "0" if value == ZERO else _Slot(value)]
        pos = match.end()
    pieces.append(source[pos:])
    slots = [p for p in pieces if isinstance(p, _Slot)]
    # a slot stands for its value's text (assumed to hold no operator) while the operation is found
    shape = "".join(chr(0xE000 + slots.index(p)) if isinstance(p, _Slot) else p for p in pieces).strip()
    as_text = " ~ ".join(p.text() if isinstance(p, _Slot) else json.dumps(p, ensure_ascii=False)
                         for p in pieces if p != "") or '""'
    for separator, operation in _BRANCHES:
        if separator == "-" and ("-" not in shape or shape.startswith("-")):
            continue
        if separator in shape:
            left, right = (side.strip() for side in shape.split(separator, 1))
            first, second = _operand(left, slots, unsigned=separator == "-"), _operand(right, slots, unsigned=False)
            if first is None or second is None:
                return Arithmetic(f"({as_text})", computed=False)
            (a, a_ok), (b, b_ok) = first, second
            if a_ok == b_ok == "true":
                return Arithmetic(str(_apply(int(a), operation, int(b))), computed=True)
            checks = " and ".join(ok for ok in (a_ok, b_ok) if ok != "true")
            return Arithmetic(f"(({a} {operation} {b}) if {checks} else ({as_text}))", computed=True)
    if _INTEGER.fullmatch(shape):
        return Arithmetic(str(int(shape)), computed=True)
    return Arithmetic(f"({as_text})", computed=False)


def _apply(a: int, operation: str, b: int) -> int:
    return a + b if operation == "+" else a - b if operation == "-" else a * b


@dataclass(frozen=True)
class _Slot:
    """A reference's value inside an arithmetic text."""

    value: str

    def text(self) -> str:
        """Its text, as Elixir's to_string gives it (``0`` for none)."""
        return f"(({self.value} if {self.value} is not none else 0) | string)"  # a value is a name or a path


def _operand(side: str, slots: list[_Slot], unsigned: bool) -> tuple[str, str] | None:
    """One side of ``a op b``: its integer expression and the check that it is one (``"true"`` for an
    integer literal); None when it cannot be an integer (pipeline_ex's Integer.parse must read it all)."""
    if _INTEGER.fullmatch(side):
        return side, "true"
    if len(side) == 1 and 0 <= ord(side) - 0xE000 < len(slots):
        text = f"({slots[ord(side) - 0xE000].text()} | trim)"
        # a negative left side starts the text with "-": pipeline_ex then skips the "-" branch, and the text stays
        digits = f"{text}.isdigit()" if unsigned else f"{text}.removeprefix('-').removeprefix('+').isdigit()"
        return f"({text} | int)", digits
    return None
