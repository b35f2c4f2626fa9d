"""%%pipeline in a real kernel (nbclient) against the loopback API, and the saved notebook."""

from __future__ import annotations

import json

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

PIPELINE = '''%%pipeline res
name: tides_review
defaults: {provider: claude, model: claude-sonnet-5-5, max_tokens: 1024}
steps:
  - id: a
    type: llm
    prompt: "Explain {{ topic }}."
    stream: true
  - id: b
    prompt: "Shorten: {{ steps.a.text }}"
    stream: true
    save_as: short
'''


def run_notebook(cells: list[str], tmp_path, env_setup: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(env_setup), *map(new_code_cell, cells)])
    NotebookClient(nb, timeout=60, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def env_cell(fake) -> str:
    return (f"import os\nos.environ['ANTHROPIC_BASE_URL'] = {fake.base_url!r}\n"
            "os.environ['ANTHROPIC_API_KEY'] = 'sk-ant-test'")


def test_two_step_pipeline_binds_results_and_saves_a_readable_rendering(fake_anthropic, tmp_path):
    fake_anthropic.reply("Tides are the rise and fall of the sea.", when="Explain tides")
    fake_anthropic.reply("Sea goes up, sea goes down.", when="Shorten:")
    nb = run_notebook([
        "%load_ext pipeline_nb",
        'topic = "tides"',
        PIPELINE,
        "assert res.steps['b'].text == short == 'Sea goes up, sea goes down.'\n"
        "assert _pipeline is res and res.status == 'ok'\n"
        "print(res.steps['a'].text, res.steps['a'].attempts, res.steps['a'].usage.output_tokens)",
    ], tmp_path, env_cell(fake_anthropic))

    prompts = [r.body["messages"][0]["content"] for r in fake_anthropic.requests if r.path == "/v1/messages"]
    assert prompts == ["Explain tides.", "Shorten: Tides are the rise and fall of the sea."]
    assert all(r.stream for r in fake_anthropic.requests)

    outputs = nb.cells[3].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"]
    live, final = outputs
    # The live view retired itself: no widget left to render as "Output()" or "model not found".
    assert set(live.data) == {"text/plain"} and live.data["text/plain"] == ""  # nothing visible is left
    assert set(final.data) == {"text/html", "text/plain"}  # each reply's text crosses the wire once
    assert "Sea goes up, sea goes down." in final.data["text/html"]
    assert "Tides are the rise and fall of the sea." in final.data["text/html"]
    assert "Output()" not in json.dumps(nb)
    assert nb.cells[4].outputs[0].text.startswith("Tides are the rise and fall of the sea. 1 ")


def test_a_broken_spec_fails_the_cell_with_line_and_column(tmp_path, fake_anthropic):
    nb = new_notebook(cells=[
        new_code_cell("%load_ext pipeline_nb"),
        new_code_cell("%%pipeline\nsteps:\n  - id: a\n    prompt: 'x'\n    max_tokens: lots\n"),
    ])
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)
    client.execute()
    (error,) = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert error.ename == "PipelineSpecError"
    assert "<cell>:5:17: step 'a': max_tokens must be an integer" in error.evalue
    assert len(error.traceback) == 1  # the short rendering, not a 40-frame traceback
