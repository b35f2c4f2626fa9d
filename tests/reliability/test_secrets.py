"""The API key never shows: a recognisable key, a success, a 401 and a crash, run in this
process, through the CLI and in a real kernel; everything they produce is scanned for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from jupyter_client import AsyncKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import pipeline_nb
from pipeline_nb._llm import LLMRequest
from pipeline_nb.providers._claude import ClaudeProvider
from pipeline_nb._render import run_html, run_text, step_html

from _support import REPLY, kernel_manager

KEY = "sk-ant-SECRET-canary-1234"
SCENARIOS = {  # name: (prompt, what the fake does with it)
    "ok": ("tides please", None),
    "denied": ("denied please", ("http", {"status": 401, "times": None})),
    "crashed": ("crash please", ("cut", {"after": 2, "times": None})),
    # a server (or proxy) that echoes the request's Authorization header in its 401 body
    "echoed": ("echo please", ("http", {"status": 401, "times": None,
                                        "message": f"invalid credentials in 'Authorization: Bearer {KEY}'"})),
}


def yaml_for(prompt: str) -> str:
    return ("defaults: {provider: claude, retries: 0}\n"
            f"steps:\n  - id: a\n    prompt: {prompt}\n    stream: true\n  - id: b\n    prompt: more {prompt}\n")


@pytest.fixture
def fake(fake_anthropic, monkeypatch):
    """The fake API, scripted for every scenario, with KEY as the key."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    for prompt, fault in SCENARIOS.values():
        if fault:
            fake_anthropic.fault(fault[0], when=prompt, **fault[1])
    fake_anthropic.reply(REPLY)
    yield fake_anthropic
    log = [repr(r) for r in fake_anthropic.requests]
    assert log and all("<redacted>" in entry for entry in log)
    assert_no_key("the fake's request log", *log)


def assert_no_key(where: str, *texts: str) -> None:
    for text in texts:
        assert KEY not in text and "SECRET-canary" not in text, f"the key leaked into {where}"


def test_no_key_in_results_errors_or_client_reprs(fake):
    runs = {name: pipeline_nb.run(yaml_for(prompt), raise_on_error=False) for name, (prompt, _) in SCENARIOS.items()}
    assert [r.status for r in runs.values()] == ["ok", "error", "error", "error"]
    assert "check ANTHROPIC_API_KEY" in str(runs["denied"].steps["a"].error)
    assert "Bearer <redacted>" in str(runs["echoed"].steps["a"].error)
    with pytest.raises(pipeline_nb.StepError) as raised:
        pipeline_nb.raise_for_status(runs["denied"])
    provider = ClaudeProvider()
    client = provider._client(LLMRequest("claude", "claude-sonnet-5-5", (), 1))
    shown = [str(raised.value), repr(raised.value), repr(provider), repr(vars(provider)), repr(client), str(client)]
    for run in runs.values():
        shown += [repr(run), run_html(run), run_text(run)]
        for step in run.steps.values():
            shown += [repr(step), str(step.error), repr(step.error), step_html(step)]
    assert_no_key("a repr", *shown)


def test_no_key_in_the_cli_output_or_its_debug_logs(fake, tmp_path):
    steps = "".join(f"  - id: {name}\n    prompt: {prompt}\n    stream: true\n    continue_on_error: true\n"
                    for name, (prompt, _) in SCENARIOS.items())
    (tmp_path / "all.yaml").write_text(f"defaults: {{provider: claude, retries: 0}}\nsteps:\n{steps}")
    proc = subprocess.run([sys.executable, "-m", "pipeline_nb", "run", "all.yaml"], cwd=tmp_path, timeout=60,
                          env={**os.environ, "ANTHROPIC_LOG": "debug"}, capture_output=True, text=True)

    assert proc.returncode == 1
    assert REPLY in proc.stdout
    assert "check ANTHROPIC_API_KEY" in proc.stderr and "connection_lost" in proc.stderr
    assert "HTTP Request: POST" in proc.stderr  # the SDK's debug log is on
    assert_no_key("the CLI's output", proc.stdout, proc.stderr)


def test_no_key_in_a_kernel_s_messages_or_the_saved_notebook(fake, tmp_path):
    reprs = ("from pipeline_nb.providers._claude import ClaudeProvider\n"
             "p = ClaudeProvider(); p._client(__import__('pipeline_nb.providers').providers.LLMRequest('claude', 'm', (), 1))\n"
             "for obj in (ok, denied, crashed, echoed, p, p._clients, *[s for r in (ok, denied, crashed, echoed) for s in r.steps.values()]):\n"
             "    print(repr(obj), str(obj))\n"
             "denied")
    cells = ["%load_ext pipeline_nb", *(f"%%pipeline {name}\n{yaml_for(prompt)}" for name, (prompt, _) in SCENARIOS.items()),
             reprs]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = _Recording(nb, km=kernel_manager(tmp_path, AsyncKernelManager), timeout=60, allow_errors=True,
                        store_widget_state=True, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    nbformat.write(nb, tmp_path / "saved.ipynb")
    saved = (tmp_path / "saved.ipynb").read_text()

    errors = {c.source.split()[1]: o for c in nb.cells[1:5] for o in c.outputs if o.output_type == "error"}
    assert set(errors) == {"denied", "crashed", "echoed"} and errors["denied"].ename == "StepError"
    assert "Bearer <redacted>" in errors["echoed"].evalue
    assert "check ANTHROPIC_API_KEY" in errors["denied"].evalue
    assert REPLY in saved and "connection_lost" in saved
    assert not [o for o in nb.cells[5].outputs if o.output_type == "error"]  # every run was bound to its name
    assert "PipelineRun(name='denied', status='error'" in saved
    assert any(m["msg_type"] == "comm_msg" for m in client.messages)  # the live view's traffic is scanned too
    assert_no_key("the saved notebook", saved)
    assert_no_key("the kernel's messages", json.dumps(client.messages, default=str))


class _Recording(NotebookClient):
    """A NotebookClient that keeps every iopub message it sees."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.messages: list[dict] = []

    def process_message(self, msg, cell, cell_index):
        self.messages.append(msg)
        return super().process_message(msg, cell, cell_index)


def test_no_key_in_a_file_handler_log_of_an_echoed_key(fake, tmp_path):
    log = tmp_path / "stream.jsonl"
    prompt = SCENARIOS["echoed"][0]
    run = pipeline_nb.run(yaml_for(prompt), raise_on_error=False,
                          on_event=pipeline_nb.streaming.FileHandler(log, format="jsonl"))
    assert run.steps["a"].status == "error"
    written = log.read_text()
    assert "Bearer <redacted>" in written
    assert_no_key("the FileHandler's log", written)
