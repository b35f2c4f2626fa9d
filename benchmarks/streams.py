"""Many streams at once: a for_each of 200 streamed items at ``max_parallel: 200``, each reply
400 deltas at 12.5 ms (80 tokens a second; 16,000 deltas a second in all), in a ``%%pipeline``
cell, against the same 200 calls through the bare SDK on 200 threads in the same kernel.

Figures: the fan-out's wall time over one call's (the ideal: all 200 at once take as long as
one), and the kernel's CPU time per delta, pipeline_nb against the bare SDK loop (whose own
event parsing is the floor both share). Also printed: the view's messages a second.
"""

from __future__ import annotations

from ._common import FakeServer, Kernel, median, spread
from ._report import Figure

PROMPT = "[streams]"


def _cells(items: int, deltas: int) -> tuple[str, str, str]:
    pipeline = f'''%%pipeline --provider claude
steps:
  - id: fan
    for_each: "{{{{ range({items}) | list }}}}"
    max_parallel: {items}
    prompt: "{PROMPT} item {{{{ item }}}}"
    stream: true
'''
    one = f'''import anthropic
_client = anthropic.Anthropic(max_retries=0)
with _client.messages.stream(model="claude-sonnet-5-5", max_tokens=1024,
                             messages=[{{"role": "user", "content": "{PROMPT} item 0"}}]) as _s:
    _text = "".join(_s.text_stream)
'''
    threads = f'''import anthropic, threading
_client = anthropic.Anthropic(max_retries=0, http_client=anthropic.DefaultHttpxClient(
    limits=__import__("httpx").Limits(max_connections={items}, max_keepalive_connections={items})))
_texts = [None] * {items}
def _one(i):
    with _client.messages.stream(model="claude-sonnet-5-5", max_tokens=1024,
                                 messages=[{{"role": "user", "content": f"{PROMPT} item {{i}}"}}]) as s:
        _texts[i] = "".join(s.text_stream)
_threads = [threading.Thread(target=_one, args=(i,)) for i in range({items})]
for _t in _threads: _t.start()
for _t in _threads: _t.join()
assert all(_texts), "a bare SDK stream failed"
'''
    return pipeline, one, threads


def run(repeat: int = 5, quick: bool = False) -> list[Figure]:
    items, deltas, pace = (40, 100, 0.0125) if quick else (200, 400, 0.0125)
    repeat = 1 if quick else max(2, repeat // 3)
    pipeline, one, threads = _cells(items, deltas)
    total = items * deltas
    print(f"streams: {items} streamed items at once, {deltas} deltas each at {pace * 1000:g} ms "
          f"({total / (deltas * pace):,.0f} deltas a second in all; {repeat} runs of each)", flush=True)
    check = f"assert _pipeline.ok and len(_pipeline.steps['fan'].output) == {items}, _pipeline"
    with FakeServer([{"when": PROMPT, "deltas": deltas, "delay": pace}]) as fake, Kernel(fake.base_url) as kernel:
        kernel.check("%load_ext pipeline_nb")
        kernel.check(one)
        alone, fan, bare = [], [], []
        for _ in range(repeat):
            alone.append(kernel.check(one))
            fan.append(kernel.check(pipeline))
            kernel.check(check)
            bare.append(kernel.check(threads))
    ideal = median([t.cell_seconds for t in alone])
    fan_s, bare_s = median([t.cell_seconds for t in fan]), median([t.cell_seconds for t in bare])
    cpu = median([t.cpu_seconds for t in fan]) / total * 1e6
    bare_cpu = median([t.cpu_seconds for t in bare]) / total * 1e6
    rate = median([t.per_second for t in fan])
    print(f"  one call alone: {ideal:.2f} s; %%pipeline: {fan_s:.2f} s ({spread([t.cell_seconds for t in fan])}) "
          f"= {fan_s / ideal:.2f}× ideal; bare SDK threads: {bare_s:.2f} s = {bare_s / ideal:.2f}× ideal", flush=True)
    print(f"  kernel CPU per delta: pipeline_nb {cpu:.0f} µs, bare SDK {bare_cpu:.0f} µs = {cpu / bare_cpu:.2f}×; "
          f"view {rate:.1f} messages a second", flush=True)
    return [
        Figure(f"streams, {items} at once (wall ÷ one call)", f"{fan_s:.2f} s",
               f"one call {ideal:.2f} s; bare SDK, {items} threads {bare_s:.2f} s", fan_s / ideal, 1.2, 1.1,
               note=f"median of {repeat}; the view sent {rate:.1f} messages a second (budget 25)"),
        Figure(f"streams, CPU per delta ({total:,} deltas)", f"{cpu:.0f} µs", f"bare SDK loop {bare_cpu:.0f} µs",
               cpu / bare_cpu, 1.5, 1.2, note="the kernel process's CPU time over the cell, every thread"),
    ]
