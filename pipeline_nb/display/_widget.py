"""The live view's widget: its state (``rows``) and the one message ``push`` sends per update.

The front end is ``live.js`` and ``live.css`` beside this file; ``_live.WidgetHandler`` feeds it.
The code (about 22 KB, its CSS inside) goes once per kernel: the first view carries it, and
every later view only ``live_stub.js``, which finds the code the page already has, or asks
this kernel for it (``{"code": VERSION}``, answered with the source). The kernel handles
comm messages between cells, not while a ``%%pipeline`` cell runs, so in a page that has
never held this version's code (another browser) that run's live view stays empty; its
final rendering shows as always, and the next views have the code.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import ipywidgets
import traitlets

_HERE = Path(__file__).parent


def compact(source: str) -> str:
    """``live.js`` or ``live.css`` without its comments, indentation and blank lines: the front end
    is sent to every view (and saved with the notebook's widget state), its comments are for us.
    Safe for these files: no template literal or string spans lines (a test checks)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"


def _front_end() -> tuple[str, str, str]:
    """``(version, code, stub)``, compacted: the code is live.js after a line that defines
    ``VERSION`` (a hash of live.js and live.css) and ``CSS`` (live.css); the stub is
    live_stub.js after a line that defines ``VERSION``."""
    js = compact((_HERE / "live.js").read_text(encoding="utf-8"))
    css = compact((_HERE / "live.css").read_text(encoding="utf-8"))
    version = hashlib.sha256((js + css).encode()).hexdigest()[:12]
    code = f'const VERSION="{version}",CSS={json.dumps(css)};\n{js}'
    stub = f'const VERSION="{version}";\n' + compact((_HERE / "live_stub.js").read_text(encoding="utf-8"))
    return version, code, stub


VERSION, CODE, STUB = _front_end()

_layout: list[ipywidgets.Layout] = []


def _shared_layout() -> ipywidgets.Layout:
    """One Layout for every view of the kernel, never closed by them: a widget of its own
    (a comm, about 1.6 KB to open and 0.6 KB to close) that each view would otherwise repeat."""
    if not _layout or _layout[0].comm is None:  # closed (Widget.close_all): a new one
        _layout[:] = [ipywidgets.Layout()]
    return _layout[0]


RETIRED = {"text/plain": ""}
"""The view's text/plain, while it runs and once retired: nothing to see and nothing for
nbval to compare (nbval compares the first display, so both must be the same)."""


class LiveView(anywidget.AnyWidget):
    """The widget itself: ``rows`` is state (at the start and the end of a run); ``push``
    sends everything else, in one message.

    >>> view = LiveView(title="demo", rows=[{"id": "a", "status": "running"}])
    >>> view.push(thinking=[("a", "Greet them.", 1)], text=[("a", "Hello", 2)])
    """

    _esm = CODE  # the first view's; later ones get STUB (no _css: the code adds its CSS to the page)
    code_sent: ClassVar[bool] = False
    """Whether a view of this kernel (this process) has carried the code; later views carry the stub."""
    title = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    paused = traitlets.Dict().tag(sync=True)
    """While the API's rate limit pauses the run: ``{"until": epoch ms, "concurrency": n}``."""

    def __init__(self, **kwargs: Any) -> None:
        if LiveView.code_sent:
            self._esm = STUB  # read by AnyWidget.__init__, which makes it this view's _esm trait
        LiveView.code_sent = True
        kwargs.setdefault("layout", _shared_layout())
        super().__init__(**kwargs)
        self.on_msg(self._on_request)

    def _on_request(self, _view: Any, content: Any, _buffers: Any) -> None:
        """A stub in a page without the code (reloaded, another tab) asks for it."""
        if isinstance(content, dict) and content.get("code") == VERSION:
            self.send({"code": VERSION, "source": CODE})

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
