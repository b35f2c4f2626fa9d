"""pipeline_ex's for_loop with a body of any steps, as a pipeline_nb ``pipeline`` step with ``for_each:``.

pipeline_ex (lib/pipeline/step/loop.ex) runs the body once per item of its ``data_source``, the item
as ``loop.<iterator>`` beside ``loop.index``, ``loop.total``, ``loop.first`` and ``loop.last``; the
body's variables last one iteration; later steps get ``{iterations: [{index, item, success,
results: {step: result}}], total_items, completed_items, success}``. The translation:

- the body becomes an inline ``pipeline:`` run per item (``for_each:``, ``as:`` the iterator), translated
  by a translator of its own whose ``scope`` turns every outer variable and step result the body reads
  into an ``inputs:`` entry (a child pipeline sees only its inputs), beside the item and ``loop``
  (``{index, length}``, so ``loop.index`` reads the same inside);
- later references to the loop read pipeline_ex's map (``LoopResults``); ``iterations`` needs each
  item's record, so the first reference to it adds a ``set`` step to the body that writes one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._compat_refs import Path_, _Target, segments

if TYPE_CHECKING:
    from ._compat_refs import Expressions

LOOP_TYPES = {"claude", "gemini", "parallel_claude", "gemini_instructor", "claude_smart", "claude_session",
              "claude_extract", "claude_batch", "claude_robust", "set_variable", "for_loop", "while_loop"}
"""The step types pipeline_ex's loop runs (its ``do_execute_step``); any other fails the item with
"Unsupported step type in loop"."""
NOT_IN_LOOPS = {"test_echo", "data_transform", "file_ops", "pipeline"}
"""Step types pipeline_ex's executor runs that its loop does not: refused in a for_loop's body."""
WRITES_ITS_FILE = {"gemini_instructor", "parallel_claude"}
"""Step types that write their ``output_to_file`` themselves, so in a loop too (for the others the
executor writes it, and a loop's steps do not go through the executor)."""
DEFAULTS = ("output_dir", "options", "claude_preset", "gemini_model", "gemini_token_budget")
"""The workflow's ``defaults`` as the translator keeps them: a loop's body gets them too."""
AGENT_SETTINGS = ("mcp_names", "mcp_at", "skills_enabled")
"""The workflow's MCP servers and skills, which every claude step gets: nested bodies and pipelines too."""


def child_of(tr: Expressions, *, loop_body: bool) -> Expressions:
    """A translator for steps nested in ``tr``'s: a loop's body (it keeps the workflow's defaults, and
    the servers its steps declare go in the document's spec) or an inline pipeline (a workflow of its
    own, which still gets the servers and skills around it)."""
    child = type(tr)(tr.smap, tr.base_dir)
    kept = AGENT_SETTINGS + (DEFAULTS + ("mcp_spec",) if loop_body else ())
    if loop_body:
        tr.__dict__.setdefault("mcp_declared", {})  # one dict: what the body declares reaches the spec
        kept += ("mcp_declared",)
    child.__dict__.update({k: v for k, v in vars(tr).items() if k in kept})
    return child


def adopt(tr: Expressions, child: Expressions, prefix: Path_ = ()) -> None:
    """Take ``child``'s problems, notes and source paths into ``tr`` (``prefix``: where its spec goes)."""
    tr.problems += child.problems
    tr.ignored += child.ignored
    tr.notes.update({k: v for k, v in child.notes.items() if k not in tr.notes})
    tr.origin.update({prefix + path: orig for path, orig in child.origin.items()})
    tr.blocks.update({prefix + path: orig for path, orig in child.blocks.items()})


class LoopScope:
    """What a for_loop's body reads from around it: each outer variable and step result it refers to
    becomes an input of the body's pipeline, under the name the body's templates use."""

    def __init__(self, outer: Expressions, iterator: str) -> None:
        self.outer, self.iterator = outer, iterator
        self.inputs: dict[str, str] = {}
        """Input name → its template in the outer pipeline."""
        self.own: set[str] = set()
        """Variables the body's set_variable steps set (from there on they are the body's)."""
        self.bound: dict[str, str] = {}
        """Outer expression → the input carrying it."""

    def knows_step(self, name: str) -> bool:
        return self.outer.is_step(name)

    def variable(self, name: str, at: Path_) -> str:
        """The body's name for outer variable ``name`` (an input carrying its value)."""
        if name not in self.own and name not in (self.iterator, "loop") and name not in self.inputs:
            expr = self.outer.reference(name, at, text=False)
            self.inputs[name] = f"{{{{ {expr} }}}}" if expr else ""
        return name

    def step(self, name: str, fields: list[str], at: Path_, text: bool) -> str | None:
        """The body's name for ``fields`` of outer step ``name`` (an input carrying the value)."""
        expr = self.outer.step_ref(name, fields, at, text)
        if expr is None:
            return None
        if expr not in self.bound:
            base = re.sub(r"\W+", "_", "_".join([self.outer.ids.get(name, name), *fields]), flags=re.ASCII)
            ident = base if base.isidentifier() else f"step_{base}"
            taken = set(self.inputs) | self.outer.vars | self.own | {self.iterator, "loop"}
            while ident in taken:
                ident += "_"
            self.inputs[ident] = f"{{{{ {expr} }}}}"
            self.bound[expr] = ident
        return self.bound[expr]


class LoopResults:
    """Later steps' references to a translated for_loop: pipeline_ex's ``{iterations, total_items,
    completed_items, success}``. The step fails when an item fails, so a step that reads it sees
    every item done (``success`` true, ``completed_items`` = ``total_items``)."""

    def __init__(self, owner: Expressions, out: dict[str, Any], new: Path_, at: Path_, body: dict[str, _Target],
                 iterator: str) -> None:
        self.owner, self.out, self.new, self.at, self.body, self.iterator = owner, out, new, at, body, iterator
        self.record: str | None = None

    def __call__(self, name: str, fields: list[str], at: Path_, text: bool) -> str | None:
        count = f"(steps.{self.out['id']}.output | length)"
        if fields in (["total_items"], ["completed_items"]):
            return count
        if fields == ["success"]:
            return '"true"' if text else "true"
        if fields == ["iterations"]:
            expr = self.iterations()
        elif not fields:
            expr = (f'{{"completed_items": {count}, "iterations": {self.iterations()}, "success": true, '
                    f'"total_items": {count}}}')
        else:
            hint = (f"read {name}.iterations whole, or loop over it (data_source: \"{name}:iterations\")"
                    if fields[0] == "iterations" else "")
            self.owner.problem(at, f"step {name!r} is a for_loop: pipeline_ex gives it iterations, total_items, "
                               f"completed_items and success, and reads no {'.'.join(fields)!r} there",
                               hint or "read iterations, total_items, completed_items or success")
            return None
        return f"({expr} | tojson)" if text else expr

    def iterations(self) -> str:
        """``iterations``: each item's record, written by a set step added to the body (once)."""
        if self.record is None:
            steps = self.out["pipeline"]["steps"]
            self.record = "_iteration"
            while any(s.get("id") == self.record for s in steps):
                self.record = "_" + self.record
            record = {"id": self.record, "type": "set", "vars": {
                "index": "{{ loop.index }}", "item": f"{{{{ {self.iterator} }}}}", "success": True,
                "results": {name: _result(target) for name, target in self.body.items()}}}
            where = self.new + ("pipeline", "steps", len(steps))
            self.owner.origin.update({where: self.at, **{where + (key,): self.at for key in record}})
            steps.append(record)
        return f"(steps.{self.out['id']}.output | map(attribute={self.record!r}) | list)"


def loop_body(tr: Expressions, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any],
              iterator: str) -> _Target:
    """The for_loop ``raw`` (its for_each, as and max_parallel already in ``out``) as a pipeline step
    running its body per item; its target reads as pipeline_ex's result map."""
    tr.put(out, new, "type", "pipeline", at + ("type",))  # type: ignore[attr-defined]
    body, body_at = raw.get("steps"), at + ("steps",)
    if not isinstance(body, list) or not body:
        tr.problem(body_at if "steps" in raw else at, "for_loop needs a non-empty 'steps:' list")
        return _Target(out["id"] or "", "value")
    child = child_of(tr, loop_body=True)
    child.workflow_name, child.vars, child.loop = tr.workflow_name, set(tr.vars), iterator
    child.scope = scope = LoopScope(tr, iterator)
    as_run = [_as_run_in_a_loop(tr, step, body_at + (i,)) for i, step in enumerate(body)]
    steps = child.step_list(as_run, body_at, new + ("pipeline",))  # type: ignore[attr-defined]
    adopt(tr, child)  # its paths are already where its steps go: under new's pipeline
    tr.put(out, new, "pipeline", {"steps": steps}, body_at)  # type: ignore[attr-defined]
    inputs = {iterator: f"{{{{ {iterator} }}}}", "loop": {"index": "{{ loop.index }}", "length": "{{ loop.length }}"},
              **{k: v for k, v in scope.inputs.items() if v}}
    tr.put(out, new, "inputs", inputs, at)  # type: ignore[attr-defined]
    results = {s["name"]: child.done[child.ids[s["name"]]] for s in body
               if isinstance(s, Mapping) and isinstance(s.get("name"), str) and child.ids.get(s["name"]) in child.done}
    return _Target(out["id"] or "", "loop", resolve=LoopResults(tr, out, new, at, results, iterator))


def _result(target: _Target) -> Any:
    """A body step's entry in its item's ``results``: a reply as pipeline_ex's ``{success, text}`` (so
    ``results.<step>.text`` reads it), anything else as its output."""
    if target.kind in ("text", "each"):
        return {"success": True, "text": f"{{{{ steps.{target.id}.text }}}}"}
    return f"{{{{ steps.{target.id}.output }}}}"


def _as_run_in_a_loop(tr: Expressions, step: Any, at: Path_) -> Any:
    """A body step as pipeline_ex's loop runs it: a type it does not run is refused; what the loop never
    reads (a step's ``condition:``, the ``output_to_file:`` the executor would write) is dropped with a note."""
    if not isinstance(step, Mapping):
        return step
    kind = step.get("type")
    if kind in NOT_IN_LOOPS:
        tr.problem(at + ("type",), f"pipeline_ex's for_loop does not run {kind} steps (each item would fail with "
                   f"'Unsupported step type in loop: {kind}')", "move it out of the loop: a for_loop's steps may be "
                   + ", ".join(sorted(LOOP_TYPES)))
    unread = {"condition", "output_to_file"} & set(step)
    if kind == "while_loop":
        unread.discard("condition")  # its loop's condition
    if kind in WRITES_ITS_FILE:
        unread.discard("output_to_file")
    for key in sorted(unread):
        tr.note(at + (key,), f"{key}: on a step of a for_loop", "pipeline_ex's loop runs its steps without reading it")
    return {k: v for k, v in step.items() if k not in unread}


def loop_source(tr: Expressions, value: Any, at: Path_) -> Any:
    """A for_loop's ``data_source``: ``step:field.path`` (the loop's own item first, as pipeline_ex looks),
    else a list, a variable or step name, or a ``{{ reference }}``."""
    if not (isinstance(value, str) and ":" in value and "{{" not in value):
        return tr.data_source(value, at)
    name, _, path = value.strip().partition(":")
    fields = segments(path)
    if name == "previous_response" and not tr.is_step(name):
        tr.problem(at, f"data_source {value!r} reads the result of a step named 'previous_response', and there is "
                   "none (pipeline_ex stops there: 'No previous_response found')",
                   'name the step and the field: data_source: "<step>:<field>"')
        return []
    if fields is None or not name:
        tr.problem(at, f"data_source {value!r} is not supported", 'write "<step>:<field.path>"')
        return []
    expr = tr.loop_ref([name, *fields], at) if name == tr.loop else tr.step_ref(name, fields, at, text=False)
    return f"{{{{ {expr} }}}}" if expr else []
