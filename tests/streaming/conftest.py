"""Fixtures shared by the streaming tests."""

from __future__ import annotations

import types

import pytest

from pipeline_nb.display import _live as live


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The live view's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(live, "time", types.SimpleNamespace(monotonic=lambda: now[0], time=lambda: now[0]))
    return now
