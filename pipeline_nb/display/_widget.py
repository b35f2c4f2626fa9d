"""The live view's widget: its state (``rows``) and the one message ``push`` sends per update.

The front end is ``live.js`` and ``live.css`` beside this file; ``_live.WidgetHandler`` feeds it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anywidget
import traitlets

_HERE = Path(__file__).parent


def compact(source: str) -> str:
    """``live.js`` or ``live.css`` without its comments, indentation and blank lines: the front end
    is sent to every view (and saved with the notebook's widget state), its comments are for us.
    Safe for these files: no template literal or string spans lines (a test checks)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"

RETIRED = {"text/plain": ""}
"""The view's text/plain, while it runs and once retired: nothing to see and nothing for
nbval to compare (nbval compares the first display, so both must be the same)."""


class LiveView(anywidget.AnyWidget):
    """The widget itself: ``rows`` is state (at the start and the end of a run); ``push``
    sends everything else, in one message.

    >>> view = LiveView(title="demo", rows=[{"id": "a", "status": "running"}])
    >>> view.push(thinking=[("a", "Greet them.", 1)], text=[("a", "Hello", 2)])
    """

    _esm = compact((_HERE / "live.js").read_text(encoding="utf-8"))
    _css = compact((_HERE / "live.css").read_text(encoding="utf-8"))
    title = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)

    def push(self, *, resets: list[str] | None = None, thinking: list[tuple[str, str, int]] | None = None,
             text: list[tuple[Any, ...]] | None = None, finished: list[str] | None = None,
             owners: dict[str, str] | None = None, tools: list[dict[str, Any]] | None = None,
             rewinds: list[tuple[str, str]] | None = None) -> None:
        """One message: panes to clear, panes to rewind, thinking and then text to append as
        ``(step id, text, pieces so far)``, tool calls, parts that finished; the view applies
        them in that order. A text entry may end with citation marks, ``[[offset, number,
        source], ...]``: a ``[number]`` goes at ``offset`` (UTF-16 units, as JavaScript counts)
        of the entry's text. A tool entry is what is new of one call (``_tool_rows.py`` says
        what); a rewind ``(step id, call id)`` clears the pane after that call's row (a retry in
        a tool loop). ``owners`` names the row of each derived id in the message (an item, a
        call, a nested step), so the view never parses ids. (Rows go as state.)"""
        message: dict[str, Any] = {"owners": owners} if owners else {}
        if resets:
            message["reset"] = resets
        if rewinds:
            message["rewind"] = rewinds
        if thinking:
            message["thinking"] = thinking
        if text:
            message["text"] = text
        if tools:
            message["tools"] = tools
        if finished:
            message["done"] = finished
        self.send(message)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle[0].update(RETIRED)
        return bundle
