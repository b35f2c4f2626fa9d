"""Interrupts: a real kernel interrupted mid-stream, Ctrl-C in the CLI, and the engine's stop path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import pipeline_nb
from pipeline_nb import RunInterrupted
from pipeline_nb.content import Reply
from pipeline_nb._llm import register_provider
from pipeline_nb._results import Usage
from pipeline_nb.streaming._events import DELTA, RETRY

from _support import REPLY, pipeline

LONG = " ".join(f"word{i}" for i in range(80)) + "."
CELL = """%%pipeline res
name: slow
defaults: {provider: claude, model: claude-sonnet-5-5, retry_backoff: [0.01, 0.05]}
steps:
  - id: a
    prompt: "alpha"
    stream: true
  - id: b
    prompt: "beta {{ steps.a.text }}"
    stream: true
"""
REPORT = """import json, threading
print(json.dumps({
    "statuses": {s.id: s.status for s in res.steps.values()},
    "text": res.steps["a"].text,
    "run": res.status,
    "bound": _pipeline is res,
    "threads": [t.name for t in threading.enumerate()],
}))"""


def live_view_text(msg: dict) -> str:
    """The text a LiveView ``append`` message carries, or ""."""
    if msg["msg_type"] != "comm_msg":
        return ""
    content = msg["content"]["data"].get("content")
    return "".join(text for _, text, _ in content.get("text", ())) if isinstance(content, dict) else ""


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pipeline_nb")]


def test_a_kernel_interrupt_mid_stream_keeps_partial_text_and_leaves_the_kernel_ready(kernel, fake_anthropic):
    fake_anthropic.reply(LONG, when="alpha", delay=0.04)
    fake_anthropic.reply("Short.", when="beta")
    kernel.check("%load_ext pipeline_nb")

    msg_id = kernel.send(CELL)
    streamed = ""
    while len(streamed) < 40:  # the live view has received text: the stream is well under way
        msg = kernel.client.get_iopub_msg(timeout=10)
        kernel.messages.append(msg)
        streamed += live_view_text(msg)
    interrupted_at = time.monotonic()
    kernel.km.interrupt_kernel()
    rest = kernel.collect(msg_id, timeout=10)
    idle_after = time.monotonic() - interrupted_at
    print(f"\ninterrupt-to-idle: {idle_after * 1000:.0f} ms")

    errors = [m["content"] for m in rest if m["msg_type"] == "error"]
    assert [e["ename"] for e in errors] == ["KeyboardInterrupt"]
    assert "partial results are kept" in errors[0]["evalue"]
    assert idle_after < 1.5
    report = json.loads(kernel.check(REPORT))
    assert report["statuses"] == {"a": "interrupted", "b": "pending"}
    assert report["run"] == "interrupted" and report["bound"]
    assert report["text"] and LONG.startswith(report["text"]) and report["text"].startswith(streamed)
    assert not [name for name in report["threads"] if name.startswith("pipeline_nb")]
    assert [r.prompt for r in fake_anthropic.requests] == ["alpha"]

    fake_anthropic.clear()
    fake_anthropic.reply("Done quickly.")
    kernel.check(CELL.replace("slow", "again") + "\n")
    after = json.loads(kernel.check(REPORT))
    assert after["statuses"] == {"a": "ok", "b": "ok"} and after["text"] == "Done quickly."


def test_ctrl_c_in_the_cli_exits_130_and_keeps_the_partial_text(fake_anthropic, tmp_path):
    fake_anthropic.reply(LONG, when="alpha", delay=0.04)
    path = tmp_path / "slow.yaml"
    path.write_text(CELL.split("\n", 1)[1])
    # a background job started by a non-interactive shell inherits SIGINT ignored; Ctrl-C is the point here
    proc = subprocess.Popen([sys.executable, "-m", "pipeline_nb", "run", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    streamed = b""
    while len(streamed) < 40:
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.communicate()[1].decode()  # it ended before streaming anything
        streamed += chunk
    interrupted_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    print(f"\nCLI Ctrl-C to exit: {(time.monotonic() - interrupted_at) * 1000:.0f} ms")

    text = (streamed + out).decode()
    assert proc.returncode == 130
    assert text and LONG.startswith(text)
    summary = err.decode()
    assert "slow: interrupted" in summary and "Traceback" not in summary
    assert "a: interrupted · claude-sonnet-5-5" in summary
    assert f"interrupted: the {len(text)} characters received before it are kept" in summary
    assert "○ b: pending" in summary


# -- the engine's stop path, in this process (a handler raising KeyboardInterrupt stands in for Ctrl-C) --

class InterruptOn:
    """A handler that raises KeyboardInterrupt at the ``count``-th event of ``kind``, and notes when."""

    def __init__(self, kind: str, count: int = 1) -> None:
        self.kind, self.count, self.seen, self.at = kind, count, 0, 0.0

    def __call__(self, event) -> None:
        if event.kind == self.kind:
            self.seen += 1
            if self.seen == self.count:
                self.at = time.monotonic()
                raise KeyboardInterrupt

    def elapsed(self) -> float:
        return time.monotonic() - self.at


@pytest.mark.parametrize("stall", [False, True], ids=["slow-deltas", "stalled-read"])
def test_an_interrupt_closes_the_stream_and_stops_the_worker_at_once(fake_anthropic, stall):
    fake_anthropic.reply(REPLY, delay=0 if stall else 0.5)
    if stall:  # the worker is blocked in a read: read_timeout is 600 s, the stall 30 s
        fake_anthropic.fault("stall", after=3, stall_seconds=30)
    spec = pipeline({"id": "a", "prompt": "alpha", "stream": True}, {"id": "b", "prompt": "beta"})
    interrupt = InterruptOn(DELTA, 3 if stall else 1)
    with pytest.raises(RunInterrupted) as raised:
        pipeline_nb.run(spec, on_event=interrupt)
    assert interrupt.elapsed() < 0.2  # the worker was not waiting for the next delta or the read timeout
    run = raised.value.run
    assert not pipeline_threads()
    assert [s.status for s in run.steps.values()] == ["interrupted", "pending"]
    assert run.steps["a"].text and REPLY.startswith(run.steps["a"].text)
    assert len(fake_anthropic.requests) == 1


def test_an_interrupt_during_the_backoff_wait_does_not_wait(fake_anthropic, monkeypatch):
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")  # the backoff itself (a pause: tests/scale)
    fake_anthropic.fault("rate_limit", retry_after=30)
    interrupt = InterruptOn(RETRY)
    with pytest.raises(RunInterrupted) as raised:
        pipeline_nb.run(pipeline({"id": "a", "prompt": "x", "stream": True}), on_event=interrupt)
    assert interrupt.elapsed() < 0.2
    assert raised.value.run.steps["a"].status == "interrupted" and not pipeline_threads()


class _Stubborn:
    """A provider that ignores the cancel: streams two words, then waits for ``release``."""

    name = "stubborn"

    def __init__(self) -> None:
        self.release = threading.Event()

    def check(self, request):
        pass

    def complete(self, request, emit, cancel):
        emit("Half ")
        emit("a reply")
        self.release.wait(10)
        return Reply.of_text("Half a reply, late", Usage(), "end_turn", None)


def test_a_worker_that_ignores_the_cancel_is_given_one_second():
    provider = _Stubborn()
    register_provider("stubborn", lambda: provider)
    interrupt = InterruptOn(DELTA)
    with pytest.raises(RunInterrupted) as raised:
        pipeline_nb.run("steps:\n  - {id: a, prompt: x, stream: true}\n", provider="stubborn", on_event=interrupt)
    assert 1.0 <= interrupt.elapsed() < 1.5  # JOIN_TIMEOUT, then control comes back
    step = raised.value.run.steps["a"]
    assert (step.status, step.text) == ("interrupted", "Half a reply")

    provider.release.set()  # the late reply lands on the worker's own copy of the step, not on the run
    deadline = time.monotonic() + 2
    while pipeline_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pipeline_threads()
    assert raised.value.run.steps["a"] is step and (step.status, step.text) == ("interrupted", "Half a reply")
