"""Under pytest the notebooks replay their cassettes: a reply missing from a cassette
fails the cell instead of calling a model. Set PIPELINE_NB_CASSETTE_MODE to override."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Start each notebook's kernel (nbval does it in setup) with replay as its mode."""
    if "PIPELINE_NB_CASSETTE_MODE" in os.environ:
        return (yield)
    os.environ["PIPELINE_NB_CASSETTE_MODE"] = "replay"
    try:
        return (yield)
    finally:
        del os.environ["PIPELINE_NB_CASSETTE_MODE"]
