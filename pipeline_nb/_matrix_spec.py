"""``matrix:``: a step run once per combination of values, each combination a variant of it.

A matrix key that is a step key (``model``, ``max_tokens``, ``system``, ...) sets that key; any
other is a template variable (``{{ style }}``). In a matrix step, ``model``, ``provider`` and
``effort`` may themselves be templates of the matrix's values (``model: "claude-{{ size }}-5-5"``).
Every combination is known when the pipeline is read, so every model it calls is known (and
priced, for a budget) before the first call.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._errors import PipelineSpecError
from ._templates import TemplateProblem, compile_template
from ._yaml import SourceMap

if TYPE_CHECKING:
    from ._spec import StepSpec

MATRIX_KEYS = ("provider", "model", "max_tokens", "prompt", "system", "thinking", "effort", "params", "extra_body",
               "stop_sequences", "output_schema", "tool_choice", "max_tool_rounds", "mock_response", "mock_delay",
               "stream", "timeout", "retries", "cache", "base_url")
"""Step keys a matrix may set."""
TEMPLATED = ("model", "provider", "effort")
"""Keys that, in a matrix step, may be templates of the matrix's values."""
MAX_COMBINATIONS = 1000


def check_matrix(matrix: Mapping[str, list[Any]], raw: Mapping[str, Any], smap: SourceMap, path: tuple[Any, ...],
                 step_id: str, step_keys: frozenset[str]) -> None:
    """PipelineSpecError (line:col) for a matrix key that is a step key it may not set, a value
    the key does not take, too many combinations, or a templated key that uses a name the matrix lacks."""
    count = 1
    for key, values in matrix.items():
        where = smap.locate(path + (key,), key=True)
        if key in step_keys and key not in MATRIX_KEYS:
            raise PipelineSpecError(f"matrix sets {key!r}, which a matrix cannot vary", location=where,
                                    step_id=step_id, hint="a matrix may set: " + ", ".join(MATRIX_KEYS)
                                    + "; any other name is a template variable")
        if key in step_keys:
            for index, value in enumerate(values):
                problem = _value_problem(key, value)
                if problem:
                    raise PipelineSpecError(f"matrix.{key}[{index}]: {problem}",
                                            location=smap.locate(path + (key, index)), step_id=step_id)
        if key in raw:
            raise PipelineSpecError(f"matrix sets {key!r}, which the step also sets", location=where,
                                    step_id=step_id, hint=f"remove {key}: from the step, or from the matrix")
        count *= len(values)
    if count > MAX_COMBINATIONS:
        raise PipelineSpecError(f"matrix makes {count:,} combinations (at most {MAX_COMBINATIONS:,})",
                                location=smap.locate(path), step_id=step_id, hint="vary fewer keys at once")
    for key in TEMPLATED:
        value = raw.get(key)
        if isinstance(value, str) and "{{" in value:
            try:
                names = compile_template(value).names
            except TemplateProblem as exc:
                raise PipelineSpecError(f"bad template in {key}: {exc}", location=smap.locate(path[:-1] + (key,)),
                                        step_id=step_id) from None
            unknown = sorted(names - set(matrix))
            if unknown:
                raise PipelineSpecError(
                    f"{key} uses {{{{ {unknown[0]} }}}}, which the matrix does not set",
                    location=smap.locate(path[:-1] + (key,)), step_id=step_id,
                    hint=f"in a matrix step, {key} may use only the matrix's names: {', '.join(matrix)}")


def _value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be step key ``key`` (as the schema says), or None."""
    from ._schema import _validator

    errors = [e for e in _validator().iter_errors({"steps": [{"id": "x", key: value}]})
              if tuple(e.absolute_path)[:3] == ("steps", 0, key)]
    if not errors:
        return None
    leaf = min(errors, key=lambda e: -len(e.absolute_path))
    while leaf.context:
        leaf = min(leaf.context, key=lambda e: -len(e.absolute_path))
    return leaf.message


def combinations(matrix: Mapping[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination of the matrix's values, the first key varying slowest."""
    keys = list(matrix)
    return [dict(zip(keys, combo)) for combo in itertools.product(*matrix.values())]


def variants(step: StepSpec) -> list[StepSpec]:
    """The step once per combination (its ``matrix_values`` set, its keys set from them); a
    step without a matrix is its only variant."""
    if not step.matrix:
        return [step]
    from ._step_builder import step_field  # it converts a key's YAML value into the StepSpec's

    found = []
    for values in combinations(step.matrix):
        fields: dict[str, Any] = {}
        for key, value in values.items():
            if key in MATRIX_KEYS:
                name, converted = step_field(key, value)
                fields.update(converted if name == "system" else {name: converted})
        for key in TEMPLATED:
            written = getattr(step, key)
            if key not in values and isinstance(written, str) and "{{" in written:
                fields[key] = compile_template(written).render(values)
        where = step.key_locations.get("matrix")
        located = {key: where for key in values if key in MATRIX_KEYS and where is not None}
        found.append(replace(step, **fields, matrix=None, matrix_values=values,
                             key_locations={**step.key_locations, **located}))
    return found
