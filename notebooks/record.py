"""Re-record the notebooks: fresh cassettes and saved outputs, offline.

    python notebooks/record.py                          # every notebook here
    python notebooks/record.py notebooks/quickstart.ipynb
    python notebooks/record.py --live my.ipynb          # ask the real Claude (ANTHROPIC_API_KEY)

Each notebook runs top to bottom in a fresh kernel, in its own directory, with
PIPELINE_NB_CASSETTE_MODE=record, and is saved with its outputs. Its cassette,
``cassettes/<notebook>.jsonl``, is deleted first, so it ends up holding exactly the
calls the notebook makes. Without ``--live``, Claude is FakeAnthropic (the loopback
fake in pipeline_nb.testing) scripted with ``fake_replies.yaml`` beside the notebook,
because no real Claude is reachable where these notebooks are tested.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

from pipeline_nb.testing import FakeAnthropic, RecordedRequest

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def fake_claude(replies_file: Path) -> Iterator[dict[str, str]]:
    """A FakeAnthropic scripted from ``replies_file``; yields the kernel's environment."""
    with FakeAnthropic() as fake:
        if replies_file.exists():
            for reply in yaml.safe_load(replies_file.read_text(encoding="utf-8")) or []:
                cite = reply.get("cite")  # a quote, or a list of quotes and [sentence, quote] pairs
                fake.reply(reply.get("text", ""), when=matcher(reply["when"], reply.get("model")),
                           chunks=reply.get("chunks"),
                           tool_calls=reply.get("tool_calls"),
                           usage=tuple(reply["usage"]) if "usage" in reply else None,
                           thinking=reply.get("thinking"),
                           cite=[tuple(c) if isinstance(c, list) else c for c in cite] if isinstance(cite, list)
                           else cite)
        yield {"ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "sk-ant-fake-for-recording"}


def matcher(when: str, model: str | None) -> str | Callable[[RecordedRequest], bool]:
    """``when`` (a substring of the prompt), and with ``model``, only for requests to that model."""
    if model is None:
        return when
    return lambda request: when in request.prompt and request.body.get("model") == model


def record(notebook: Path, env: dict[str, str]) -> None:
    """Delete ``notebook``'s cassette, execute it in record mode and save it."""
    (notebook.parent / "cassettes" / f"{notebook.stem}.jsonl").unlink(missing_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:  # nbval's marker, and the tag nbconvert, papermill and nbclient read
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and "# NBVAL_RAISES_EXCEPTION" in cell.source and "raises-exception" not in tags:
            cell.metadata["tags"] = [*tags, "raises-exception"]
    saved = {key: os.environ.get(key) for key in (*env, "PIPELINE_NB_CASSETTE_MODE")}
    os.environ.update(env, PIPELINE_NB_CASSETTE_MODE="record")
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    nb.metadata.pop("widgets", None)  # saved widget state holds timestamps; the final rendering is enough
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    nbformat.write(nb, notebook)


def coalesce_streams(outputs: list[dict]) -> list[dict]:
    """Merge consecutive stream outputs to the same stream, as a frontend shows them."""
    merged: list[dict] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (output["output_type"] == "stream" and last is not None and last["output_type"] == "stream"
                and last["name"] == output["name"]):
            last["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to record (default: all beside this script)")
    parser.add_argument("--live", action="store_true", help="record the real Claude instead of FakeAnthropic")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(HERE.glob("*.ipynb"))
    for notebook in notebooks:
        notebook = notebook.resolve()
        with contextlib.nullcontext({}) if args.live else fake_claude(notebook.parent / "fake_replies.yaml") as env:
            record(notebook, env)
        print(f"recorded {notebook.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
