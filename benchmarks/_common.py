"""Shared machinery: the fake API in a subprocess, a real kernel whose iopub traffic is
counted frame by frame, and a little statistics."""

from __future__ import annotations

import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class FakeServer:
    """A FakeAnthropic in its own process (see ``_fake_server``); ``base_url`` while open."""

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        self.replies = replies
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FakeServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._fake_server", json.dumps(self.replies)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout is not None
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the fake API did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


@dataclass
class Traffic:
    """What one cell sent on iopub, from execute_request to its idle status."""

    seconds: float
    messages: int
    bytes: int
    by_type: dict[str, list[int]] = field(default_factory=dict)  # msg_type -> [count, bytes]
    errors: list[str] = field(default_factory=list)
    stdout: str = ""
    cell_seconds: float = 0.0
    """Wall time of the cell itself, inside the kernel (pre_run_cell to post_run_cell)."""
    cpu_seconds: float = 0.0
    """CPU time of the whole kernel process (every thread) over the cell."""
    display_mimes: dict[str, int] = field(default_factory=dict)
    """Bytes of each mime type of the cell's last display_data (the final rendering)."""
    display_bytes: int = 0
    """Bytes of the cell's last display_data message, its envelope included."""

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


_TIMER = """
import time as _bench_time
_bench_times = (0.0, 0.0)
_bench_start = [0.0, 0.0]
def _bench_pre(info):
    _bench_start[:] = _bench_time.perf_counter(), _bench_time.process_time()
def _bench_post(result):
    global _bench_times
    _bench_times = (_bench_time.perf_counter() - _bench_start[0], _bench_time.process_time() - _bench_start[1])
get_ipython().events.register("pre_run_cell", _bench_pre)
get_ipython().events.register("post_run_cell", _bench_post)
"""


class Kernel:
    """A real ipykernel (jupyter_client KernelManager), pointed at ``base_url``.

    ``execute`` reads the iopub socket itself and counts every frame's bytes, so the
    figure is what crossed the wire, whatever the message's parent.
    """

    def __init__(self, base_url: str = "", *, env: dict[str, str] | None = None) -> None:
        from jupyter_client import KernelManager

        self._dir = tempfile.TemporaryDirectory(prefix="pnb-bench-")
        kernel_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        if base_url:
            kernel_env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="sk-ant-bench")
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=kernel_env, cwd=self._dir.name)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.check(_TIMER)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        self._dir.cleanup()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _drain(self) -> None:
        sock = self.kc.iopub_channel.socket
        while sock.poll(50):
            sock.recv_multipart()

    def execute(self, code: str, timeout: float = 600.0) -> Traffic:
        """Run ``code``; count what iopub carries until this request's idle status."""
        session = self.kc.session
        sock = self.kc.iopub_channel.socket
        self._drain()
        started = time.perf_counter()
        msg_id = self.kc.execute(code, store_history=False, user_expressions={"t": "_bench_times"})
        messages = total = 0
        by_type: dict[str, list[int]] = {}
        errors: list[str] = []
        stdout: list[str] = []
        display_mimes: dict[str, int] = {}
        display_bytes = 0
        deadline = started + timeout
        while True:
            if not sock.poll(max(1, int((deadline - time.perf_counter()) * 1000))):
                raise TimeoutError(f"no idle after {timeout} s")
            frames = sock.recv_multipart(copy=True)
            size = sum(len(f) for f in frames)
            _, parts = session.feed_identities(frames, copy=True)
            header = json.loads(parts[1])
            parent = json.loads(parts[2])
            kind = header["msg_type"]
            messages += 1
            total += size
            counts = by_type.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += size
            mine = parent.get("msg_id") == msg_id
            if kind == "display_data":
                data = json.loads(parts[4])["data"]
                display_mimes = {mime: len(json.dumps(value, ensure_ascii=False).encode())
                                 for mime, value in data.items()}
                display_bytes = size
            if kind in ("status", "error", "stream") and mine:
                content = json.loads(parts[4])
                if kind == "error":
                    errors.append(f"{content['ename']}: {content['evalue']}")
                elif kind == "stream" and content.get("name") == "stdout":
                    stdout.append(content["text"])
                elif kind == "status" and content["execution_state"] == "idle":
                    break
        elapsed = time.perf_counter() - started
        reply = self.kc.get_shell_msg(timeout=10)["content"]
        if reply["status"] != "ok" and not errors:
            errors.append(f"{reply.get('ename')}: {reply.get('evalue')}")
        times = reply.get("user_expressions", {}).get("t", {}).get("data", {}).get("text/plain", "(0.0, 0.0)")
        cell, cpu = ast.literal_eval(times)
        return Traffic(elapsed, messages, total, by_type, errors, "".join(stdout), cell, cpu, display_mimes,
                       display_bytes)

    def check(self, code: str, timeout: float = 600.0) -> Traffic:
        """``execute``, raising if the cell failed."""
        traffic = self.execute(code, timeout)
        if traffic.errors:
            raise RuntimeError(f"cell failed: {traffic.errors[0]}\n{code}")
        return traffic


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """``min-max`` of a series, for noise."""
    return f"{min(values):.3g}-{max(values):.3g}"


def kb(n: float) -> str:
    if n >= 10 * 1024 * 1024:
        return f"{n / 1024 / 1024:.0f} MB"
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.1f} KB"
