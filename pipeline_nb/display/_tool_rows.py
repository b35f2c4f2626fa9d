"""What the live view is told of tool calls: a row per call, as it begins, grows and returns.

Each call the view has not yet been told about is one entry of a message's ``tools`` list,
``{step, id}`` plus what is new of it: ``name``, ``round``, ``server`` and ``at`` (where its
row goes in its step's text) when it begins; ``args`` to append to its input as shown (the
model's JSON as it streams, each byte once) or ``input`` to show instead (a call that did
not stream); once it returned, ``output`` (what the view folds to a few lines), ``error``,
``time`` and ``note``. However many chunks a call streams between two sends, it is one entry.

A retry in a tool loop (of the step's next call) does not clear the pane: the calls that
returned ran and stay, and so does all that came before the last of them. The view is told
to rewind the pane to that call's row, and the handler keeps what was pending before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._render import tool_output_text
from .._text import compact_json

if TYPE_CHECKING:
    from .._results import ToolCall

TOOL_INPUT_SHOWN = 2_000
"""Characters of a call's input the view shows: a tool that writes a file does not fill the page."""
TOOL_OUTPUT_SHOWN = 2_000
"""Characters of a tool's output the view gets (it folds all but a few lines); the final rendering keeps more."""


class ToolRows:
    """The calls that began, grew or returned since the last send, first seen first; the
    rewinds to send; and, for each step, its last call that returned.

    >>> rows = ToolRows()
    >>> rows.begin("a", "toolu_1", "search", 1, False, at=12)
    >>> rows.grow("a", "toolu_1", '{"query": "tides"}')
    >>> rows.take()
    ([{'step': 'a', 'id': 'toolu_1', 'name': 'search', 'round': 1, 'at': 12, 'args': '{"query": "tides"}'}], [])
    """

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Any]] = {}
        self.rewinds: list[tuple[str, str]] = []
        self._shown: dict[str, int] = {}  # call id -> characters of its input sent or pending
        # step -> its last call that returned, the counts of pieces pending before it then (none once
        # sent), and the citations numbered before it
        self._last: dict[str, tuple[str, tuple[int, ...] | None, int]] = {}

    def knows(self, call_id: str) -> bool:
        """The call's row is on the page, or pending."""
        return call_id in self._shown

    def begin(self, part: str, call_id: str, name: str, round: int, server: bool, at: int) -> None:
        """A new row, at offset ``at`` of its step's text entry in the message that carries it."""
        self._shown[call_id] = 0
        entry = self._entry(part, call_id)
        entry.update(name=name, round=round, at=at)
        if server:
            entry["server"] = True

    def grow(self, part: str, call_id: str, piece: str) -> None:
        """Append a piece of the call's input JSON, up to TOOL_INPUT_SHOWN characters and an ellipsis."""
        shown = self._shown[call_id]
        if shown > TOOL_INPUT_SHOWN:
            return  # cut already
        if shown + len(piece) > TOOL_INPUT_SHOWN:
            piece = piece[:TOOL_INPUT_SHOWN - shown] + "…"
        self._shown[call_id] = shown + len(piece)
        entry = self._entry(part, call_id)
        entry["args"] = entry.get("args", "") + piece

    def set_input(self, part: str, call_id: str, input: Any) -> None:
        """Show ``input`` whole (as one-line JSON, cut at TOOL_INPUT_SHOWN)."""
        text = compact_json(input)
        if len(text) > TOOL_INPUT_SHOWN:
            text = text[:TOOL_INPUT_SHOWN] + "…"
        entry = self._entry(part, call_id)
        entry.pop("args", None)
        entry["input"] = text
        self._shown[call_id] = len(text)

    def returned(self, call: ToolCall, pending: tuple[int, ...], cited: int) -> None:
        """The call's result: its output (or error), time and note. ``pending`` counts the pieces
        of each kind (text, thinking, ...) pending for its step now, ``cited`` its citations."""
        self._last[call.step_id] = (call.id, pending, cited)
        entry = self._entry(call.step_id, call.id)
        shown = (call.error or tool_output_text(call.output)) if call.is_error else tool_output_text(call.output)
        if len(shown) > TOOL_OUTPUT_SHOWN:
            shown = f"{shown[:TOOL_OUTPUT_SHOWN]}… ({len(shown) - TOOL_OUTPUT_SHOWN:,} more characters)"
        entry["output"] = shown
        if call.is_error:
            entry["error"] = True
        if call.duration is not None:
            entry["time"] = round(call.duration, 2)
        if call.note:
            entry["note"] = call.note

    def retry(self, part: str) -> tuple[tuple[int, ...] | None, int] | None:
        """A retry of ``part``: its pending calls that did not return were the failed attempt's
        and never ran. If a call of it returned, the pane rewinds to that call's row, and this
        gives the pending counts and the citations to keep (as ``returned`` was told them)."""
        unreturned = [cid for cid, entry in self.pending.items() if entry["step"] == part and "output" not in entry]
        for call_id in unreturned:
            del self.pending[call_id]
            self._shown.pop(call_id, None)
        last = self._last.get(part)
        if last is None:
            return None
        if (part, last[0]) not in self.rewinds:
            self.rewinds.append((part, last[0]))
        return last[1], last[2]

    def take(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """The entries and the rewinds to send, and none pending after."""
        entries, rewinds, self.pending, self.rewinds = list(self.pending.values()), self.rewinds, {}, []
        if self._last:  # all that was pending is on its way
            self._last = {part: (call_id, None, cited) for part, (call_id, _, cited) in self._last.items()}
        return entries, rewinds

    def _entry(self, part: str, call_id: str) -> dict[str, Any]:
        entry = self.pending.get(call_id)
        if entry is None:
            entry = self.pending[call_id] = {"step": part, "id": call_id}
        return entry
