"""What a user sees of a tool loop in JupyterLab: a row per call under its step, its arguments
growing as they stream, then its result and time; and the saved notebook's table of calls,
reopened with no kernel.

A real server, a real kernel and headless Chromium (see conftest.py); the pipeline talks to
FakeAnthropic (the real SDK, real SSE) in the kernel, never to the real API.
"""

from __future__ import annotations

import time

import pytest

from test_live_view import MARKER, MARKER_CODE, assert_no_broken_widget

pytestmark = pytest.mark.timeout(180)

QUERY = "tidal range of the harbour of Saint-Malo in Brittany, in metres, averaged over spring and neap tides"
ANSWER = "Saint-Malo's mean tidal range is about 12 metres, among the largest in the world."

SETUP = (
    "%load_ext pipeline_nb\n"
    "import os, time\n"
    "from pipeline_nb.testing import FakeAnthropic\n"
    "def lookup(query: str) -> dict:\n"
    "    '''Look a fact up in the harbour dataset.\n\n    Args:\n        query: what to look up\n    '''\n"
    "    time.sleep(1.0)\n"
    "    return {'harbour': 'Saint-Malo', 'range_m': 12.0}\n"
    "def broken(query: str) -> str:\n"
    "    '''Always fails.'''\n"
    "    raise ValueError('the archive is closed')\n"
    "fake = FakeAnthropic().start()\n"
    f"fake.reply('Let me look.', tool_calls=[('lookup', {{'query': {QUERY!r}}}), ('broken', {{'query': 'x'}})],"
    " times=1, delay=0.06)\n"
    f"fake.reply({ANSWER!r}, when='range_m', delay=0.03)\n"
    "os.environ['ANTHROPIC_BASE_URL'], os.environ['ANTHROPIC_API_KEY'] = fake.base_url, 'sk-ant-fake'"
)
PIPELINE = """%%pipeline res
name: harbours
defaults: {provider: claude, model: claude-sonnet-5-5}
steps:
  - id: a
    prompt: "What is the tidal range at Saint-Malo?"
    stream: true
    tools: [lookup, broken]
"""
PRINT_CALLS = (f"import json\nprint({MARKER_CODE}, json.dumps([[c.name, c.is_error, c.output] "
               "for c in res.tool_calls]))")

# Every distinct state of step a's tool rows, at every DOM mutation.
RECORDER = """() => {
  const log = window.__pnbTools = [];
  const snap = () => {
    const rows = [...document.querySelectorAll('.pnb-live .pnb-pane[data-step="a"] .pnb-tool')];
    if (!rows.length) return;
    const state = rows.map((r) => [r.dataset.tool, r.dataset.status,
                                   (r.querySelector('.pnb-tool-args') || {}).textContent || '',
                                   (r.querySelector('.pnb-tool-output') || {}).textContent || '']);
    const key = JSON.stringify(state);
    if (!log.length || log[log.length - 1].key !== key) log.push({key, state});
  };
  new MutationObserver(snap).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
}"""

SAVED_TABLE = """(cell) => {
  const out = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell].querySelector('.jp-OutputArea');
  return [...out.querySelectorAll('table.pnb-tools tbody tr.pnb-tool-call')].map((tr) => ({
    tool: tr.querySelector('.pnb-tool-name').textContent,
    error: tr.classList.contains('pnb-tool-error'),
    input: tr.querySelector('code.pnb-tool-input').textContent,
    output: tr.querySelector('.pnb-tool-output').textContent,
  }));
}"""


def assert_table(rows: list[dict]) -> None:
    assert [(r["tool"], r["error"]) for r in rows] == [("lookup", False), ("broken", True)], rows
    assert "Saint-Malo" in rows[0]["input"] and "12.0" in rows[0]["output"], rows[0]
    assert "ValueError: the archive is closed" in rows[1]["output"], rows[1]


def test_tool_rows_stream_then_the_saved_table_reads_without_a_kernel(open_notebook, lab, artifacts):
    nb = open_notebook("tools.ipynb", [SETUP, PIPELINE, PRINT_CALLS])
    nb.hide_sidebar()
    nb.run_and_wait(0)
    nb.page.evaluate(RECORDER)
    nb.run(1)
    nb.page.locator('.pnb-live .pnb-pane[data-step="a"] .pnb-tool[data-status="running"]').first.wait_for()
    nb.cell(1).screenshot(path=str(artifacts / "tools-running.png"))
    nb.wait_done(1)
    nb.run_and_wait(2)
    assert nb.printed_json(2, MARKER) == [["lookup", False, {"harbour": "Saint-Malo", "range_m": 12.0}],
                                          ["broken", True, None]]

    states = [entry["state"] for entry in nb.page.evaluate("window.__pnbTools")]
    lookup_args = [s[0][2] for s in states if s and s[0][0] == "lookup"]
    grown = [a for a in lookup_args if a]
    assert len(set(grown)) >= 3, f"the arguments did not grow as they streamed: {grown}"
    assert any(s[0][1] == "running" for s in states), "no state showed the call running"
    last = states[-1]
    assert [(row[0], row[1]) for row in last] == [("lookup", "ok"), ("broken", "error")], last
    assert "12.0" in last[0][3] and "the archive is closed" in last[1][3], last

    assert_table(nb.page.evaluate(SAVED_TABLE, 1))
    assert_no_broken_widget(nb.output(1).inner_text())
    nb.save()
    deadline = time.monotonic() + 20
    while not lab.read_notebook("tools.ipynb")["cells"][2]["outputs"]:
        assert time.monotonic() < deadline, "Ctrl+S did not save the outputs"
        time.sleep(0.2)

    nb.page.context.close()
    lab.shutdown_kernels()
    reopened = open_notebook("tools.ipynb", kernel=False)
    reopened.page.locator(".pnb-run table.pnb-tools").wait_for()
    assert lab.api("GET", "/api/kernels") == []
    assert_table(reopened.page.evaluate(SAVED_TABLE, 1))
    reopened.output(1).scroll_into_view_if_needed()
    reopened.screenshot("tools-reopened.png")
