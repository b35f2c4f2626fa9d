"""ConsoleHandler keeps concurrent streams (for_each, parallel) from interleaving on stdout."""

from __future__ import annotations

import io

import pipeline_nb
from pipeline_nb.streaming import ConsoleHandler


def test_concurrent_items_are_written_whole_one_after_another():
    out, err = io.StringIO(), io.StringIO()
    run = pipeline_nb.run(
        """
steps:
  - id: fan
    for_each: "['alpha', 'beta', 'gamma', 'delta']"
    max_parallel: 4
    prompt: "Tell me about {{ item }} in a few more words than usual"
    stream: true
    mock_delay: 0.002
""",
        on_event=ConsoleHandler(out, err),
    )
    texts = [item.text for item in run.steps["fan"].items]
    written = out.getvalue()
    for text in texts:
        assert text in written  # each item's text is contiguous: nothing interleaved
    assert len(written) == sum(len(t) + 1 for t in texts)  # and each once, ending its line
