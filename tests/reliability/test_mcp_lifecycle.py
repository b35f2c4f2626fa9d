"""MCP servers and the life of a run: no process, thread, timer or file descriptor is left after a
run (ok, failed or interrupted, even while a server starts); a server starts once per run and a slow
start holds up no other step; two runs of one spec at once each use their own server; a step's
``timeout:`` bounds its calls. A real server (``pipeline_nb.testing.mcp_server``) through the real
SDK against FakeAnthropic."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pipeline_nb
from pipeline_nb import RunInterrupted, StepContext
from pipeline_nb import _mcp
from pipeline_nb._engine import execute
from pipeline_nb._loader import load_spec
from pipeline_nb._run_options import RunOptions
from pipeline_nb.testing import FakeAnthropic
from tests.tools._mcp_support import (GUARD, PY, SERVER, InterruptOnceRunning, InterruptWhileToolRuns, eventually,
                                      gone, mcp_threads, open_fds, pipeline, run_threads, settled, timers)


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")


@pytest.mark.parametrize("ending", ["ok", "failed", "interrupted"])
def test_the_server_process_is_gone_when_the_run_ends(fake_anthropic: FakeAnthropic, tmp_path: Path,
                                                      ending: str) -> None:
    pid_file = tmp_path / "server.pid"
    server = f"  demo: {{command: {PY}, args: [-m, pipeline_nb.testing.mcp_server, --pid-file, '{pid_file}']}}"
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "demo__sleep", "input": {"seconds": 20 if ending ==
                                                                                    "interrupted" else 0}}])
    if ending == "failed":
        fake_anthropic.fault("http", status=400, when=lambda request: bool(request.tool_results))
    fake_anthropic.reply("Done.")
    path = pipeline(tmp_path, server)
    if ending == "interrupted":  # Ctrl-C while the server runs the tool (it sleeps 20 s)
        with pytest.raises(RunInterrupted) as raised:
            pipeline_nb.run(path, journal="off", on_event=InterruptWhileToolRuns())
        [call] = raised.value.run.steps["ask"].tool_calls
        assert call.is_error and call.output is None  # the run did not wait for the tool's answer
        assert call.error in ("interrupted while it ran", "McpFailure: MCP server 'demo' was stopped (its run "
                              "ended, or was interrupted)")
    else:
        run = pipeline_nb.run(path, journal="off", raise_on_error=False)
        assert run.status == ("ok" if ending == "ok" else "error")
    pid = int(pid_file.read_text())
    assert gone(pid)
    assert not mcp_threads()



@pytest.mark.parametrize("ending", ["timeout", "interrupted"])
def test_a_server_that_never_answers_ends_with_its_timeout_or_an_interrupt(fake_anthropic: FakeAnthropic,
                                                                          tmp_path: Path, ending: str) -> None:
    silent = tmp_path / "silent.py"  # starts, and never speaks MCP
    silent.write_text("import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(120)\n")
    pid_file = tmp_path / "silent.pid"
    timeout = 1 if ending == "timeout" else 120
    path = pipeline(tmp_path, f"  mute: {{command: {PY}, args: ['{silent}', '{pid_file}'], timeout: {timeout}}}",
                    '["mcp:mute"]')
    if ending == "timeout":
        step = pipeline_nb.run(path, journal="off", raise_on_error=False).steps["ask"]
        assert "did not start and list its tools within 1 s" in step.error.message
    else:
        with pytest.raises(RunInterrupted) as raised:
            pipeline_nb.run(path, journal="off", on_event=InterruptOnceRunning(pid_file))
        assert raised.value.run.steps["ask"].status == "interrupted"
    assert gone(int(pid_file.read_text()))
    assert fake_anthropic.requests == []



def test_an_interrupt_while_a_server_starts_gives_back_every_file_descriptor(fake_anthropic: FakeAnthropic,
                                                                            tmp_path: Path) -> None:
    silent = tmp_path / "silent.py"  # starts, and never speaks MCP: five items wait for it
    silent.write_text("import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(120)\n")
    pid_file = tmp_path / "silent.pid"
    path = pipeline(tmp_path, f"  mute: {{command: {PY}, args: ['{silent}', '{pid_file}'], timeout: 120}}",
                    '["mcp:mute"]', extra="    for_each: [1, 2, 3, 4, 5]\n    max_parallel: 5\n")
    earlier, before = run_threads(), open_fds()
    with pytest.raises(RunInterrupted):
        pipeline_nb.run(path, journal="off", on_event=InterruptOnceRunning(pid_file))
    assert gone(int(pid_file.read_text()))
    assert settled(earlier)  # the run's worker has stopped its servers
    assert open_fds() == before  # no event loop or stderr file of a session that never started


def test_a_server_that_does_not_start_leaves_no_step_timer_running(fake_anthropic: FakeAnthropic,
                                                                   tmp_path: Path) -> None:
    path = pipeline(tmp_path, "  gone: {command: no-such-mcp-server-here}", '["mcp:gone"]', extra="    timeout: 300\n")
    earlier = timers()
    error = pipeline_nb.run(path, journal="off", raise_on_error=False).steps["ask"].error
    assert error.type == "mcp_server_failed" and "'no-such-mcp-server-here' was not found" in error.message
    assert not timers() - earlier  # the step's 300 s timer never started (and its cancel link never made)


def test_a_server_that_starts_slowly_holds_up_no_other_step(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    """``mark`` waits until ``ask``'s server is starting, then makes a call with an attachment (whose
    read takes the lock the steps share), then writes the file the server waits for to serve."""
    pid_file, marker, note = tmp_path / "slow.pid", tmp_path / "ready", tmp_path / "note.txt"
    note.write_text("The harbour is open.")

    def mark(ctx: StepContext) -> str:
        assert eventually(pid_file.exists)
        reply = ctx.invoke("Read the note.", attachments=[str(note)])
        marker.write_text("ready")
        return reply.text

    fake_anthropic.reply("Fine.")
    path = tmp_path / "slow.yaml"
    path.write_text(f"""defaults: {{provider: claude, retries: 0}}
mcp_servers:
  slow: {{command: {PY}, args: [-m, pipeline_nb.testing.mcp_server, --pid-file, '{pid_file}', --wait-for, '{marker}'],
          timeout: 20}}
steps:
  - id: both
    type: parallel
    steps:
      - {{id: ask, prompt: Count the boats., tools: ["mcp:slow"]}}
      - {{id: mark, call: mark}}
""")
    run = pipeline_nb.run(path, journal="off", raise_on_error=False, namespace={"mark": mark})
    assert run.steps["mark"].status == "ok", run.steps["mark"].error
    assert run.steps["ask"].status == "ok", run.steps["ask"].error  # it waited for mark, and mark did not wait


def test_two_runs_of_one_spec_at_once_each_use_their_own_server(fake_anthropic: FakeAnthropic,
                                                                tmp_path: Path) -> None:
    """Run 1 starts, then run 2; run 1's step waits (its ``pause`` tool) until run 2 has ended and
    stopped its server, then calls the server: its own, still running."""
    one_running, two_running, two_done = threading.Event(), threading.Event(), threading.Event()

    def meet(mine: threading.Event, other: threading.Event) -> Callable[[], str]:
        def both_running() -> str:  # neither resolves its tools before both runs are in progress
            mine.set()
            assert other.wait(GUARD)
            return "met"
        return both_running

    def pause() -> str:
        """Wait for the other run to end."""
        assert two_done.wait(GUARD)
        return "paused"

    def go_on() -> str:
        """Wait for nothing."""
        return "paused"

    fake_anthropic.reply("", when=lambda request: not request.tool_results, tool_calls=[{"name": "pause", "input": {}}])
    fake_anthropic.reply("", when="paused", tool_calls=[{"name": "demo__add", "input": {"a": 2, "b": 3}}])
    fake_anthropic.reply("Five.")
    path = tmp_path / "two.yaml"
    path.write_text(f"defaults: {{provider: claude, retries: 0}}\nmcp_servers:\n  demo: {SERVER}\nsteps:\n"
                    "  - {id: meet, call: meet}\n  - {id: ask, prompt: Add 2 and 3., tools: ['mcp:demo', pause]}\n")
    spec = load_spec(path)
    runs: dict[int, Any] = {}

    def run(number: int, namespace: dict[str, Any]) -> None:
        runs[number] = execute(spec, RunOptions(namespace=namespace, journal="off"))

    first = threading.Thread(target=run, args=(1, {"meet": meet(one_running, two_running), "pause": pause}))
    first.start()
    assert one_running.wait(GUARD)
    second = threading.Thread(target=lambda: (run(2, {"meet": meet(two_running, one_running), "pause": go_on}),
                                              two_done.set()))
    second.start()
    for thread in (first, second):
        thread.join(4 * GUARD)
    assert [runs[n].status for n in (1, 2)] == ["ok", "ok"]
    for number in (1, 2):
        paused, added = runs[number].steps["ask"].tool_calls
        assert (added.name, added.is_error, added.output) == ("demo__add", False, "5"), number


def test_a_server_starts_once_per_run_whatever_uses_it(fake_anthropic: FakeAnthropic, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    started = []

    class Counted(_mcp.McpSession):
        def start(self, cancelled):  # type: ignore[no-untyped-def]
            started.append(self.server.name)
            return super().start(cancelled)

    monkeypatch.setattr(_mcp, "McpSession", Counted)
    fake_anthropic.reply("", when="tide", times=1, tool_calls=[{"name": "demo__lookup", "input": {"key": "tide"}}])
    fake_anthropic.reply("Noted.")
    extra = ("  - id: each\n    for_each: [a, b, c]\n    prompt: 'Item {{ item }}'\n    tools: [\"mcp:demo\"]\n"
             "  - id: nested\n    pipeline:\n      steps:\n        - {id: inner, prompt: About the tide, "
             "tools: [{mcp: demo, tools: [lookup]}]}\n")
    run = pipeline_nb.run(pipeline(tmp_path, f"  demo: {SERVER}", extra=extra), journal="off", raise_on_error=False)
    assert run.ok, run.steps
    assert started == ["demo"]
    assert run.steps["nested"].child.steps["inner"].tool_calls[0].output == "spring"  # an inline pipeline: the parent's



def test_a_step_timeout_bounds_its_mcp_calls(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    """The step times out while the server sleeps 120 s; the next step sees the call's thread end
    (the call was cut at the step's timeout, not at the 600 s of any call)."""
    def call_ended() -> bool:
        return eventually(lambda: not [t for t in threading.enumerate() if t.name.endswith(":tool:demo__sleep")])

    fake_anthropic.reply("", times=1, tool_calls=[{"name": "demo__sleep", "input": {"seconds": 120}}])
    extra = "    timeout: 5\n  - {id: after, call: call_ended, continue_on_error: true}\n"
    run = pipeline_nb.run(pipeline(tmp_path, f"  demo: {SERVER}", extra=extra), journal="off", raise_on_error=False,
                          namespace={"call_ended": call_ended})
    ask = run.steps["ask"]
    assert ask.status == "error" and [(c.name, c.is_error) for c in ask.tool_calls] == [("demo__sleep", True)]
    assert run.steps["after"].output is True
