"""Figure 5, memory: peak traced memory (tracemalloc) while streaming a 1 MB reply, as a
multiple of the text's size; each case in a fresh process, after its imports.

- bare SDK: a ``text_stream`` loop that keeps nothing (the SDK itself keeps the text, and
  grows it by concatenation, so it briefly holds two copies): the floor;
- ``pipeline_nb.run`` with no handler, and with the live view's handler (outside a kernel
  its messages go nowhere, but it builds and sends them).

The deltas are 25 characters (40,000 of them): the SDK's concatenation is quadratic, and
word-sized deltas would spend a minute in it under tracemalloc.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ._common import ROOT, FakeServer
from ._report import Figure

SIZE, DELTA = 1_000_000, 25
PROMPT = "[memory]"

_CASE = r'''
import contextlib, io, json, os, sys, tracemalloc
import anthropic, pipeline_nb
from pipeline_nb.display import WidgetHandler
case = sys.argv[1]
spec = {"steps": [{"id": "a", "provider": "claude", "prompt": "PROMPT", "stream": True, "max_tokens": 10**6}]}
client = anthropic.Anthropic(max_retries=0)
def bare():
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=10**6,
                                messages=[{"role": "user", "content": "PROMPT"}]) as s:
        for _ in s.text_stream:
            pass
        return s.get_final_text()
def run(handler=None, prompt="PROMPT"):
    spec["steps"][0]["prompt"] = prompt
    return pipeline_nb.run(spec, on_event=handler).steps["a"].text
with contextlib.redirect_stdout(io.StringIO()):
    run(WidgetHandler(), "[warm-up]")  # lazy imports, caches
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
with contextlib.redirect_stdout(io.StringIO()):
    text = bare() if case == "bare" else run(WidgetHandler() if case == "view" else None)
current, peak = tracemalloc.get_traced_memory()
print(json.dumps({"size": len(text), "peak": peak - before, "kept": current - before}))
'''.replace("PROMPT", PROMPT)

CASES = {"bare": "bare SDK loop", "run": "pipeline_nb.run", "view": "pipeline_nb.run + live view"}


def measure(case: str, base_url: str) -> dict[str, int]:
    env = {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "sk-ant-bench", "PYTHONPATH": str(ROOT)}
    import os

    out = subprocess.run([sys.executable, "-c", _CASE, case], cwd=ROOT, env={**os.environ, **env},
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


_ITEMS = r'''
import json, sys, tracemalloc
import pipeline_nb
n = int(sys.argv[1])
spec = {"steps": [{"id": "fan", "for_each": "{{ range(%d) | list }}" % n, "max_parallel": 8, "prompt": "item {{ item }}",
                   "mock_response": "ok", "mock_delay": 0}]}
pipeline_nb.run({"steps": [{**spec["steps"][0], "for_each": [1, 2]}]})  # lazy imports, caches
tracemalloc.start()
run = pipeline_nb.run(spec)
current, peak = tracemalloc.get_traced_memory()
assert run.ok and len(run.steps["fan"].items) == n
print(json.dumps({"peak": peak, "kept": current}))
'''


def per_item(items: int) -> dict[str, int]:
    """Peak and kept memory of a for_each of ``items`` on the mock provider (journal on), in a fresh process."""
    import os

    out = subprocess.run([sys.executable, "-c", _ITEMS, str(items)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(repeat: int = 5, quick: bool = False) -> list[Figure]:
    size = SIZE // 10 if quick else SIZE
    print(f"memory: peak traced memory streaming a {size / 1e6:g} MB reply in {DELTA}-character deltas", flush=True)
    results: dict[str, dict[str, int]] = {}
    replies = [{"when": PROMPT, "bytes": size, "delta_size": DELTA}, {"when": "[warm-up]", "deltas": 50}]
    with FakeServer(replies) as fake:
        for case, label in CASES.items():
            results[case] = r = measure(case, fake.base_url)
            print(f"  {label}: peak {r['peak'] / 1e6:.2f} MB = {r['peak'] / r['size']:.2f}× text, "
                  f"{r['kept'] / 1e6:.2f} MB still held after", flush=True)
    worst = max(("run", "view"), key=lambda c: results[c]["peak"])
    r, b = results[worst], results["bare"]
    items = 2_000 if quick else 100_000
    fan = per_item(items)
    print(f"  a for_each of {items:,} items (mock, journal on): peak {fan['peak'] / items:,.0f} B an item, "
          f"{fan['kept'] / items:,.0f} B an item kept after", flush=True)
    return [Figure(
        f"memory, for_each of {items:,} items (peak bytes an item)", f"{fan['peak'] / items:,.0f} B",
        f"kept after the run: {fan['kept'] / items:,.0f} B an item", fan["peak"] / items / 1000, 2.0, 2.0,
        unit="KB", note="the run's results, the journal's rows and the view's events included; nothing dropped",
    ), Figure(
        f"memory, {size / 1e6:g} MB reply (peak ÷ text)",
        f"{r['peak'] / 1e6:.1f} MB ({CASES[worst]})", f"bare SDK {b['peak'] / 1e6:.1f} MB = {b['peak'] / b['size']:.1f}×",
        r["peak"] / r["size"], 4.0, 3.0,
        note="target read as 'a small multiple': ≤ 4× the text (the SDK alone needs 2×); "
             f"{len(range(0, size, DELTA))} deltas, none kept",
    )]
