"""Helpers for the reliability suite: pipeline YAML, and a real kernel on this venv's python."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

REPLY = "The tide comes in twice a day and goes out twice a day, pulled by the moon and the sun."
FAST = {"provider": "claude", "model": "claude-sonnet-5-5", "retry_backoff": [0.01, 0.05]}


def pipeline(*steps: dict[str, Any], **defaults: Any) -> str:
    """Pipeline YAML: claude steps with fast backoff, plus ``defaults``; a step is ``{"id": ..., "prompt": ...}``."""
    return yaml.safe_dump({"defaults": {**FAST, **defaults}, "steps": list(steps)}, sort_keys=False)


def kernel_manager(tmp_path: Path, cls: type[KernelManager] = KernelManager) -> KernelManager:
    """A kernel manager whose kernel runs this interpreter (the venv's python), whatever kernelspecs exist."""
    spec_dir = tmp_path / "kernels" / "pnb-venv"
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "pnb venv", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return cls(kernel_name="pnb-venv", kernel_spec_manager=specs)


class Kernel:
    """A started kernel and its client; ``execute`` returns every iopub message of one cell."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self.client = km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.messages: list[dict[str, Any]] = []

    def send(self, code: str) -> str:
        return self.client.execute(code, store_history=False)

    def collect(self, msg_id: str, timeout: float = 30) -> list[dict[str, Any]]:
        """iopub messages of ``msg_id`` up to its ``idle`` status; the idle message is last."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            self.messages.append(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            got.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return got

    def execute(self, code: str, timeout: float = 30) -> list[dict[str, Any]]:
        return self.collect(self.send(code), timeout)

    def check(self, code: str) -> str:
        """Run ``code``; fail on an error; return its stdout."""
        msgs = self.execute(code)
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert not errors, "\n".join(errors[0]["traceback"])
        return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
