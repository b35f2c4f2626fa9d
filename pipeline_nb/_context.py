"""What a ``type: python`` step gets: the :class:`Step` base class and its ``ctx``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._results import StepResult
from .streaming._events import Event, Response


class Step:
    """Base class for python steps, the guide's ``use Pipeline.Step``.

    >>> class Shout(Step):
    ...     def run(self, ctx):
    ...         return ctx.invoke(f"Say {ctx.args['word']} loudly", stream=True).text.upper()

    Name it in YAML: ``type: python``, ``call: Shout`` (a kernel name) or ``call: mymod:Shout``,
    with ``args:`` (templated). The return value becomes the step's ``.output``.
    """

    def run(self, ctx: StepContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement run(self, ctx)")


@dataclass
class StepContext:
    """The running step's view of the pipeline."""

    step_id: str
    vars: Mapping[str, Any]
    """Every name templates can see: --var, vars:, set steps, the loop variable, the kernel."""
    steps: Mapping[str, StepResult]
    """Results of the steps so far, by id."""
    args: dict[str, Any] = field(default_factory=dict)
    _invoke: Callable[..., Response] | None = field(default=None, repr=False)

    def invoke(
        self,
        prompt: str,
        *,
        stream: bool = True,
        on_event: Callable[[Event], Any] | None = None,
        **params: Any,
    ) -> Response:
        """One LLM call (llm step keys as ``params``) that streams into the run's view and handlers.

        ``on_event`` is also called for this call's events, on the worker thread.
        """
        if self._invoke is None:
            raise RuntimeError("ctx.invoke is only available while the step runs")
        return self._invoke(prompt, stream=stream, on_event=on_event, **params)
