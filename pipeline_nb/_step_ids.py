"""A step's id as a value: the text every event and result carries, and what it is made of.

Items of a for_each (``fan[0]``), samples of a ``repeat`` (``fan#2``), combinations of a
``matrix`` (``fan@1``), calls a python step makes (``shout.invoke1``), judges' calls
(``fan#2.judge1``) and steps of a nested pipeline (``p/child``) get derived ids. A derived id is still a ``str`` (the text above,
so handlers, dict keys and JSON need nothing new), and also knows the id it derives from and the
step of the run it belongs to: nothing parses the text back.

>>> item = item_id("fan", 0)
>>> item, item.parent, owner_of(nested_id(item, "summary"))
('fan[0]', 'fan', 'fan')
"""

from __future__ import annotations


class StepId(str):
    """A derived step id: ``parent`` is the id it derives from, ``owner`` the run's step it belongs to."""

    parent: str

    def __new__(cls, text: str, parent: str) -> StepId:
        made = super().__new__(cls, text)
        made.parent = parent
        return made

    @property
    def owner(self) -> str:
        return owner_of(self.parent)

    def __reduce__(self) -> tuple[type[str], tuple[str]]:  # pickled, it is the text
        return str, (str(self),)


def item_id(step_id: str, index: int) -> StepId:
    """The id of item ``index`` of for_each step ``step_id``: ``fan[0]``."""
    return StepId(f"{step_id}[{index}]", step_id)


def sample_id(result_id: str, number: int) -> StepId:
    """The id of sample ``number`` (1-based) of a ``repeat`` step's result: ``answer#2``."""
    return StepId(f"{result_id}#{number}", result_id)


def variant_id(step_id: str, number: int) -> StepId:
    """The id of combination ``number`` (1-based) of a ``matrix`` step: ``answer@2``."""
    return StepId(f"{step_id}@{number}", step_id)


def judge_id(result_id: str, number: int) -> StepId:
    """The id of the call that judges ``result_id`` for its ``number``-th judge check: ``answer#2.judge1``."""
    return StepId(f"{result_id}.judge{number}", result_id)


def call_id(step_id: str, number: int) -> StepId:
    """The id of the ``number``-th ``ctx.invoke`` of python step ``step_id``: ``shout.invoke1``."""
    return StepId(f"{step_id}.invoke{number}", step_id)


def nested_id(step_id: str, child_id: str) -> StepId:
    """The id, in the parent run, of step ``child_id`` of the pipeline that step ``step_id`` runs."""
    return StepId(f"{step_id}/{child_id}", step_id)


def owner_of(step_id: str | None) -> str | None:
    """The run's own step that ``step_id`` belongs to (itself, unless it is derived)."""
    return getattr(step_id, "owner", step_id)


def derives_from(step_id: str, ancestor: str) -> bool:
    """``step_id`` is ``ancestor``'s item, call or nested step, at any depth (not ``ancestor`` itself)."""
    parent = getattr(step_id, "parent", None)
    while parent is not None:
        if parent == ancestor:
            return True
        parent = getattr(parent, "parent", None)
    return False
