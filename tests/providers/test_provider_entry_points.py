"""Providers come from the ``pipeline_nb.providers`` entry point group: an installed package adds
``provider: NAME`` without pipeline_nb knowing it; ``register_provider`` still works."""

from __future__ import annotations

import importlib.metadata
import textwrap

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._llm import ENTRY_POINT_GROUP, _PROVIDERS, create_provider, provider_names

PLUGIN = '''
from pipeline_nb.content import Reply


class EchoProvider:
    """A third party's provider: it answers with the prompt, upper-cased."""

    name = "echo"

    def check(self, request):
        pass

    def complete(self, request, emit, cancel):
        text = request.prompt.upper()
        if request.stream:
            emit(text)
        return Reply.of_text(text, model=request.model)
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """An installed package ``acme_echo`` that declares ``echo = acme_echo:EchoProvider``, and one
    whose entry point is broken; what ``entry_points`` answers is all that is faked."""
    (tmp_path / "acme_echo.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [importlib.metadata.EntryPoint("echo", "acme_echo:EchoProvider", ENTRY_POINT_GROUP),
              importlib.metadata.EntryPoint("broken", "acme_missing:Provider", ENTRY_POINT_GROUP)]
    real = importlib.metadata.entry_points

    def entry_points(**selection):
        if selection.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(points)
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    yield
    for name in ("echo", "broken"):
        _PROVIDERS.pop(name, None)


def test_a_provider_from_an_entry_point_runs_a_step(installed):
    result = pipeline_nb.run("steps: [{id: a, provider: echo, model: any, prompt: hello there, stream: true}]")
    assert result.steps["a"].text == "HELLO THERE"
    assert {"echo", "broken", "claude", "gemini", "mock"} <= set(provider_names())


def test_an_unknown_provider_lists_the_entry_point_ones_too(installed):
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run("steps: [{id: a, provider: ecko, model: any, prompt: hi}]")
    assert "unknown provider 'ecko'" in str(raised.value)
    assert "echo" in str(raised.value) and "gemini" in str(raised.value)


def test_an_entry_point_that_fails_to_load_fails_its_step_saying_why(installed):
    result = pipeline_nb.run("steps: [{id: a, provider: broken, model: any, prompt: hi}]", raise_on_error=False)
    error = result.steps["a"].error
    assert "acme_missing:Provider" in error.message and "ModuleNotFoundError" in error.message


def test_register_provider_still_wins_and_needs_no_entry_point():
    from pipeline_nb.providers import register_provider
    from pipeline_nb.providers._mock import MockProvider

    register_provider("house", MockProvider)
    try:
        assert type(create_provider("house")) is MockProvider and "house" in provider_names()
    finally:
        _PROVIDERS.pop("house")


def test_the_package_declares_its_own_providers_as_entry_points():
    declared = {e.name: e.value for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert declared["gemini"] == "pipeline_nb.providers._gemini:GeminiProvider"
    assert {"claude", "anthropic", "mock", "gemini"} <= set(declared)
    assert all(type(e.load()) is type for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
               if e.value.startswith("pipeline_nb."))
