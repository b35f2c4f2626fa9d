"""Figure 6, cassette: a for_each of 4,000 items on the mock provider (no delay), recorded to
a new cassette, against the same run without one, side by side in this process, alternating.

Recording appends one line per reply and sorts the file once at the end, so it should cost
a small constant factor; rewriting the whole file for every reply made it quadratic (82 s
against 0.8 s). Also printed: replaying the recorded cassette.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pipeline_nb

from ._common import median, spread
from ._report import Figure

ITEMS = 4_000
SPEC = """
steps:
  - id: many
    for_each: "range({items})"
    prompt: "item {{{{ item }}}} of a long list"
    mock_delay: 0
"""


def _timed(spec: str, items: int, **options: object) -> float:
    started = time.perf_counter()
    run = pipeline_nb.run(spec, **options)
    seconds = time.perf_counter() - started
    assert run.ok and len(run.steps["many"].output) == items, run
    return seconds


def run(repeat: int = 5, quick: bool = False) -> list[Figure]:
    items = 500 if quick else ITEMS
    spec = SPEC.format(items=items)
    print(f"cassette: a for_each of {items} items on the mock provider, recorded vs no cassette, "
          f"{repeat} alternating pairs", flush=True)
    plain, recorded, replayed = [], [], []
    with tempfile.TemporaryDirectory(prefix="pnb-bench-cassette-") as folder:
        _timed(spec, items)  # warm up: imports, template compilation
        for i in range(repeat):
            cassette = Path(folder) / f"c{i}.jsonl"
            for record in (False, True) if i % 2 == 0 else (True, False):  # alternate which goes first
                if record:
                    recorded.append(_timed(spec, items, cassette=cassette, cassette_mode="record"))
                else:
                    plain.append(_timed(spec, items))
            lines = cassette.read_bytes().count(b"\n")
            assert lines == items, f"the cassette holds {lines} entries, not {items}"
            replayed.append(_timed(spec, items, cassette=cassette, cassette_mode="replay"))
        size = cassette.stat().st_size
    ratio = median(recorded) / median(plain)
    print(f"  no cassette: {median(plain):.2f} s ({spread(plain)})", flush=True)
    print(f"  recording:   {median(recorded):.2f} s ({spread(recorded)}) = {ratio:.2f}×; "
          f"{size / 1024 / 1024:.1f} MB cassette", flush=True)
    print(f"  replaying:   {median(replayed):.2f} s ({spread(replayed)}) = "
          f"{median(replayed) / median(plain):.2f}×", flush=True)
    return [Figure(
        f"cassette, recording a {items}-item for_each (÷ no cassette)",
        f"{median(recorded):.2f} s", f"no cassette {median(plain):.2f} s",
        ratio, 2.0, 1.5,
        note=f"median of {repeat} pairs; replaying it {median(replayed):.2f} s",
    )]
