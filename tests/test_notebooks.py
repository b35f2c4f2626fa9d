"""The notebooks as regression tests: nbval catches a changed reply, reads its markers inside
%%pipeline bodies, and re-recording a notebook reproduces its cassette and outputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
OFFLINE = {"PIPELINE_NB_CASSETTE_MODE": "replay", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": ""}


def copy_notebook(name: str, into: Path) -> Path:
    """``notebooks/<name>.ipynb`` with its cassette and the sanitize file, copied into ``into``."""
    (into / "cassettes").mkdir()
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", into)
    shutil.copy(NOTEBOOKS / "cassettes" / f"{name}.jsonl", into / "cassettes")
    shutil.copy(NOTEBOOKS / "sanitize.cfg", into)
    return into / f"{name}.ipynb"


def nbval(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest --nbval in ``where``, offline, one line per cell."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-vv", "--color=no", "--nbval",
               "--nbval-current-env", "--nbval-sanitize-with", "sanitize.cfg", *args]
    return subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=240,
                          env={**os.environ, **OFFLINE})


def cell_results(output: str) -> dict[str, str]:
    return dict(re.findall(r"::(Cell \d+) (PASSED|FAILED)", output))


def test_nbval_reports_the_cell_whose_recorded_reply_changed(tmp_path: Path) -> None:
    copy_notebook("quickstart", tmp_path)
    unchanged = nbval(tmp_path, "quickstart.ipynb")
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]

    cassette = tmp_path / "cassettes" / "quickstart.jsonl"
    entries = [json.loads(line) for line in cassette.read_text().splitlines()]
    (edited,) = [e for e in entries if e["prompt"].startswith("Shorten to one sentence")]
    for block in edited["reply"]["content"]:
        block["text"] = block["text"].replace("twice-daily", "thrice-daily")
    edited["events"] = [[kind, index, piece.replace("twice-daily", "thrice-daily")]
                        for kind, index, piece in edited["events"]]
    cassette.write_text("".join(json.dumps(e) + "\n" for e in entries))

    changed = nbval(tmp_path, "quickstart.ipynb")
    assert changed.returncode == 1
    results = cell_results(changed.stdout)
    assert results.pop("Cell 2") == "FAILED"  # the %%pipeline cell, whose rendering shows step b
    assert set(results.values()) == {"PASSED"}
    assert "thrice-daily" in changed.stdout and "%%pipeline res" in changed.stdout


def test_an_answer_that_stops_passing_fails_the_evaluation_notebook_in_its_verdict_cell_only(tmp_path: Path) -> None:
    """The evaluation notebook compares verdicts, not text: Sonnet answering Sydney instead of
    Canberra changes its verdict table (the right-city and judged checks) and nothing else nbval sees."""
    copy_notebook("evaluation", tmp_path)
    unchanged = nbval(tmp_path, "evaluation.ipynb")
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]

    cassette = tmp_path / "cassettes" / "evaluation.jsonl"
    entries = [json.loads(line) for line in cassette.read_text().splitlines()]
    (edited,) = [e for e in entries if e["model"] == "claude-sonnet-5-5" and "capital of Australia" in e["prompt"]]
    edited["reply"]["content"][0]["text"] = "Sydney."
    cassette.write_text("".join(json.dumps(e) + "\n" for e in entries))

    changed = nbval(tmp_path, "evaluation.ipynb")
    assert changed.returncode == 1
    results = cell_results(changed.stdout)
    assert results.pop("Cell 2") == "FAILED"  # %%pipeline capitals --display checks: its verdict table
    assert set(results.values()) == {"PASSED"}, results
    assert "✗ 2/3" in changed.stdout


def pipeline_cell(marker: str, saved_text: str) -> nbformat.NotebookNode:
    """A %%pipeline cell on the mock provider whose saved output is ``saved_text``."""
    source = f"%%pipeline --cassette-mode off\n{marker}\nsteps:\n  - {{id: a, provider: mock, prompt: hello}}\n"
    cell = new_code_cell(source, execution_count=1)
    cell.outputs = [new_output("display_data", data={"text/plain": saved_text})]
    return cell


def test_nbval_markers_work_as_yaml_comments_in_a_pipeline_body(tmp_path: Path) -> None:
    (tmp_path / "sanitize.cfg").write_text("")
    cells = [
        new_code_cell("%load_ext pipeline_nb"),
        pipeline_cell("# NBVAL_IGNORE_OUTPUT", "stale output, ignored"),
        pipeline_cell("# a plain comment", "stale output, compared"),
        pipeline_cell("# NBVAL_CHECK_OUTPUT", "stale output, checked even when lax"),
    ]
    nbformat.write(new_notebook(cells=cells), tmp_path / "markers.ipynb")

    strict = cell_results(nbval(tmp_path, "markers.ipynb").stdout)
    assert strict == {"Cell 0": "PASSED", "Cell 1": "PASSED", "Cell 2": "FAILED", "Cell 3": "FAILED"}
    lax = cell_results(nbval(tmp_path, "--nbval-lax", "markers.ipynb").stdout)
    assert lax == {"Cell 0": "PASSED", "Cell 1": "PASSED", "Cell 2": "PASSED", "Cell 3": "FAILED"}


def test_re_recording_a_notebook_reproduces_its_cassette_and_outputs(tmp_path: Path) -> None:
    notebook = copy_notebook("quickstart", tmp_path)
    shutil.copy(NOTEBOOKS / "fake_replies.yaml", tmp_path)
    recorded = subprocess.run([sys.executable, str(NOTEBOOKS / "record.py"), str(notebook)],
                              capture_output=True, text=True, timeout=240)
    assert recorded.returncode == 0, recorded.stderr
    committed = NOTEBOOKS / "cassettes" / "quickstart.jsonl"
    assert (tmp_path / "cassettes" / "quickstart.jsonl").read_bytes() == committed.read_bytes()

    def outputs(path: Path) -> str:
        cells = nbformat.read(path, as_version=4).cells
        text = json.dumps([c.get("outputs") for c in cells], sort_keys=True)
        return re.sub(r"in \d+\.\d+s", "in <T>s", text)

    assert outputs(notebook) == outputs(NOTEBOOKS / "quickstart.ipynb")


def test_every_notebook_runs_to_the_end_under_nbconvert_with_no_key_and_no_network(tmp_path: Path) -> None:
    """What a newcomer does first: execute the bundled notebooks as they are, with no API key.
    Every call is answered by the notebook's cassette; a cell that fails on purpose is tagged so."""
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks", ignore=shutil.ignore_patterns("outputs", "streams"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "PIPELINE_NB_CASSETTE_MODE")}
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens there: a call that goes out fails
    notebooks = sorted(p.name for p in (tmp_path / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    done = subprocess.run([str(Path(sys.executable).with_name("jupyter-nbconvert")), "--to", "notebook",
                           "--execute", "--output-dir", str(tmp_path / "executed"), *notebooks],
                          cwd=tmp_path / "notebooks", env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in notebooks:
        cells = nbformat.read(tmp_path / "executed" / name, as_version=4).cells
        failed = [c.source.splitlines()[0] for c in cells if c.cell_type == "code"
                  and any(o.output_type == "error" for o in c.outputs)]
        on_purpose = [c.source.splitlines()[0] for c in cells if c.cell_type == "code"
                      and "raises-exception" in c.metadata.get("tags", [])]
        assert failed == on_purpose, f"{name}: unexpected failures in {failed}"
