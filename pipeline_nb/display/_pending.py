"""The live view's pending text: pieces gathered for the next message, measured as JavaScript
measures them, cut back on a retry, and tagged with their citation marks."""

from __future__ import annotations

from typing import Any


def units(pieces: Any) -> int:
    """The length of the joined ``pieces`` in UTF-16 units, as JavaScript counts offsets."""
    return len("".join(pieces).encode("utf-16-le")) // 2


def cut(store: dict[str, list[str]], step_id: str, keep: int) -> int:
    """Keep the first ``keep`` pieces pending for ``step_id`` (none: no entry); the characters dropped."""
    pieces = store.get(step_id)
    if pieces is None:
        return 0
    dropped = sum(map(len, pieces[keep:]))
    if keep:
        del pieces[keep:]
    else:
        del store[step_id]
    return dropped


def marked(marks: list[list[Any]] | None) -> tuple[Any, ...]:
    """A text entry's optional last element: its citation marks, when it has any."""
    return (marks,) if marks else ()
