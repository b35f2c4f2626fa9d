"""Checking a result against its step's expectations, each check a value (CheckResult), never a raise.

The checks that need no model are here; ``judge`` (a Claude call) is in :mod:`_judge`. A check's
values are rendered in the scope of the result it checks. What a check cannot evaluate (a template
that fails, a regex that does not compile, a function that raises) fails the check and says why.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._check_results import CheckResult
from ._expect_spec import Expectation
from ._names import resolve_name
from ._text import compact_json, excerpt
from ._results import StepResult
from ._structured import StructuredOutputError, parse_reply
from ._templates import RenderInterrupted, TemplateProblem

CONTEXT = 30
"""Characters around a found text that a failure's detail shows."""


def output_text(result: StepResult) -> str:
    """What text checks read: a text output as it is, else the reply's text, else the output as JSON."""
    if isinstance(result.output, str):
        return result.output
    if result.text:
        return result.text
    return "" if result.output is None else compact_json(result.output)


def check(expectation: Expectation, result: StepResult, scope: Mapping[str, Any], namespace: Mapping[str, Any],
          seconds: float) -> tuple[bool, str]:
    """(passed, detail) of one expectation that needs no model, on ``result``, which took ``seconds``."""
    kind = expectation.kind
    try:
        expected = expectation.value.evaluate(scope)
    except RenderInterrupted:
        raise
    except TemplateProblem as exc:
        return False, f"its template failed: {exc}"
    if kind in ("contains", "not_contains"):
        return _contains(output_text(result), expected, expectation.ignore_case, kind == "contains")
    if kind == "equals":
        return _equals(result, expected, expectation.ignore_case)
    if kind == "regex":
        return _regex(output_text(result), str(expected), expectation.ignore_case)
    if kind == "json_schema":
        return _json_schema(result, expected)
    if kind == "python":
        return _python(str(expected), result, namespace)
    return _limit(kind, expected, result, seconds)


def _fold(text: str, ignore_case: bool) -> str:
    return text.casefold() if ignore_case else text


def _contains(text: str, expected: Any, ignore_case: bool, wanted: bool) -> tuple[bool, str]:
    words = [str(w) for w in (expected if isinstance(expected, list) else [expected])]
    haystack = _fold(text, ignore_case)
    if wanted:
        missing = [w for w in words if _fold(w, ignore_case) not in haystack]
        if missing:
            return False, "the output does not contain " + ", ".join(f'"{excerpt(w, 60)}"' for w in missing)
        return True, ""
    for word in words:
        at = haystack.find(_fold(word, ignore_case))
        if at >= 0:
            around = excerpt(text[max(0, at - CONTEXT): at + len(word) + CONTEXT], 2 * CONTEXT + len(word))
            return False, f'the output contains "{excerpt(word, 60)}": …{around}…'
    return True, ""


def _equals(result: StepResult, expected: Any, ignore_case: bool) -> tuple[bool, str]:
    if isinstance(expected, str) or isinstance(result.output, str):
        got = output_text(result).strip()
        if _fold(got, ignore_case) == _fold(str(expected).strip(), ignore_case):
            return True, ""
        return False, f'the output is "{excerpt(got, 80)}", not "{excerpt(str(expected), 80)}"'
    if result.output == expected:
        return True, ""
    return False, f"the output is {excerpt(compact_json(result.output), 80)}, not {excerpt(compact_json(expected), 80)}"


def _regex(text: str, pattern: str, ignore_case: bool) -> tuple[bool, str]:
    try:
        found = re.search(pattern, text, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        return False, f"the regex /{pattern}/ does not compile: {exc}"
    return (True, "") if found else (False, f"nothing in the output matches /{excerpt(pattern, 60)}/")


def _json_schema(result: StepResult, schema: Any) -> tuple[bool, str]:
    value = result.output
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    try:
        parse_reply(_unfenced(text), dict(schema))
    except StructuredOutputError as exc:
        return False, str(exc).replace("the reply", "the output").replace("output_schema", "the schema")
    return True, ""


def _unfenced(text: str) -> str:
    """JSON written inside a Markdown code fence, as models often write it, without the fence."""
    match = re.fullmatch(r"\s*```[\w-]*\s*\n(.*?)\n\s*```\s*", text, re.S)
    return match.group(1) if match else text


def _python(name: str, result: StepResult, namespace: Mapping[str, Any]) -> tuple[bool, str]:
    try:
        function = resolve_name(name, namespace)
        verdict = _call(function, result)
    except Exception as exc:  # the user's function: its failure is the check's, with what it raised
        return False, f"{name} raised {type(exc).__name__}: {exc}"
    if verdict is True:
        return True, ""
    if verdict is False:
        return False, f"{name} returned False"
    if isinstance(verdict, str) and verdict:
        return False, verdict
    return False, f"{name} returned {verdict!r}; return True, False, or a message saying what failed"


def _call(function: Callable[..., Any], result: StepResult) -> Any:
    """``function(output)``, with ``result=`` too when it takes that keyword."""
    try:
        takes_result = "result" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        takes_result = False
    return function(result.output, result=result) if takes_result else function(result.output)


def _limit(kind: str, limit: Any, result: StepResult, seconds: float) -> tuple[bool, str]:
    if kind == "seconds":
        return (seconds <= limit, f"it took {seconds:.2f} s (at most {limit:g})")
    if kind == "cost":
        if result.cost is None:
            return False, f"its model {result.model!r} has no price: add it under defaults.pricing"
        return (result.cost <= limit, f"it cost ${result.cost:.4f} (at most ${limit:g})")
    usage = result.usage
    limits = limit if isinstance(limit, Mapping) else {"output": limit}
    counts = {"input": usage.input_tokens, "output": usage.output_tokens, "total": usage.total}
    over = [f"{counts[part]} {part} tokens (at most {most})" for part, most in limits.items() if counts[part] > most]
    if over:
        return False, "it used " + ", ".join(over)
    return True, ", ".join(f"{counts[part]} {part} tokens" for part in limits)


def checked(expectation: Expectation, result: StepResult, passed: bool, detail: str, step: str,
            variant: str) -> CheckResult:
    """The CheckResult of ``expectation`` on ``result``."""
    return CheckResult(result.id, expectation.name, expectation.kind, passed, detail, step, variant)
