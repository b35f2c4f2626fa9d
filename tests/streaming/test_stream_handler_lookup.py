"""``stream_handler:`` lookup: import paths, kernel names, classes, instances, callables;
only that step's events reach it; a bad name fails before any request is sent."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import pipeline_nb
from pipeline_nb.streaming import BufferHandler, Event
from pipeline_nb.testing import FakeAnthropic

MODULE = '''
from pipeline_nb.streaming import StreamHandler

INSTANCES = []


class Recorder(StreamHandler):
    def __init__(self):
        super().__init__()
        self.events, self.inits, self.closes = [], 0, 0
        INSTANCES.append(self)

    def on_run_start(self, run):
        self.inits += 1

    def handle_event(self, event):
        if self.accept(event):
            self.events.append(event)

    def close(self):
        self.closes += 1


class NeedsArgs(Recorder):
    def __init__(self, path):
        super().__init__()
'''


def spec(handler: str, provider: str = "mock") -> str:
    """Three steps; only ``b`` names the handler (on line 8, its value at column 21)."""
    return f"""name: lookup
defaults: {{provider: {provider}, stream: true, mock_delay: 0}}
steps:
  - id: a
    prompt: "first"
  - id: b
    prompt: "second"
    stream_handler: {handler}
  - id: c
    prompt: "third"
"""


def step_of(event: Event) -> str | None:
    return getattr(event.data, "step_id", None) or getattr(event.data, "id", None)


def only_b(events: list[Event], run: pipeline_nb.PipelineRun) -> None:
    kinds = [e.kind for e in events if e.kind != "delta"]
    assert kinds == ["step_start", "done", "step_end", "run_end"]
    assert {step_of(e) for e in events if e.kind != "run_end"} == {"b"}
    assert "".join(e.data.content for e in events if e.kind == "delta") == run.steps["b"].text != ""


@pytest.fixture
def handlers_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    name = f"pnb_test_handlers_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


@pytest.mark.parametrize("form", ["{mod}.Recorder", "{mod}:Recorder"])
def test_import_path_to_a_class(handlers_module: ModuleType, form: str) -> None:
    run = pipeline_nb.run(spec(form.format(mod=handlers_module.__name__)))
    (handler,) = handlers_module.INSTANCES
    only_b(handler.events, run)
    assert (handler.inits, handler.closes) == (1, 1)


@pytest.mark.parametrize("path", ["pipeline_nb.streaming.ConsoleHandler", "pipeline_nb.streaming._handlers:ConsoleHandler"])
def test_import_path_to_a_builtin_handler(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = pipeline_nb.run(spec(path))
    out, err = capsys.readouterr()
    assert out == run.steps["b"].text + "\n"  # only step b's text reached the console
    assert "── b" in err and "── a" not in err and "── c" not in err
    assert run.handler_errors == []


def test_kernel_names_instance_class_and_callable() -> None:
    buf, seen = BufferHandler(), []
    run = pipeline_nb.run(spec("buf"), namespace={"buf": buf})
    assert buf.texts == {"b": run.steps["b"].text} and set(buf.responses) == {"b"}
    only_b(buf.events, run)

    made: list[BufferHandler] = []

    class Mine(BufferHandler):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    run = pipeline_nb.run(spec("Mine"), namespace={"Mine": Mine})
    assert len(made) == 1 and made[0].texts == {"b": run.steps["b"].text}

    run = pipeline_nb.run(spec("log"), namespace={"log": seen.append})
    assert seen[0] == Event("run_start", run)
    only_b(seen[1:], run)


def test_namespace_name_wins_over_an_import_path(handlers_module: ModuleType) -> None:
    buf = BufferHandler()
    name = f"{handlers_module.__name__}.Recorder"
    pipeline_nb.run(spec(name), namespace={name: buf})
    assert handlers_module.INSTANCES == [] and set(buf.texts) == {"b"}


def test_a_handler_named_by_two_steps_is_one_instance(handlers_module: ModuleType) -> None:
    path = f"{handlers_module.__name__}.Recorder"
    run = pipeline_nb.run({"defaults": {"stream": True, "mock_delay": 0, "stream_handler": path},
                           "steps": [{"id": "a", "prompt": "1"}, {"id": "b", "prompt": "2"}]})
    (handler,) = handlers_module.INSTANCES
    assert [step_of(e) for e in handler.events if e.kind == "done"] == ["a", "b"]
    assert (handler.inits, handler.closes) == (1, 1) and run.ok


def test_run_level_handlers_still_see_every_step() -> None:
    buf, everything = BufferHandler(), BufferHandler()
    pipeline_nb.run(spec("buf"), namespace={"buf": buf}, on_event=everything)
    assert set(buf.texts) == {"b"} and set(everything.texts) == {"a", "b", "c"}


BAD = [
    ("nope", "not defined in the kernel"),
    ("pipeline_nb.streaming.NoSuchHandler", "has no attribute"),
    ("no_such_module_pnb.Handler", "cannot import"),
    ("os.sep", "handle_event"),
    ("{mod}.NeedsArgs", "path"),
]


@pytest.mark.parametrize("name, why", BAD)
def test_an_unusable_handler_fails_before_any_request(
    name: str, why: str, handlers_module: ModuleType, fake_anthropic: FakeAnthropic
) -> None:
    name = name.format(mod=handlers_module.__name__)
    with pytest.raises(pipeline_nb.PipelineSpecError) as info:
        pipeline_nb.run(spec(name, provider="claude"))
    error = info.value
    assert fake_anthropic.requests == []
    assert error.step_id == "b"
    assert (error.location.line, error.location.col) == (8, 21)
    assert re.match(r"<pipeline>:8:21: step 'b': stream_handler ", str(error))
    assert why in str(error) and repr(name) in str(error)


def test_an_unknown_handler_in_defaults_points_at_defaults(fake_anthropic: FakeAnthropic) -> None:
    with pytest.raises(pipeline_nb.PipelineSpecError, match=r"<pipeline>:1:28: step 'a': stream_handler 'nope'"):
        pipeline_nb.run("defaults: {stream_handler: nope, provider: claude}\nsteps:\n  - id: a\n    prompt: hi\n")
    assert fake_anthropic.requests == []
