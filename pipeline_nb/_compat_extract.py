"""pipeline_ex's claude_extract post-processing of a reply's text, as a python step calls it.

A translated ``claude_extract`` step whose ``extraction_config`` changes the text runs its reply
through :func:`extract` (``call: pipeline_nb._compat_extract:extract``). Each format and operation
does what pipeline_ex's ``Pipeline.Step.ClaudeExtract`` does to the text, in the same order: the
format first, then each post-processing operation. Unknown operations leave the text as it is,
as in pipeline_ex.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

FORMATS = ("text", "json", "structured", "summary", "markdown")
DEFAULT_SUMMARY_LENGTH = 500


def extract(text: str, format: str = "text", post_processing: Sequence[str] = (),
            max_summary_length: int = DEFAULT_SUMMARY_LENGTH) -> str:
    """``text`` in ``format``, then through each of ``post_processing`` in order."""
    text = _format(text, format, max_summary_length)
    for operation in post_processing:
        text = OPERATIONS.get(operation, _unchanged)(text)
    return text


def changes_text(format: str | None, post_processing: Sequence[str]) -> bool:
    """Whether :func:`extract` can change a reply with this configuration."""
    return format not in (None, "text") and format in FORMATS or any(op in OPERATIONS for op in post_processing)


def _format(text: str, format: str, max_length: int) -> str:
    if format == "json":
        try:
            json.loads(text)
            return text
        except ValueError:
            return json.dumps({"content": text, "format": "json"}, ensure_ascii=False)
    if format == "structured":
        return text if "##" in text else f"## Extracted Content\n\n{text}\n"
    if format == "summary":
        return text if len(text) <= max_length else text[:max(max_length - 3, 0)] + "..."
    if format == "markdown":
        return _as_markdown(text, "Extracted Content")
    return text


def _as_markdown(text: str, title: str) -> str:
    return text if "#" in text else f"# {title}\n\n{text}\n"


def _section(text: str, title: str, found: list[str], joiner: str = "\n") -> str:
    return text if not found else f"{text}\n## {title}\n{joiner.join(found)}\n"


def _unchanged(text: str) -> str:
    return text


OPERATIONS: dict[str, Callable[[str], str]] = {
    "extract_code_blocks": lambda t: _section(t, "Code Blocks Extracted", re.findall(r"```[\s\S]*?```", t), "\n\n"),
    "extract_recommendations": lambda t: _section(
        t, "Recommendations Extracted", [line for line in t.split("\n") if "recommend" in line or "suggest" in line]),
    "extract_links": lambda t: _section(t, "Links Extracted", [f"- {u}" for u in re.findall(r"https?://\S+", t)]),
    "extract_key_points": lambda t: _section(t, "Key Points Extracted", [
        line for line in t.split("\n") if line.startswith(("- ", "* ")) or re.match(r"\d+\.", line)]),
    "format_markdown": lambda t: _as_markdown(t, "Content"),
    "generate_summary": lambda t: f"{t}\n## Generated Summary\n{'. '.join(t.split('. ')[:3])[:200]}...\n",
}
"""pipeline_ex's post-processing operations, each a function of the text."""
