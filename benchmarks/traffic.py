"""Figure 1, traffic: every iopub message and byte of one streamed step, through a real kernel.

Two paces: the issue's own measurement (about 0.8 deltas a millisecond: 3,650 deltas in
4.5 s) and full speed (the fake does not wait; the SDK's parsing sets the pace), one delta
per word. Counted from execute_request to the cell's idle status, whatever the parent. The
view's code goes once per kernel: a warm-up cell carries it, so the figures are those of
every later cell (the first cell of a kernel costs the code once more, about 19 KB). The
naive baselines update a widget per delta, the same reply, at 1 ms a delta, the same
counting; they run at 2k tokens only (both grow with the square of the length: at 20k they
would take minutes and gigabytes).
"""

from __future__ import annotations

from typing import Any

from ._common import FakeServer, Kernel, Traffic, kb
from ._report import Figure
from ._text import deltas

PACE = 0.001
"""Seconds the fake sleeps before each delta; about 1.2 ms a delta with the SDK's parsing."""
PACES = {"1 ms a delta": PACE, "full speed": 0.0}
SIZES = (2_000, 20_000)
TARGETS = {2_000: 3.0, 20_000: 2.2}
"""Bytes ÷ text: issue 16's targets (the floor is 2×: the text crosses live and in the final rendering)."""
BEFORE = {(2_000, PACE): 5.2, (20_000, PACE): 2.9, (2_000, 0.0): 5.2, (20_000, 0.0): 2.3}
"""Bytes ÷ text before the code went once per kernel and fast text in larger messages (issue 16)."""

PIPELINE = '%%pipeline --provider claude\nsteps:\n  - {{id: a, prompt: "{prompt}", stream: true}}\n'
_STREAM = '''
import anthropic
_client = anthropic.Anthropic(max_retries=0)
with _client.messages.stream(model="claude-sonnet-5-5", max_tokens=1024,
                             messages=[{{"role": "user", "content": "{prompt}"}}]) as _s:
{body}
'''
NAIVE = {
    "Output.append_stdout per delta": ("import ipywidgets\n_out = ipywidgets.Output()\ndisplay(_out)",
                                       "    for _t in _s.text_stream:\n        _out.append_stdout(_t)"),
    "HTML.value = text per delta": ("import ipywidgets\n_out = ipywidgets.HTML()\ndisplay(_out)",
                                    "    _text = ''\n    for _t in _s.text_stream:\n"
                                    "        _text += _t\n        _out.value = _text"),
}


def prompt(n: int, pace: float) -> str:
    return f"[traffic {n} at {pace * 1000:g} ms]"


def replies() -> list[dict[str, Any]]:
    return [{"when": prompt(n, pace), "deltas": n, "delay": pace} for n in SIZES for pace in PACES.values()]


def text_size(n: int) -> int:
    return len("".join(deltas(n)).encode())


def pace_note(t: Traffic) -> str:
    """The message rate against its target, for a cell long enough for a rate to mean something."""
    if t.seconds < 1.0:
        return f"{t.messages} messages in {t.seconds:.1f} s (msg/s is judged on cells of 1 s or more)"
    return f"msg/s target ≤ 25: {'met' if t.per_second <= 25 else 'MISSED'} ({t.per_second:.1f})"


def describe(label: str, t: Traffic, size: int) -> str:
    types = ", ".join(f"{k} {v[0]}×/{kb(v[1])}" for k, v in sorted(t.by_type.items(), key=lambda kv: -kv[1][1]))
    return (f"  {label}: {t.messages} messages, {kb(t.bytes)} = {t.bytes / size:.2f}× text "
            f"({kb(size)}), {t.per_second:.1f} msg/s over {t.seconds:.1f} s\n    {types}")


def run(repeat: int = 1, quick: bool = False) -> list[Figure]:
    figures: list[Figure] = []
    print("traffic: one streamed step through a real kernel, at 1 ms a delta and at full speed", flush=True)
    sizes = SIZES[:1] if quick else SIZES
    with FakeServer(replies()) as fake, Kernel(fake.base_url) as kernel:
        kernel.check("%load_ext pipeline_nb\nimport anthropic")
        kernel.check(PIPELINE.format(prompt="warm-up"))  # the first view of the kernel: it carries the code
        naive: dict[str, Traffic] = {}
        for label, (setup, body) in NAIVE.items():
            naive[label] = kernel.check(setup + _STREAM.format(prompt=prompt(SIZES[0], PACE), body=body))
        size0 = text_size(SIZES[0])
        for label, t in naive.items():
            print(describe(f"naive, {label}, 2k tokens", t, size0), flush=True)
        worst = max(naive.values(), key=lambda r: r.bytes)
        baseline = (f"HTML.value: {kb(naive['HTML.value = text per delta'].bytes)} (2k); "
                    f"append_stdout: {kb(worst.bytes)} (2k)")
        for n in sizes:
            size = text_size(n)
            for pace_name, pace in PACES.items():
                # bytes barely vary run to run (only where a send falls): the worst of two at 2k, one at 20k
                runs = [kernel.check(PIPELINE.format(prompt=prompt(n, pace))) for _ in range(2 if n < 10_000 else 1)]
                t = max(runs, key=lambda r: r.bytes)
                print(describe(f"pipeline_nb, {n // 1000}k tokens, {pace_name}", t, size), flush=True)
                final = t.display_bytes
                print(f"    of which the final plain rendering (HTML, for the saved notebook): "
                      f"{kb(final)} = {final / size:.2f}× text; the rest (live view and cell) "
                      f"{(t.bytes - final) / size:.2f}× text", flush=True)
                figures.append(Figure(
                    f"traffic, {n // 1000}k tokens, {pace_name} (bytes ÷ text)",
                    f"{kb(t.bytes)}, {t.messages} msgs, {t.per_second:.0f} msg/s",
                    f"before: {BEFORE[(n, pace)]:.1f}×; " + baseline,
                    t.bytes / size, TARGETS[n], 2.0,
                    note=f"text {kb(size)}; floor 2× (live and final); " + pace_note(t),
                ))
    return figures
