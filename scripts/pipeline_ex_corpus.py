"""Run pipeline_ex's own workflow files through ``python -m pipeline_nb run`` against the loopback fakes.

    python scripts/pipeline_ex_corpus.py PATH_TO_PIPELINE_EX [--timeout 60] [--only NAME ...]

PATH_TO_PIPELINE_EX is a checkout of nshkrdotcom/pipeline_ex. Its YAML files (the top-level ones,
examples/, workflows/, pipelines/ and test/fixtures/) each run in a fresh temporary directory (a copy
of the checkout, so relative file parts resolve and outputs land nowhere else), with the Claude API
and the Gemini API answered by the fakes in ``pipeline_nb.testing``.
A file's declared inputs get a ``--var``, and so do the inputs its usage comment gives
(``# mix pipeline.run.live FILE CODE_FILE="lib/x.ex"``: ``--var code_file=...``; a path the checkout
lacks becomes its README.md). A file that uses a variable nothing in it defines (a generated
pipeline's ``{{requirements}}``, a nested fixture's ``{{inputs.item_count}}``) is refused with a
``--var NAME=VALUE`` hint; the script then gives that input, as a user would, and says so.
Prints one line per file (ran, refused with the features named, or failed as it ran) and the
counts; exit 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pipeline_nb.testing import FakeAnthropic, FakeGemini

FOLDERS = ("examples", "workflows", "pipelines", "test/fixtures")


def corpus(root: Path) -> list[Path]:
    """pipeline_ex's YAML workflow files: top-level, and under FOLDERS (any depth)."""
    found = sorted(p for p in root.glob("*.y*ml") if p.is_file())
    for folder in FOLDERS:
        found += sorted(p for p in (root / folder).rglob("*.y*ml") if p.is_file())
    return [p for p in found if not p.name.startswith(".")]


def declared_inputs(path: Path) -> dict[str, str]:
    """A value for each input the workflow declares (``workflow.inputs`` / ``input``), for ``--var``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    workflow = data.get("workflow") if isinstance(data, dict) else None
    if not isinstance(workflow, dict):
        return {}
    inputs = workflow.get("inputs") or workflow.get("input") or {}
    names = list(inputs) if isinstance(inputs, (dict, list)) else []
    return {str(n if isinstance(n, str) else n.get("name", "input")): "example" for n in names}


USAGE = re.compile(r"^#\s*mix pipeline\.run\S*\s+\S+\s+(.+)$", re.M)
ASSIGNMENT = re.compile(r'([A-Z][A-Z0-9_]*)=("[^"]*"|\S+)')


def usage_inputs(path: Path, root: Path) -> dict[str, str]:
    """The inputs a file's usage comment gives (``# mix pipeline.run FILE CODE_FILE="lib/x.ex"``), as
    ``code_file``; a path that the checkout lacks is replaced by its README.md, so the run reads a real file."""
    found: dict[str, str] = {}
    for line in USAGE.findall(path.read_text(encoding="utf-8", errors="replace")):
        for name, value in ASSIGNMENT.findall(line):
            value = value.strip('"')
            if "/" in value and not (root / value).exists():
                value = "README.md"
            found[name.lower()] = value
    return found


ASKED = re.compile(r"hint: (?:did you mean .*?)?define it in the kernel, under vars:, or with --var (\w+)=VALUE")


def run_one(path: Path, root: Path, env: dict[str, str], timeout: float) -> tuple[str, str]:
    """(outcome, detail) of running ``path``: ran, refused (a spec error) or failed. A refusal that
    asks for an undefined variable is answered with ``--var`` and the file run again."""
    given = {**usage_inputs(path, root), **declared_inputs(path)}
    asked: list[str] = []
    while True:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "pipeline_ex"
            shutil.copytree(root, work, ignore=shutil.ignore_patterns(".git", "_build", "deps", "node_modules"))
            target = work / path.relative_to(root)
            command = [sys.executable, "-m", "pipeline_nb", "run", str(target), "--journal", "off"]
            for name, value in given.items():
                command += ["--var", f"{name}={value}"]
            try:
                done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return "failed", f"timed out after {timeout:g} s"
        err = done.stderr.strip()
        wanted = ASKED.search(err) if done.returncode == 2 else None
        if not wanted or wanted[1] in given or len(asked) >= 8:
            break
        given[wanted[1]] = "example"
        asked.append(wanted[1])
    note = f"asked for --var {', '.join(asked)}" if asked else ""
    if done.returncode == 0:
        return "ran", note
    if done.returncode == 2:
        return "refused", "\n".join(filter(None, (note, err)))
    lines = [line for line in err.splitlines() if "failed" in line or "error" in line.lower()]
    return "failed", "\n".join(lines[-6:]) or err[-600:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a checkout of nshkrdotcom/pipeline_ex")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a file may run (default 60)")
    parser.add_argument("--only", nargs="*", default=(), help="only files whose path contains one of these")
    parser.add_argument("--verbose", action="store_true", help="print every refusal's whole message")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    files = [p for p in corpus(root) if not args.only or any(o in str(p) for o in args.only)]
    counts = {"ran": 0, "refused": 0, "failed": 0}
    features: dict[str, int] = {}
    with FakeAnthropic() as claude, FakeGemini() as gemini:
        env = {**os.environ, "ANTHROPIC_BASE_URL": claude.base_url, "ANTHROPIC_API_KEY": "sk-ant-corpus",
               "GEMINI_BASE_URL": gemini.base_url, "GEMINI_API_KEY": "gemini-corpus-key",
               "PIPELINE_NB_RATE_LIMITER": "off"}
        for path in files:
            outcome, detail = run_one(path, root, env, args.timeout)
            counts[outcome] += 1
            name = path.relative_to(root)
            print(f"{outcome:8} {name}" + (f"  ({detail})" if outcome == "ran" and detail else ""))
            if detail and outcome != "ran":
                shown = detail if args.verbose else "\n".join(detail.splitlines()[:12])
                print("         " + shown.replace("\n", "\n         "))
            for found in re.findall(r"(?:step type '(\w+)'|(\w+(?:\.\w+)?) is not supported|(\w+) steps are not supported)",
                                    detail if outcome == "refused" else ""):
                key = next(f for f in found if f)
                features[key] = features.get(key, 0) + 1
    print(f"\n{len(files)} files: {counts['ran']} ran, {counts['refused']} refused, {counts['failed']} failed")
    if features:
        print("refusals by feature: " + ", ".join(f"{k} {v}" for k, v in sorted(features.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
