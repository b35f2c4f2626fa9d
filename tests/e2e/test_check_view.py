"""What a user sees of expectations in JupyterLab: a chip per check on its step's row, counting
as the samples' checks resolve (red once one failed), a matrix step's comparison rows under its
row, and, in the saved notebook reopened with no kernel, the steps' pass rates, the comparison
table and the run's verdict table.

A real server, a real kernel and headless Chromium (see conftest.py); the pipeline talks to
FakeAnthropic (the real SDK, real SSE) in the kernel, never to the real API.
"""

from __future__ import annotations

import time

import pytest

from test_live_view import MARKER, MARKER_CODE, assert_no_broken_widget

pytestmark = pytest.mark.timeout(180)

SETUP = (
    "%load_ext pipeline_nb\n"
    "import os\n"
    "from pipeline_nb.testing import FakeAnthropic\n"
    "fake = FakeAnthropic().start()\n"
    # three samples that end apart, so the chips count up: two good answers and an apology
    "fake.reply('Paris is the capital.', times=1, delay=0.02)\n"
    "fake.reply('It is Paris, of course.', times=1, delay=0.25)\n"
    "fake.reply('Paris, sorry for the wait.', times=1, delay=0.5)\n"
    "os.environ['ANTHROPIC_BASE_URL'], os.environ['ANTHROPIC_API_KEY'] = fake.base_url, 'sk-ant-fake'"
)
PIPELINE = """%%pipeline res
name: capitals
defaults: {provider: claude, model: claude-haiku-5-5, retries: 0}
steps:
  - id: answer
    prompt: What is the capital of France?
    stream: true
    repeat: 3
    expect:
      - contains: Paris
      - name: no apology
        not_contains: sorry
  - id: compare
    provider: mock
    prompt: Name a city.
    matrix:
      model: [claude-haiku-5-5, claude-sonnet-5-5]
    expect:
      - contains: haiku
"""
PRINT_CHECKS = f"import json\nprint({MARKER_CODE}, json.dumps(res.checks.summary()))"

# Every distinct state of step answer's chips, at every DOM mutation.
RECORDER = """() => {
  const log = window.__pnbChips = [];
  const snap = () => {
    const chips = [...document.querySelectorAll('.pnb-live .pnb-row[data-step="answer"] .pnb-chip')];
    if (!chips.length) return;
    const state = chips.map((c) => [c.dataset.check, c.textContent, c.classList.contains('pnb-chip-fail')]);
    const combos = [...document.querySelectorAll('.pnb-live tr.pnb-combos[data-step="compare"] tr.pnb-combo')];
    if (combos.length) state.push(combos.map((tr) => tr.dataset.status + ' ' + tr.firstChild.textContent));
    const key = JSON.stringify(state);
    if (!log.length || log[log.length - 1].key !== key) log.push({key, state});
  };
  new MutationObserver(snap).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
}"""

SAVED = """(cell) => {
  const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell].querySelector('.jp-OutputArea');
  return {
    rates: [...out.querySelectorAll('.pnb-step .pnb-check')].map((d) => d.textContent),
    combos: [...out.querySelectorAll('.pnb-step table.pnb-compare tr.pnb-combo')].map((tr) => tr.dataset.combo),
    verdicts: [...out.querySelectorAll('.pnb-verdicts table.pnb-checks tbody tr')].map(
      (tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    summary: (out.querySelector('.pnb-verdicts b') || {}).textContent,
  };
}"""


def assert_saved(saved: dict) -> None:
    assert saved["summary"] == "checks: 6 of 8 passed", saved
    assert saved["rates"] == ['✓ contains "Paris" 3/3', "✗ no apology 2/3",
                              '✗ contains "haiku" 0/1 [model=claude-sonnet-5-5]'], saved
    assert saved["combos"] == ["model=claude-haiku-5-5", "model=claude-sonnet-5-5"], saved
    assert saved["verdicts"] == [["answer", 'contains "Paris"', "✓ 3/3"], ["answer", "no apology", "✗ 2/3"],
                                 ["compare [model=claude-haiku-5-5]", 'contains "haiku"', "✓ 1/1"],
                                 ["compare [model=claude-sonnet-5-5]", 'contains "haiku"', "✗ 0/1"]], saved


def test_check_chips_count_up_live_then_the_saved_verdict_table_reads_without_a_kernel(open_notebook, lab,
                                                                                       artifacts):
    nb = open_notebook("checks.ipynb", [SETUP, PIPELINE, PRINT_CHECKS])
    nb.hide_sidebar()
    nb.run_and_wait(0)
    nb.page.evaluate(RECORDER)
    nb.run(1)
    nb.page.locator('.pnb-live .pnb-row[data-step="answer"] .pnb-chip').first.wait_for()
    nb.cell(1).screenshot(path=str(artifacts / "checks-running.png"))
    nb.wait_done(1)
    nb.run_and_wait(2)
    assert nb.printed_json(2, MARKER) == "checks: 6 of 8 passed"

    states = [entry["state"] for entry in nb.page.evaluate("window.__pnbChips")]
    assert states, "no check chip was ever on the page"
    counts = [int(text.rsplit("/", 1)[1]) for state in states for _, text, _ in state[:2]]
    assert min(counts) < 3, f"the chips did not count up as the samples ended: {states}"
    last = states[-1]
    assert last[:2] == [['contains "Paris"', '✓ contains "Paris" 3/3', False],
                        ["no apology", "✗ no apology 2/3", True]], last
    assert last[2:] == [["ok claude-haiku-5-5", "ok claude-sonnet-5-5"]], last  # the comparison, filled in

    assert_saved(nb.page.evaluate(SAVED, 1))
    assert_no_broken_widget(nb.output(1).inner_text())
    nb.save()
    deadline = time.monotonic() + 20
    while not lab.read_notebook("checks.ipynb")["cells"][2]["outputs"]:
        assert time.monotonic() < deadline, "Ctrl+S did not save the outputs"
        time.sleep(0.2)

    nb.page.context.close()
    lab.shutdown_kernels()
    reopened = open_notebook("checks.ipynb", kernel=False)
    reopened.page.locator(".pnb-run .pnb-verdicts table.pnb-checks").wait_for()
    assert lab.api("GET", "/api/kernels") == []
    assert_saved(reopened.page.evaluate(SAVED, 1))
    reopened.output(1).scroll_into_view_if_needed()
    reopened.screenshot("checks-reopened.png")
