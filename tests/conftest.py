"""Fixtures shared by the FakeAnthropic suites: the fake itself and a real SDK client on it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import anthropic
import pytest

from pipeline_nb.testing._fake_anthropic import FakeAnthropic

TEST_KEY = "test-key-SECRET-123"


def pytest_configure(config: pytest.Config) -> None:
    """Every run of the suite (kernels and subprocesses included) journals to a file of its own,
    never to the user's journal."""
    if "PIPELINE_NB_JOURNAL" not in os.environ:
        os.environ["PIPELINE_NB_JOURNAL"] = os.path.join(tempfile.mkdtemp(prefix="pipeline_nb-tests-"),
                                                         "journal.sqlite")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as f:
        yield f


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    """The real SDK pointed at ``fake``, its own retries off."""
    with anthropic.Anthropic(base_url=fake.base_url, api_key=TEST_KEY, max_retries=0, timeout=10) as c:
        yield c
