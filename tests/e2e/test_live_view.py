"""What a user sees in JupyterLab: the live view streaming, the saved notebook, an interrupt, a broken cell.

A real server, a real kernel (this venv's Python) and headless Chromium; see conftest.py.
The pipelines run offline on the mock provider, slowed down with ``mock_delay``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

# Built in the kernel, never written literally, so a locator never finds it in the editor.
MARKER_CODE = '"E2E" + "-RESULT"'
MARKER = "E2E-RESULT"
BAD_FRONTEND_TEXT = ("Loading widget", "Error displaying widget", "LiveView(", "Output()", "model not found")

TIDES = (
    "Tides are the slow rise and fall of the sea, driven mostly by the Moon's gravity and, to a lesser "
    "extent, the Sun's.\n\n"
    "The Moon pulls hardest on the ocean nearest to it, raising a bulge; a second bulge forms on the far "
    "side, where the Earth is pulled away from the water. As the Earth turns under these bulges, most "
    "coasts see two high tides and two low tides a day, about 12 hours and 25 minutes apart.\n\n"
    "When the Sun and Moon line up, at new and full moon, their pulls add up to spring tides with the "
    "largest range. At the quarter moons they partly cancel, giving the gentler neap tides.\n\n"
    "Coastlines shape what arrives. Funnel-shaped bays such as the Bay of Fundy amplify the range to more "
    "than 15 metres, while enclosed seas like the Mediterranean barely notice the tide at all.\n\n"
    "Some rivers meet the incoming tide as a single travelling wave, a tidal bore, which surfers ride "
    "for kilometres upstream on the Severn and the Qiantang.\n\n"
    "Because the Moon rises about 50 minutes later each day, so do the tides: tide tables are "
    "predictions built from these cycles, accurate to minutes years ahead."
)
SHORT = ("The Moon's pull raises two bulges in the ocean; as the Earth turns through them, most coasts get "
         "two high and two low tides a day, strongest when Sun and Moon align.")
README_PIPELINE = """%%pipeline res
name: tides_review
defaults: {provider: claude, model: claude-sonnet-5-5, max_tokens: 1024}
steps:
  - id: a
    prompt: "Explain {{ topic }}."
    stream: true
  - id: b
    prompt: "Shorten: {{ steps.a.text }}"
    stream: true
    save_as: short
"""


def fake_claude_setup(delay_a: float, delay_b: float) -> str:
    """A setup cell: the README's pipeline talks to FakeAnthropic (real SDK, real SSE), never the real API."""
    return (
        "%load_ext pipeline_nb\n"
        "import os\n"
        "from pipeline_nb.testing import FakeAnthropic\n"
        "fake = FakeAnthropic().start()\n"
        f"fake.reply({TIDES!r}, when='Explain tides', delay={delay_a})\n"
        f"fake.reply({SHORT!r}, when='Shorten:', delay={delay_b})\n"
        "os.environ['ANTHROPIC_BASE_URL'], os.environ['ANTHROPIC_API_KEY'] = fake.base_url, 'sk-ant-fake'\n"
        "topic = 'tides'"
    )


def indent(text: str, by: int) -> str:
    return "\n".join(" " * by + line if line else "" for line in text.splitlines())


def tides_pipeline(delay_a: float, delay_b: float, name: str = "res") -> str:
    return f"""%%pipeline {name}
name: tides_review
defaults: {{provider: mock, model: claude-sonnet-5-5}}
steps:
  - id: a
    prompt: "Explain {{{{ topic }}}}."
    stream: true
    mock_delay: {delay_a}
    mock_response: |-
{indent(TIDES, 6)}
  - id: b
    prompt: "Shorten: {{{{ steps.a.text }}}}"
    stream: true
    save_as: short
    mock_delay: {delay_b}
    mock_response: "{SHORT}"
"""


SETUP = '%load_ext pipeline_nb\ntopic = "tides"'
PRINT_TEXTS = f"import json\nprint({MARKER_CODE}, json.dumps({{k: s.text for k, s in res.steps.items()}}))"
PRINT_STEPS = (f"import json\nprint({MARKER_CODE}, json.dumps({{k: {{'status': s.status, 'text': s.text}} "
               f"for k, s in res.steps.items()}}))")

# Records, from the DOM, every status each row shows and the last text each pane holds, so the
# test sees states shorter than any polling interval (the view retires right after the run ends).
RECORDER = """() => {
  const log = window.__pnb = {status: {}, text: {}};
  const snap = () => {
    for (const row of document.querySelectorAll('.pnb-live .pnb-row')) {
      const seq = log.status[row.dataset.step] ||= [];
      if (seq[seq.length - 1] !== row.dataset.status) seq.push(row.dataset.status);
    }
    for (const pane of document.querySelectorAll('.pnb-live .pnb-pane')) {
      log.text[pane.dataset.step] = pane.querySelector('.pnb-text').textContent;
    }
  };
  new MutationObserver(snap).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
}"""


def sample(nb, cell: int) -> dict | None:
    """The live view now: each row's status, each pane's text and scroll position; None once retired."""
    return nb.page.evaluate("""(cell) => {
      const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell].querySelector('.jp-OutputArea');
      const live = out.querySelector('.pnb-live');
      if (!live) return null;
      const rows = {}, texts = {}, scroll = {};
      for (const r of live.querySelectorAll('.pnb-row')) rows[r.dataset.step] = r.dataset.status;
      for (const p of live.querySelectorAll('.pnb-pane')) {
        const body = p.querySelector('.pnb-text');
        texts[p.dataset.step] = body.textContent;
        if (p.open) scroll[p.dataset.step] = {overflow: body.scrollHeight - body.clientHeight,
                                              below: body.scrollHeight - body.scrollTop - body.clientHeight};
      }
      return {rows, texts, scroll, visible: live.offsetHeight > 0, outputText: out.innerText};
    }""", cell)


def assert_no_broken_widget(text: str) -> None:
    for bad in BAD_FRONTEND_TEXT:
        assert bad not in text, f"{bad!r} is on screen: {text[:300]!r}"


def final_rendering(nb, cell: int) -> dict[str, str]:
    """The plain final rendering's step texts, by step id, as shown on screen."""
    return nb.page.evaluate("""(cell) => {
      const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell].querySelector('.jp-OutputArea');
      const texts = {};
      for (const step of out.querySelectorAll('.pnb-run .pnb-step')) {
        const id = step.firstElementChild.textContent.trim().split(/\\s+/)[1];
        const body = step.querySelector('.pnb-answer');
        texts[id] = body ? body.textContent : '';
      }
      return texts;
    }""", cell)


def test_streams_on_screen(open_notebook, artifacts):
    nb = open_notebook("streams.ipynb", [fake_claude_setup(0.01, 0.08), README_PIPELINE, PRINT_TEXTS])
    nb.hide_sidebar()
    nb.run_and_wait(0)
    nb.page.evaluate(RECORDER)
    nb.run(1)
    nb.page.locator(".pnb-live").wait_for()

    samples, shot, scrolled = [], None, None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = sample(nb, 1)
        if now is None:
            break
        assert now["visible"], "the live view is in the DOM but not visible"
        assert_no_broken_widget(now["outputText"])
        assert "[tides_review: live view]" not in now["outputText"], "text/plain shown instead of the widget"
        samples.append(now)
        if not scrolled and now["scroll"].get("a", {}).get("overflow", 0) > 0:
            scrolled = nb.cell(1).screenshot(path=str(artifacts / "live-view-scrolling.png"))
        if shot is None and now["rows"].get("a") == "ok" and len(now["texts"].get("b", "")) > 60:
            shot = nb.screenshot("live-view.png")
            nb.cell(1).screenshot(path=str(artifacts / "live-view-cell.png"))
            if os.environ.get("PIPELINE_NB_E2E_UPDATE_DOCS"):  # refresh the README's picture
                nb.cell(1).screenshot(path=str(Path(__file__).parents[2] / "docs" / "live-view.png"))
        time.sleep(0.2)
    nb.wait_done(1)
    assert shot is not None, "never saw step a done while step b streamed"

    # Sampled while streaming: the text of the running step grows, sample after sample.
    for step in ("a", "b"):
        lengths = [len(s["texts"].get(step, "")) for s in samples if s["rows"][step] == "running"]
        growing = [n for n, before in zip(lengths[1:], lengths) if n > before]
        assert len(growing) >= 2 and len(set(lengths)) >= 3, f"step {step}: text lengths {lengths}"
    seen = [(s["rows"]["a"], s["rows"]["b"]) for s in samples]
    assert ("running", "pending") in seen and ("ok", "running") in seen, seen
    # A text longer than its pane scrolls, and the pane follows the newest line.
    following = [s["scroll"]["a"] for s in samples if s["rows"]["a"] == "running" and "a" in s["scroll"]]
    assert any(f["overflow"] > 0 for f in following), f"step a's text never overflowed its pane: {following}"
    assert all(f["below"] < 30 for f in following), f"the pane fell behind the stream: {following}"

    # Every status a row showed, in order, and the last text the live view held.
    log = nb.page.evaluate("window.__pnb")
    assert log["status"]["a"][-2:] == ["running", "ok"], log["status"]
    assert log["status"]["b"] == ["pending", "running", "ok"], log["status"]

    nb.run_and_wait(2)
    kernel = nb.printed_json(2, MARKER)
    assert kernel == {"a": TIDES, "b": SHORT}
    assert log["text"] == kernel, "the live view's final text differs from the kernel's"
    for s in samples:  # and every sample was a prefix of it: nothing lost, doubled or reordered
        for step, text in s["texts"].items():
            assert kernel[step].startswith(text), (step, text)

    # Then the view retires to one line, and the final rendering shows the same texts.
    assert final_rendering(nb, 1) == kernel
    assert_no_broken_widget(nb.output(1).inner_text())
    nb.output(1).scroll_into_view_if_needed()
    nb.screenshot("final-rendering.png")


@pytest.mark.parametrize("save_state", [True, False], ids=["saveState-on", "saveState-off"])
def test_saved_and_reopened_without_kernel(open_notebook, lab, save_state):
    name = f"saved-{'on' if save_state else 'off'}.ipynb"
    lab.set_widget_save_state(save_state)
    try:
        saved_and_reopened(open_notebook, lab, name, save_state)
    finally:
        lab.set_widget_save_state(False)  # JupyterLab's default, for the tests after this one


def saved_and_reopened(open_notebook, lab, name: str, save_state: bool) -> None:
    nb = open_notebook(name, [SETUP, tides_pipeline(0.002, 0.002)])
    nb.run_and_wait(0)
    nb.run_and_wait(1)
    assert final_rendering(nb, 1) == {"a": TIDES, "b": SHORT}
    nb.save()

    deadline = time.monotonic() + 20
    while not (saved := lab.read_notebook(name))["cells"][1]["outputs"]:
        assert time.monotonic() < deadline, "Ctrl+S did not save the outputs"
        time.sleep(0.2)
    outputs = saved["cells"][1]["outputs"]
    mimes = [set(o.get("data", {})) for o in outputs]
    # The retired view saved as one plain line, the results as HTML; no widget left to fail to load.
    assert mimes[0] == {"text/plain"} and any("text/html" in m for m in mimes[1:]), mimes
    assert not any("application/vnd.jupyter.widget-view+json" in m for m in mimes), mimes
    widget_state = saved["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    assert (widget_state is not None) == save_state, saved["metadata"]

    nb.page.context.close()
    lab.shutdown_kernels()
    reopened = open_notebook(name, kernel=False)
    reopened.page.locator(".pnb-run").wait_for()
    assert lab.api("GET", "/api/kernels") == []
    assert final_rendering(reopened, 1) == {"a": TIDES, "b": SHORT}
    assert_no_broken_widget(reopened.output(1).inner_text())
    reopened.screenshot(f"reopened-saveState-{'on' if save_state else 'off'}.png")


def test_interrupt_from_the_toolbar(open_notebook):
    nb = open_notebook("interrupt.ipynb", [fake_claude_setup(0.001, 0.25), README_PIPELINE, PRINT_STEPS])
    nb.run_and_wait(0)
    nb.page.evaluate(RECORDER)
    nb.run(1)
    pane_b = nb.page.locator('.pnb-live .pnb-pane[data-step="b"] .pnb-text')
    deadline = time.monotonic() + 30
    while len(pane_b.text_content() if pane_b.count() else "") < 30:
        assert time.monotonic() < deadline, "step b never streamed"
        time.sleep(0.1)
    nb.page.locator('.jp-NotebookPanel-toolbar [data-command="notebook:interrupt-kernel"]').click()
    nb.wait_done(1, timeout=20_000)

    out = nb.output(1).inner_text()
    error = nb.output(1).locator('[data-mime-type="application/vnd.jupyter.stderr"]').inner_text().strip()
    assert re.fullmatch(r"KeyboardInterrupt: pipeline 'tides_review' interrupted[^\n]*", error), error
    assert_no_broken_widget(out)
    shown = final_rendering(nb, 1)
    assert shown["a"] == TIDES
    assert 30 <= len(shown["b"]) < len(SHORT) and SHORT.startswith(shown["b"]), shown["b"]
    assert "■ b · interrupted" in out, out
    log = nb.page.evaluate("window.__pnb")
    assert log["status"]["b"][-2:] == ["running", "interrupted"], log["status"]
    assert log["text"]["b"] == shown["b"], "the live view and the final rendering disagree"
    nb.output(1).locator(".pnb-step").last.scroll_into_view_if_needed()
    nb.screenshot("interrupted.png")

    # The kernel is free: the next cell runs, and it holds what the screen shows.
    nb.run_and_wait(2, timeout=20_000)
    kernel = nb.printed_json(2, MARKER)
    assert kernel["a"] == {"status": "ok", "text": TIDES}
    assert kernel["b"] == {"status": "interrupted", "text": shown["b"]}


BROKEN = {
    # YAML that does not parse: the mapping under '- id: a' is cut by a bad indent.
    "yaml": ('%%pipeline\nname: broken\nsteps:\n  - id: a\n    prompt: "hi"\n   stream: true\n',
             r"PipelineSpecError: <cell>:6:4: "),
    # A misspelt key: the message points at it and suggests the right one.
    "key": ('%%pipeline\nname: typo\nsteps:\n  - id: a\n    promt: "hi"\n', r"PipelineSpecError: <cell>:5:5: "),
}


def test_broken_yaml_shows_a_short_error(open_notebook):
    nb = open_notebook("broken.ipynb", [SETUP, BROKEN["yaml"][0], BROKEN["key"][0], "print('still' + ' alive')"])
    nb.run_and_wait(0)
    for cell, (_, expected) in enumerate(BROKEN.values(), start=1):
        nb.run_and_wait(cell)
        error = nb.output(cell).locator('[data-mime-type="application/vnd.jupyter.stderr"]')
        text = error.inner_text().strip()
        assert re.match(expected, text), text
        lines = text.splitlines()
        assert len(lines) <= 4, f"{len(lines)} lines of error:\n{text}"
        assert "Traceback" not in text and 'File "' not in text, text
    assert "hint: did you mean 'prompt'?" in nb.output(2).inner_text()
    nb.screenshot("broken-yaml.png")
    nb.run_and_wait(3)
    assert nb.output(3).inner_text().strip() == "still alive"


# -- the view's code crosses once per kernel: later views carry a stub (see display/_widget.py) --

ASK_FOR_CODE = ("from pipeline_nb.display import LiveView\n"
                "_asked = LiveView(title='asked', rows=[{'id': 'x', 'status': 'ok'}])\ndisplay(_asked)")


def streams_live(nb, cell: int) -> list[int]:
    """Run ``cell`` (a pipeline) and sample its live view: the lengths its step a's pane showed."""
    nb.run(cell)
    lengths: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = sample(nb, cell)
        if now is None and lengths:
            break  # retired
        if now is not None:
            assert_no_broken_widget(now["outputText"])
            lengths.append(len(now["texts"].get("a", "")))
        time.sleep(0.1)
    nb.wait_done(cell)
    assert final_rendering(nb, cell)["a"] == TIDES
    return lengths


def reload(nb) -> list[bytes]:
    """Reload the page; what its new kernel websocket receives from then on, frame by frame."""
    frames: list[bytes] = []
    nb.page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda f: frames.append(f if isinstance(f, bytes) else f.encode())))
    nb.page.reload()
    nb.page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    nb.wait_idle()
    return frames


def carry_code(frames: list[bytes]) -> int:
    """How many frames hold the view's whole code (the stub has no ``drawRows``)."""
    return sum(b"function drawRows(" in f for f in frames)


def test_later_views_use_the_code_the_page_has_or_ask_the_kernel(open_notebook):
    nb = open_notebook("code-once.ipynb", [SETUP, tides_pipeline(0.002, 0.002, "r1"),
                                           tides_pipeline(0.02, 0.002, "r2"), ASK_FOR_CODE])
    nb.run_and_wait(0)
    nb.run_and_wait(1)  # the kernel's first view: it carries the code
    # the second cell's view is a stub: it draws with the code the first registered in the page
    lengths = streams_live(nb, 2)
    assert len({n for n in lengths if n}) >= 3, f"the stub's view did not stream: {lengths}"
    styles = nb.page.evaluate("[...document.querySelectorAll('style')].filter(s => "
                              "s.textContent.includes('.pnb-live {')).length")
    assert styles == 1, f"the view's CSS is in the page {styles} times"
    # a reloaded page has no code in memory: the stub takes the copy the first page kept
    frames = reload(nb)
    lengths = streams_live(nb, 2)
    assert len({n for n in lengths if n}) >= 3, f"after a reload the view did not stream: {lengths}"
    assert frames and carry_code(frames) == 0, "the kernel sent the view's code again"
    # nor that: the stub asks the kernel, which sends the code
    nb.page.evaluate("localStorage.clear()")
    frames = reload(nb)
    nb.run_and_wait(3)
    title = nb.output(3).locator(".pnb-live .pnb-title")
    title.wait_for(timeout=20_000)
    assert title.inner_text() == "asked"
    assert nb.output(3).locator('.pnb-live .pnb-row[data-step="x"][data-status="ok"]').count() == 1
    assert carry_code(frames) == 1  # the kernel's answer
