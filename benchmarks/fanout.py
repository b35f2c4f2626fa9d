"""Figure 3, fan-out: a for_each of 60 items at ``max_parallel: 20`` in a ``%%pipeline`` cell,
against the fake API pacing every delta at 20 ms, compared with the ideal: 3 waves of one
call's time, one call measured alone in the same kernel through the bare SDK.

Also printed: 60 bare SDK calls on 20 threads, the same fan-out without pipeline_nb, which
shows what the machine and the fake API allow.
"""

from __future__ import annotations

from ._common import FakeServer, Kernel, median, spread
from ._report import Figure

ITEMS, PARALLEL, DELTAS, PACE = 60, 20, 50, 0.02
PROMPT = "[fanout]"
PIPELINE = f'''%%pipeline --provider claude
steps:
  - id: fan
    for_each: "{{{{ range({ITEMS}) | list }}}}"
    max_parallel: {PARALLEL}
    prompt: "{PROMPT} item {{{{ item }}}}"
    stream: true
'''
ONE = f'''import anthropic
_client = anthropic.Anthropic(max_retries=0)
with _client.messages.stream(model="claude-sonnet-5-5", max_tokens=1024,
                             messages=[{{"role": "user", "content": "{PROMPT} item 0"}}]) as _s:
    _text = "".join(_s.text_stream)
'''
THREADS = f'''import anthropic
from concurrent.futures import ThreadPoolExecutor
_client = anthropic.Anthropic(max_retries=0)
def _one(i):
    with _client.messages.stream(model="claude-sonnet-5-5", max_tokens=1024,
                                 messages=[{{"role": "user", "content": f"{PROMPT} item {{i}}"}}]) as s:
        return "".join(s.text_stream)
with ThreadPoolExecutor({PARALLEL}) as _pool:
    _texts = list(_pool.map(_one, range({ITEMS})))
'''
CHECK = f"assert _pipeline.ok and len(_pipeline.steps['fan'].output) == {ITEMS}, _pipeline"


def run(repeat: int = 5, quick: bool = False) -> list[Figure]:
    repeat = max(2, repeat // 2)
    print(f"fan-out: for_each over {ITEMS} items at max_parallel {PARALLEL}, {DELTAS} deltas each at "
          f"{PACE * 1000:g} ms ({repeat} runs of each)", flush=True)
    with FakeServer([{"when": PROMPT, "deltas": DELTAS, "delay": PACE}]) as fake, Kernel(fake.base_url) as kernel:
        kernel.check("%load_ext pipeline_nb")
        kernel.check(ONE)
        kernel.check(PIPELINE)
        one, fan, threads = [], [], []
        for _ in range(repeat):
            one.append(kernel.check(ONE).seconds)
            fan.append(kernel.check(PIPELINE).seconds)
            kernel.check(CHECK)
            threads.append(kernel.check(THREADS).seconds)
    ideal = 3 * median(one)
    print(f"  one call alone: {median(one):.3f} s ({spread(one)}), so 3 waves = {ideal:.2f} s", flush=True)
    print(f"  %%pipeline for_each: {median(fan):.2f} s ({spread(fan)}) = {median(fan) / ideal:.3f}× ideal",
          flush=True)
    print(f"  bare SDK on {PARALLEL} threads: {median(threads):.2f} s ({spread(threads)}) = "
          f"{median(threads) / ideal:.3f}× ideal", flush=True)
    return [Figure(
        f"fan-out, {ITEMS} items at {PARALLEL} (÷ 3 waves of one call)",
        f"{median(fan):.2f} s", f"one call {median(one):.2f} s; bare SDK, {PARALLEL} threads {median(threads):.2f} s",
        median(fan) / ideal, 1.5, 1.2,
        note=f"median of {repeat}; bare SDK threads {median(threads) / ideal:.2f}× ideal",
    )]
