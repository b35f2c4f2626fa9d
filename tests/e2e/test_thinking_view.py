"""What a user sees of Claude's thinking and citations in JupyterLab: the thinking pane
streaming, then folding once the answer begins; numbered citations and their sources in the
saved notebook, reopened with no kernel, and in an untrusted copy of it (sanitized HTML).

A real server, a real kernel and headless Chromium (see conftest.py); the pipelines talk to
FakeAnthropic (the real SDK, real SSE) in the kernel, never to the real API.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from test_live_view import MARKER, MARKER_CODE, assert_no_broken_widget, final_rendering

pytestmark = pytest.mark.timeout(180)

THOUGHT = (
    "The reader asks about tides, so start from gravity. The Moon pulls hardest on the near side of "
    "the ocean and least on the far side, and that difference stretches the water into two bulges. "
    "The Earth turns under both bulges once a day, which gives two highs and two lows. The Sun adds "
    "its own smaller pull: aligned with the Moon it makes spring tides, at right angles neap tides. "
    "Keep it short and concrete, and mention one famous bay."
)
ANSWER = (
    "Tides come from the Moon's gravity stretching the oceans into two bulges. As the Earth turns "
    "through them, most coasts get two high and two low tides a day. When the Sun lines up with the "
    "Moon the range grows, and funnel-shaped bays like Fundy make it larger still."
)
NOTES = (
    "# Harbour notes\n\n"
    "High water comes twice a day here. The Moon pulls the ocean into two bulges, and the Earth "
    "turns through them.\n\nSpring tides follow the new and full moon.\n"
)
CITED_SPAN = "Tides come from the Moon's gravity stretching the oceans into two bulges."
QUOTE = "The Moon pulls the ocean into two bulges"


def claude_setup(delay: float, *, notes: bool = False) -> str:
    """A setup cell: step a's reply thinks first, then answers (citing notes.md with ``notes``)."""
    cite = f", cite=[({CITED_SPAN!r}, {QUOTE!r})]" if notes else ""
    write_notes = f"from pathlib import Path\nPath('notes.md').write_text({NOTES!r})\n" if notes else ""
    return (
        "%load_ext pipeline_nb\n"
        "import os\n"
        "from pipeline_nb.testing import FakeAnthropic\n"
        f"{write_notes}"
        "fake = FakeAnthropic().start()\n"
        f"fake.reply({ANSWER!r}, thinking={THOUGHT!r}, when='tides', delay={delay}{cite})\n"
        "os.environ['ANTHROPIC_BASE_URL'], os.environ['ANTHROPIC_API_KEY'] = fake.base_url, 'sk-ant-fake'\n"
        "topic = 'tides'"
    )


def thinking_pipeline(*, cited: bool = False) -> str:
    attach = "\n    attachments: [{file: notes.md, citations: true}]" if cited else ""
    return f"""%%pipeline res
name: pondering
defaults: {{provider: claude, model: claude-sonnet-5-5, max_tokens: 4096}}
steps:
  - id: a
    prompt: "Explain {{{{ topic }}}} from the notes."
    thinking: true
    stream: true{attach}
"""


PRINT_STEP_A = (f"import json\ns = res.steps['a']\nprint({MARKER_CODE}, json.dumps({{'thinking': s.thinking, "
                f"'text': s.text, 'citations': len(s.citations)}}))")

# Records, from the DOM, each distinct state of step a's pane (thinking length, open or not,
# answer length, answer box shown) and the last thinking text, at every mutation: the live
# view applies a message in one go, so each record is a state the reader could have seen.
RECORDER = """() => {
  const log = window.__pnbThinking = {states: [], thinking: null, cites: [], citedPassage: null};
  const snap = () => {
    const pane = document.querySelector('.pnb-live .pnb-pane[data-step="a"]');
    const box = pane && pane.querySelector('details.pnb-thinking');
    if (!box) return;
    const answer = pane.querySelector('.pnb-text');
    const state = {thinking: box.querySelector('.pnb-thinking-text').textContent.length, open: box.open,
                   answer: answer.textContent.length, shown: answer.offsetHeight > 0};
    const last = log.states[log.states.length - 1];
    if (!last || Object.keys(state).some((k) => state[k] !== last[k])) log.states.push(state);
    log.thinking = box.querySelector('.pnb-thinking-text').textContent;
    const marks = [...answer.querySelectorAll('sup.pnb-cite')];
    log.cites = marks.map((s) => ({n: s.dataset.n, title: s.title}));
    let before = '';  // the answer's text up to the first mark: the passage it follows
    if (marks.length) for (let n = answer.firstChild; n && n !== marks[0]; n = n.nextSibling) before += n.textContent;
    log.citedPassage = before;
  };
  new MutationObserver(snap).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
}"""


def sample_thinking(nb, cell: int) -> dict | None:
    """Step a's pane now: its thinking (text, open), its answer text; None once the view retired."""
    return nb.page.evaluate("""(cell) => {
      const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell].querySelector('.jp-OutputArea');
      const live = out.querySelector('.pnb-live');
      if (!live) return null;
      const pane = live.querySelector('.pnb-pane[data-step="a"]');
      const box = pane && pane.querySelector('details.pnb-thinking');
      const answer = pane && pane.querySelector('.pnb-text');
      return {thinking: box ? box.querySelector('.pnb-thinking-text').textContent : null,
              open: box ? box.open : null, answer: answer ? answer.textContent : '',
              above: !!box && box.nextElementSibling === answer, outputText: out.innerText};
    }""", cell)


def rendered_step(nb, cell: int) -> dict:
    """Step a in the final rendering: its thinking details, answer, citation marks and sources."""
    return nb.page.evaluate("""(cell) => {
      const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell].querySelector('.jp-OutputArea');
      const step = out.querySelector('.pnb-run .pnb-step');
      const box = step.querySelector('details.pnb-thinking');
      const answer = step.querySelector('.pnb-answer');
      const mark = answer.querySelector('sup.pnb-cite');
      let before = '';  // the answer's text up to the mark: the passage it follows
      if (mark) for (let n = answer.firstChild; n && n !== mark; n = n.nextSibling) before += n.textContent;
      return {
        thinking: box ? {open: box.open, text: box.querySelector('div').textContent,
                         summary: box.querySelector('summary').textContent} : null,
        answer: answer.textContent,
        marks: [...answer.querySelectorAll('sup.pnb-cite')].map((s) => ({n: s.dataset.n || null,
                                                                       text: s.textContent, title: s.title})),
        before,
        sources: [...step.querySelectorAll('.pnb-sources .pnb-source')].map((s) => ({n: s.dataset.n || null,
                                                                                   text: s.textContent})),
      };
    }""", cell)


def test_thinking_streams_then_folds(open_notebook, artifacts):
    nb = open_notebook("thinking.ipynb", [claude_setup(0.04), thinking_pipeline(), PRINT_STEP_A])
    nb.hide_sidebar()
    nb.run_and_wait(0)
    nb.page.evaluate(RECORDER)
    nb.run(1)
    nb.page.locator(".pnb-live").wait_for()

    samples, thinking_shot, folded_shot = [], None, None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = sample_thinking(nb, 1)
        if now is None:
            break
        assert_no_broken_widget(now["outputText"])
        if now["thinking"] is not None:
            samples.append(now)
            assert now["above"], "the thinking is not right above the answer in step a's pane"
            if thinking_shot is None and now["open"] and len(now["thinking"]) > 120:
                thinking_shot = nb.cell(1).screenshot(path=str(artifacts / "thinking-streaming.png"))
            if folded_shot is None and len(now["answer"]) > 80:
                folded_shot = nb.cell(1).screenshot(path=str(artifacts / "thinking-folded.png"))
        time.sleep(0.15)
    nb.wait_done(1)
    assert thinking_shot is not None and folded_shot is not None, samples

    # While Claude thinks: the pane is open and its text grows, sample after sample.
    pondering = [s for s in samples if not s["answer"]]
    assert all(s["open"] for s in pondering), [(len(s["thinking"]), s["open"]) for s in pondering]
    lengths = [len(s["thinking"]) for s in pondering]
    growing = [n for n, before in zip(lengths[1:], lengths) if n > before]
    assert len(growing) >= 2 and len(set(lengths)) >= 3, f"thinking lengths while pondering: {lengths}"
    # Once the answer streams, the thinking is folded, and the answer grows.
    answering = [s for s in samples if s["answer"]]
    assert all(s["open"] is False for s in answering), [(len(s["answer"]), s["open"]) for s in answering]
    answer_lengths = [len(s["answer"]) for s in answering]
    assert len(set(answer_lengths)) >= 3, f"answer lengths: {answer_lengths}"

    # Every state the DOM went through, not only the sampled ones: open with no answer, folded with one.
    log = nb.page.evaluate("window.__pnbThinking")
    states = log["states"]
    assert states and states[0]["open"] and states[0]["answer"] == 0, states[:3]
    assert all(s["open"] == (s["answer"] == 0) for s in states), states
    assert not any(s["shown"] for s in states if s["answer"] == 0), "the empty answer box showed while thinking"

    nb.run_and_wait(2)
    kernel = nb.printed_json(2, MARKER)
    assert kernel == {"thinking": THOUGHT, "text": ANSWER, "citations": 0}
    assert log["thinking"] == kernel["thinking"], "the live thinking pane ended with other text"
    for s in samples:  # nothing lost, doubled or reordered on the way
        assert kernel["thinking"].startswith(s["thinking"]) and kernel["text"].startswith(s["answer"])

    # The view retires; the final rendering keeps the thinking, folded, above the answer.
    assert final_rendering(nb, 1) == {"a": ANSWER}
    shown = rendered_step(nb, 1)
    assert shown["thinking"] == {"open": False, "text": THOUGHT, "summary": "thinking"}, shown["thinking"]
    assert_no_broken_widget(nb.output(1).inner_text())
    nb.output(1).scroll_into_view_if_needed()
    nb.screenshot("thinking-final-rendering.png")


@pytest.mark.parametrize("save_state", [False, True], ids=["saveState-off", "saveState-on"])
def test_citations_readable_when_reopened_without_kernel(open_notebook, lab, artifacts, save_state):
    name = f"cited-{'on' if save_state else 'off'}.ipynb"
    lab.set_widget_save_state(save_state)
    try:
        cited_saved_and_reopened(open_notebook, lab, artifacts, name, save_state)
    finally:
        lab.set_widget_save_state(False)  # JupyterLab's default, for the tests after this one


def assert_cited(shown: dict, *, trusted: bool = True) -> None:
    """Step a's final rendering: mark [1] after the cited sentence, its source, the folded thinking.

    An untrusted notebook's HTML is sanitized, which drops ``data-*`` attributes: there the
    marks and sources are checked by their text alone."""
    n = "1" if trusted else None
    assert shown["answer"] == ANSWER.replace(CITED_SPAN, CITED_SPAN + "[1]"), shown["answer"]
    assert shown["before"] == CITED_SPAN, "mark [1] is not right after the sentence it cites"
    assert [(m["n"], m["text"]) for m in shown["marks"]] == [(n, "[1]")], shown["marks"]
    assert QUOTE in shown["marks"][0]["title"] and "notes.md" in shown["marks"][0]["title"], shown["marks"]
    assert [s["n"] for s in shown["sources"]] == [n], shown["sources"]
    source = shown["sources"][0]["text"]
    assert source.startswith("[1] ") and QUOTE in source and "notes.md" in source, source
    assert shown["thinking"] == {"open": False, "text": THOUGHT, "summary": "thinking"}, shown["thinking"]


def cited_saved_and_reopened(open_notebook, lab, artifacts: Path, name: str, save_state: bool) -> None:
    nb = open_notebook(name, [claude_setup(0.02, notes=True), thinking_pipeline(cited=True), PRINT_STEP_A])
    nb.hide_sidebar()
    nb.run_and_wait(0)
    nb.page.evaluate(RECORDER)
    nb.run(1)
    # The live view marks the cited passage as it streams, its source as the tooltip.
    nb.page.locator('.pnb-live .pnb-pane[data-step="a"] .pnb-text sup.pnb-cite').wait_for()
    nb.cell(1).screenshot(path=str(artifacts / f"cited-live-saveState-{'on' if save_state else 'off'}.png"))
    nb.wait_done(1)
    nb.run_and_wait(2)
    assert nb.printed_json(2, MARKER) == {"thinking": THOUGHT, "text": ANSWER, "citations": 1}
    log = nb.page.evaluate("window.__pnbThinking")
    assert [c["n"] for c in log["cites"]] == ["1"] and QUOTE in log["cites"][0]["title"], log["cites"]
    assert log["citedPassage"] == CITED_SPAN, log["citedPassage"]
    assert_cited(rendered_step(nb, 1))
    nb.save()

    deadline = time.monotonic() + 20
    while not (saved := lab.read_notebook(name))["cells"][2]["outputs"]:
        assert time.monotonic() < deadline, "Ctrl+S did not save the outputs"
        time.sleep(0.2)
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for o in saved["cells"][1]["outputs"])
    for mark in (r'<sup class="pnb-cite"[^>]* data-n="1"', r'<div class="pnb-source"[^>]* data-n="1"'):
        assert re.search(mark, html), f"no {mark} in the saved HTML: {html[:500]}"
    widget_state = saved["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    assert (widget_state is not None) == save_state, saved["metadata"]

    nb.page.context.close()
    lab.shutdown_kernels()
    reopened = open_notebook(name, kernel=False)
    reopened.page.locator(".pnb-run").wait_for()
    assert lab.api("GET", "/api/kernels") == []
    assert_cited(rendered_step(reopened, 1))
    assert_no_broken_widget(reopened.output(1).inner_text())
    thinking = reopened.output(1).locator("details.pnb-thinking")
    thinking.locator("summary").click()  # the reader unfolds it: the thinking is there to read
    assert thinking.evaluate("box => box.open")
    assert thinking.locator("div").inner_text().strip() == THOUGHT
    reopened.output(1).scroll_into_view_if_needed()
    reopened.screenshot(f"cited-reopened-saveState-{'on' if save_state else 'off'}.png")

    # Someone else opens it: a changed notebook no longer matches its signature, so it is
    # untrusted and its HTML sanitized. The citations must still read right.
    reopened.page.context.close()
    saved["metadata"]["shared_with"] = "a colleague"
    untrusted = f"untrusted-{name}"
    (lab.root / untrusted).write_text(json.dumps(saved))
    other = open_notebook(untrusted, kernel=False)
    other.page.locator(".pnb-run").wait_for()
    assert_cited(rendered_step(other, 1), trusted=False)
    assert_no_broken_widget(other.output(1).inner_text())
    other.output(1).scroll_into_view_if_needed()
    other.screenshot(f"cited-untrusted-saveState-{'on' if save_state else 'off'}.png")
