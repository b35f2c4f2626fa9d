"""ConsoleHandler keeps concurrent streams (for_each, parallel) from interleaving on stdout."""

from __future__ import annotations

import io
import re

import pipeline_nb
from pipeline_nb._engine import RunOptions, execute
from pipeline_nb._loader import load_spec
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


class Terminal:
    """stdout and stderr on one screen, as a terminal shows them; ``stdout`` is stdout alone."""

    def __init__(self) -> None:
        self.screen, self.stdout = io.StringIO(), io.StringIO()

    def write(self, text: str) -> int:
        self.stdout.write(text)
        return self.screen.write(text)

    def flush(self) -> None:
        pass


FAN_OUT = """
name: fan_out
defaults: {stream: true, mock_delay: 0.002}
steps:
  - id: both
    type: parallel
    steps:
      - id: x
        prompt: "Tell me about x in a few more words than usual"
      - id: y
        prompt: "Tell me about y in a few more words than usual"
  - id: fan
    for_each: "['alpha', 'beta', 'gamma', 'delta']"
    max_parallel: 4
    prompt: "Tell me about {{ item }}"
"""
PROGRESS = re.compile(r"\[fan: \d+ of 4\]\n")
MODEL = "claude-sonnet-5-5"


def test_parallel_children_and_items_each_come_whole_under_their_own_header() -> None:
    terminal = Terminal()
    console = ConsoleHandler(terminal, terminal.screen)
    console.PROGRESS_EVERY = 0  # every progress note is written (the throttle is timed)
    run = execute(load_spec(FAN_OUT), RunOptions(handlers=[console]))
    assert run.status == "ok"
    screen = terminal.screen.getvalue()

    notes = [m.start() for m in PROGRESS.finditer(screen)]
    assert notes and all(screen[at - 1] == "\n" for at in notes)  # each on a line of its own
    assert "[fan: 4 of 4]\n" in screen  # a note waiting for a line's end gives way to a newer one
    screen = PROGRESS.sub("", screen)  # a note may sit between two lines of an item's text
    texts = {"x": run.steps["x"].text, "y": run.steps["y"].text,
             **{item.id: item.text for item in run.steps["fan"].items or []}}
    for step_id, text in texts.items():
        model = f" ({MODEL})" if step_id in ("x", "y") else ""
        assert screen.count(f"── {step_id}{model} ──\n") == 1
        assert f"── {step_id}{model} ──\n{text}\n" in screen  # the header, then the whole text
    first, second = sorted("xy", key=lambda child: screen.index(f"── {child} "))  # the first to start leads
    assert screen.startswith(f"── both ──\n── {first} ({MODEL}) ──\n{texts[first]}\n── {second} ({MODEL}) ──\n")

    written = terminal.stdout.getvalue()  # | tee: every text once, each ending its line
    assert sorted(written.split("\n")) == sorted("\n".join(texts.values()).split("\n") + [""])
    assert len(written) == sum(len(t) + 1 for t in texts.values())
