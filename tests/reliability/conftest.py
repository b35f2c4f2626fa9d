"""Fixtures for the reliability suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import Kernel, kernel_manager


@pytest.fixture
def kernel(tmp_path: Path, fake_anthropic: Any) -> Iterator[Kernel]:
    """A real ipykernel on this venv's python, with ANTHROPIC_BASE_URL pointing at ``fake_anthropic``."""
    km = kernel_manager(tmp_path)
    km.start_kernel(cwd=str(tmp_path))
    k = Kernel(km)
    try:
        assert k.check("import sys; print(sys.executable)").strip() == sys.executable
        yield k
    finally:
        k.client.stop_channels()
        km.shutdown_kernel(now=True)
