"""A large job through a rate-limited API: a for_each of 1,000 items at ``max_parallel: 50``
against FakeAnthropic allowing 20 requests a second, so the floor is 50 s (items ÷ rate).

pipeline_nb's shared, adaptive limiter is measured against today's behaviour without it
(``PIPELINE_NB_RATE_LIMITER=off``: each item retries its 429s on its own, with capped
backoff) in the same run: failed items and wall time over the floor.
"""

from __future__ import annotations

import os
import time

from ._report import Figure

RATE = 20


def _run(items: int, limiter: bool) -> tuple[float, int]:
    import pipeline_nb
    from pipeline_nb import _rate_limit
    from pipeline_nb.testing import FakeAnthropic

    _rate_limit._LIMITERS.clear()
    os.environ["PIPELINE_NB_RATE_LIMITER"] = "on" if limiter else "off"
    with FakeAnthropic() as fake:
        fake.reply("ok")
        fake.rate_limit(requests_per_second=RATE)
        os.environ["ANTHROPIC_BASE_URL"], os.environ["ANTHROPIC_API_KEY"] = fake.base_url, "sk-ant-bench"
        started = time.monotonic()
        run = pipeline_nb.run(f'''
defaults: {{provider: claude, retries: 2}}
steps:
  - id: fan
    for_each: "{{{{ range({items}) | list }}}}"
    max_parallel: 50
    prompt: "item {{{{ item }}}}"
''', raise_on_error=False)
        elapsed = time.monotonic() - started
    failed = sum(item.status != "ok" for item in run.steps["fan"].items)
    return elapsed, failed


def run(repeat: int = 5, quick: bool = False) -> list[Figure]:
    items = 100 if quick else 1000
    floor = items / RATE
    print(f"rate limits: a for_each of {items} items at max_parallel 50 against {RATE} requests a second "
          f"(floor {floor:.0f} s)", flush=True)
    saved = {k: os.environ.get(k) for k in ("PIPELINE_NB_RATE_LIMITER", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")}
    try:
        without, failed_without = _run(items, limiter=False)
        print(f"  without the limiter (each item retries alone): {without:.1f} s, {failed_without} failed",
              flush=True)
        with_limiter, failed = _run(items, limiter=True)
        print(f"  with the shared limiter: {with_limiter:.1f} s = {with_limiter / floor:.2f}× the floor, "
              f"{failed} failed", flush=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return [Figure(f"rate limits, {items} items at {RATE}/s (wall ÷ floor)",
                   f"{with_limiter:.1f} s, {failed} failed",
                   f"no limiter: {without:.1f} s, {failed_without} failed; floor {floor:.0f} s",
                   with_limiter / floor if not failed else float("inf"), 1.15, 1.05,
                   note="0 failed items is part of the target")]
