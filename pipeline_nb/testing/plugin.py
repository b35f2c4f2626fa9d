"""pytest plugin (entry point ``pytest11``): fixtures for testing pipelines offline.

- ``fake_anthropic``: a running FakeAnthropic, with the SDK pointed at it;
- ``fake_gemini``: a running FakeGemini, with ``provider: gemini`` pointed at it;
- ``pipeline_cassette``: this test's cassette path, ``cassettes/<module>/<test>.jsonl``
  beside the test file;
- ``run_pipeline``: runs a pipeline against that cassette, in ``replay`` mode unless
  ``--pipeline-cassette-mode`` says otherwise, and returns the PipelineRun; its expectations'
  summary (``checks: 7 of 8 passed``) becomes a ``pipeline_checks`` user property of the test.

Assert on expectations with ``pipeline_nb.testing.assert_checks_pass(run)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .._api import run
from .._cassette import MODES
from .._results import PipelineRun
from ._fake_anthropic import FakeAnthropic
from ._fake_gemini import FakeGemini

RunPipeline = Callable[..., PipelineRun]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pipeline_nb")
    group.addoption(
        "--pipeline-cassette-mode",
        choices=[m for m in MODES if m != "off"],
        default="replay",
        help="how the run_pipeline fixture uses cassettes: replay (the default: never call a model), "
        "auto (record what is missing) or record (call again and overwrite)",
    )


@pytest.fixture
def fake_anthropic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A running FakeAnthropic; ANTHROPIC_BASE_URL and a test key point the SDK at it."""
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-fake-key")
        yield fake


@pytest.fixture
def fake_gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    """A running FakeGemini; GEMINI_BASE_URL and a test key point ``provider: gemini`` at it
    (GOOGLE_API_KEY and GOOGLE_GEMINI_BASE_URL are cleared, so the machine's own cannot win)."""
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", "gemini-test-fake-key")
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
        yield fake


@pytest.fixture
def pipeline_cassette(request: pytest.FixtureRequest) -> Path:
    """The cassette for this test: ``cassettes/<module>/<test>.jsonl`` beside the test file."""
    test_file = Path(request.node.path)
    name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    return test_file.parent / "cassettes" / test_file.stem / f"{name}.jsonl"


@pytest.fixture
def run_pipeline(request: pytest.FixtureRequest, pipeline_cassette: Path) -> RunPipeline:
    """Run a pipeline (YAML text, a path or a dict) from this test's cassette.

    Calls take ``run``'s keywords; ``cassette=`` picks another file. A reply missing from
    the cassette fails the test with the option that records it; other failed steps do not
    raise: check them with ``assert_run_ok`` or ``assert_step``.
    """
    mode = request.config.getoption("--pipeline-cassette-mode")

    def run_from_cassette(source: str | Path | Mapping[str, Any], **options: Any) -> PipelineRun:
        options.setdefault("cassette", pipeline_cassette)
        options.setdefault("cassette_mode", mode)
        options.setdefault("raise_on_error", False)
        result = run(source, **options)
        if result.checks:  # the verdicts go into the test's report (junit XML and --report-log show them)
            request.node.user_properties.append(("pipeline_checks", result.checks.summary()))
        missed = [s.id for s in result.steps.values() if s.error and s.error.type == "cassette_miss"]
        if missed:
            pytest.fail(
                f"{options['cassette']} has no recording for step(s) {', '.join(missed)}; "
                "record them with: pytest --pipeline-cassette-mode auto",
                pytrace=False,
            )
        return result

    return run_from_cassette
