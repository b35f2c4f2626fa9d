"""Any number of interrupts end a run the same way as one: through the Python API, in a real kernel, in the CLI.

Each run below spends its stop path in a python step that ignores the cancel (a sleep), so
the engine waits its full JOIN_TIMEOUT (1 s) for the worker: the later interrupts land there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SLOW_STEP = "steps:\n  - id: nap\n    call: {call}\n    args: {{seconds: 3}}\n  - id: after\n    vars: {{x: 1}}\n"


PYTHON_API = """
import json, os, signal, threading, time
import pipeline_nb
from pipeline_nb.streaming._handlers import StreamHandler

def nap(seconds):
    time.sleep(seconds)

class Recorder(StreamHandler):
    ended = closed = False
    def on_step_start(self, step):
        threading.Thread(target=send, daemon=True).start()
    def on_run_end(self, run):
        self.ended = True
    def close(self):
        self.closed = True

def send():
    for _ in range(3):
        time.sleep(0.15)
        os.kill(os.getpid(), signal.SIGINT)

recorder = Recorder()
try:
    pipeline_nb.run(SPEC, namespace={"nap": nap}, on_event=recorder)
except pipeline_nb.RunInterrupted as exc:
    time.sleep(0.5)  # any interrupt still in flight would land here, outside the run
    print(json.dumps({"status": exc.run.status, "steps": {s.id: s.status for s in exc.run.steps.values()},
                      "ended": recorder.ended, "closed": recorder.closed,
                      "restored": signal.getsignal(signal.SIGINT) is signal.default_int_handler}))
"""


def test_three_interrupts_through_the_python_api_raise_one_run_interrupted_and_close_every_handler(tmp_path):
    script = PYTHON_API.replace("SPEC", repr(SLOW_STEP.format(call="nap")))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout) == {"status": "interrupted", "steps": {"nap": "interrupted", "after": "pending"},
                                       "ended": True, "closed": True, "restored": True}


REPORT = """import json
print(json.dumps({"bound": _pipeline is res, "status": res.status,
                  "steps": {s.id: s.status for s in res.steps.values()}}))"""


def test_three_kernel_interrupts_end_the_cell_like_one(kernel):
    kernel.check("%load_ext pipeline_nb\nimport time\ndef nap(seconds):\n    time.sleep(seconds)\n    return 'rested'")
    kernel.check("res = None")
    msg_id = kernel.send("%%pipeline res\n" + SLOW_STEP.format(call="nap"))
    while True:  # the live view shows the step running: the worker is asleep in nap
        msg = kernel.client.get_iopub_msg(timeout=20)
        kernel.messages.append(msg)
        if msg["msg_type"] == "comm_msg" and "running" in json.dumps(msg["content"]["data"]):
            break
    for _ in range(3):
        kernel.km.interrupt_kernel()
        time.sleep(0.15)
    messages = kernel.collect(msg_id, timeout=20)

    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert len(errors) == 1, [e["ename"] for e in errors]
    assert errors[0]["ename"] == "KeyboardInterrupt" and "partial results are kept" in errors[0]["evalue"]
    assert len(errors[0]["traceback"]) == 1  # one line, not a 15-line traceback
    assert any(m["msg_type"] == "comm_close" for m in messages), "the live view was never retired"
    report = json.loads(kernel.check(REPORT))
    assert report == {"bound": True, "status": "interrupted", "steps": {"nap": "interrupted", "after": "pending"}}


def test_three_ctrl_c_in_the_cli_exit_130_with_a_summary(tmp_path: Path):
    (tmp_path / "napper.py").write_text("import time\ndef nap(seconds):\n    time.sleep(seconds)\n")
    (tmp_path / "slow.yaml").write_text(SLOW_STEP.format(call="napper:nap"))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline_nb", "run", "slow.yaml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    header = b""
    while b"nap" not in header:  # the step's header on stderr: the step is running
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, "the CLI ended before the step started"
        header += chunk
    time.sleep(0.1)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.15)
    _, err = proc.communicate(timeout=20)
    err = (header + err).decode()

    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted" in err and "after: pending" in err


def test_an_interrupt_stops_a_long_template_render_on_the_worker(monkeypatch):
    """A render that would run for a minute (its loop budget raised for the test) stops within the
    engine's one-second wait: no worker is left burning a core after the run returns."""
    import threading

    import pipeline_nb
    from pipeline_nb import _template_limits as template_limits

    monkeypatch.setattr(template_limits, "MAX_LOOP_STEPS", 10**12)
    heavy = "{% for i in range(100000) %}{% for j in range(3000) %}x{% endfor %}{% endfor %}"

    def interrupt_when_it_starts(event):
        if event.kind == "step_start":
            time.sleep(0.2)  # the render is well under way
            raise KeyboardInterrupt

    try:
        pipeline_nb.run({"steps": [{"id": "heavy", "prompt": heavy}]}, on_event=interrupt_when_it_starts)
    except pipeline_nb.RunInterrupted as exc:
        run = exc.run
    assert run.steps["heavy"].status == "interrupted"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("pipeline_nb")]
