"""Helpers for the evaluation tests: run pipeline YAML on the claude provider (the real SDK
against FakeAnthropic), and catch the spec error a bad pipeline raises."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb._errors import PipelineSpecError

CLAUDE = "defaults: {provider: claude, retries: 0, retry_backoff: [0.01, 0.02]}\n"
"""A defaults line for the claude provider, with no retries unless a step asks for them."""


def run(text: str, **kwargs: Any) -> pipeline_nb.PipelineRun:
    """Run dedented YAML (``CLAUDE`` defaults first unless it has its own); failures stay on the run."""
    text = dedent(text)
    if "defaults:" not in text:
        text = CLAUDE + text
    return pipeline_nb.run(text, raise_on_error=False, **kwargs)


def spec_error(text: str, **kwargs: Any) -> PipelineSpecError:
    """The PipelineSpecError that running ``text`` raises."""
    with pytest.raises(PipelineSpecError) as info:
        run(text, **kwargs)
    return info.value


def prompts(fake: Any) -> list[str]:
    """The last user message of every request the fake received, in arrival order."""
    return [r.prompt for r in fake.requests]
