"""Helpers for the MCP tests (tests/tools/test_mcp.py, tests/reliability/test_mcp_lifecycle.py): the
test server's declaration, a pipeline file around it, waits bounded by GUARD, and handlers that press
Ctrl-C at a chosen moment of a run."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pipeline_nb.streaming._events import STEP_START, TOOL_CALL

PY = sys.executable
SERVER = f"{{command: {PY}, args: [-m, pipeline_nb.testing.mcp_server]}}"
SECRET = "s3cr3t-token-9f8e7d6c"
GUARD = 30.0
"""Seconds a wait for a process to end may take before the test fails (only a guard against a hang)."""


def pipeline(tmp_path: Path, servers: str, tools: str = '["mcp:demo"]', extra: str = "") -> Path:
    """A pipeline file: ``servers`` under mcp_servers:, one step ``ask`` with ``tools``."""
    path = tmp_path / "mcp.yaml"
    path.write_text(f"defaults: {{provider: claude, retries: 0}}\nmcp_servers:\n{servers}\nsteps:\n"
                    f"  - id: ask\n    prompt: Count the boats.\n    tools: {tools}\n{extra}")
    return path


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (and been reaped), waiting up to GUARD seconds."""
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def mcp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pipeline_nb:mcp")]


def run_threads() -> set[threading.Thread]:
    """The threads of runs (the worker, items, tools, MCP loops) alive now."""
    return {t for t in threading.enumerate() if t.name.startswith("pipeline_nb:")}


def eventually(ready: Callable[[], bool]) -> bool:
    """Whether ``ready()`` becomes true, waiting up to GUARD seconds (only a guard against a hang)."""
    deadline = time.monotonic() + GUARD
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def settled(earlier: set[threading.Thread]) -> bool:
    """Whether every run thread but ``earlier`` has ended (waiting up to GUARD seconds)."""
    return eventually(lambda: not run_threads() - earlier)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def timers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if isinstance(t, threading.Timer)}


class InterruptWhileToolRuns:
    """A handler that raises KeyboardInterrupt (as Ctrl-C does) at the 10th flush after a tool call was
    announced: by then the call has been sent (the engine flushes handlers every 50 ms)."""

    def __init__(self) -> None:
        self.flushes = -1

    def init(self, run: object) -> None:
        pass

    def close(self) -> None:
        pass

    def handle_event(self, event: object) -> None:
        if getattr(event, "kind", None) == TOOL_CALL and self.flushes < 0:
            self.flushes = 0

    def flush(self) -> None:
        if self.flushes >= 0:
            self.flushes += 1
            if self.flushes == 10:
                raise KeyboardInterrupt


class InterruptOnceRunning(InterruptWhileToolRuns):
    """Ctrl-C at the first flush after the step started and ``pid_file`` exists: its server is starting."""

    def __init__(self, pid_file: Path) -> None:
        super().__init__()
        self.pid_file = pid_file

    def handle_event(self, event: object) -> None:
        if getattr(event, "kind", None) == STEP_START and self.flushes == -1:
            self.flushes = 0

    def flush(self) -> None:
        if self.flushes >= 0 and self.pid_file.exists():
            self.flushes = -2  # once: the engine flushes again as it stops
            raise KeyboardInterrupt
