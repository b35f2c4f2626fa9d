"""The public surface is what ``__all__`` says, and the core never imports the outer ring."""

from __future__ import annotations

import ast
from pathlib import Path

import importlib

import pipeline_nb
import pipeline_nb.streaming
import pipeline_nb.testing

PACKAGE = Path(pipeline_nb.__file__).parent


def test_the_top_level_names_are_exactly_the_public_api():
    assert sorted(pipeline_nb.__all__) == [
        "CheckList", "CheckResult", "ChecksFailed", "ERROR_TYPES", "ErrorInfo", "JournalError", "PipelineError", "PipelineRun", "PipelineSpecError",
        "RunComparison", "RunInterrupted", "RunSummary", "Step", "StepContext", "StepError", "StepId", "StepResult",
        "ToolCall", "Usage", "compare", "history", "invoke", "load_ipython_extension", "load_run", "prune_journal", "raise_for_status", "records_frame", "run"]
    assert all(hasattr(pipeline_nb, name) for name in pipeline_nb.__all__)
    assert sorted(pipeline_nb.streaming.__all__) == [
        "BufferHandler", "CallbackHandler", "CheckResult", "Chunk", "CitationChunk", "ConsoleHandler", "Event", "FileHandler",
        "Handler", "Response", "RetryInfo", "StreamHandler", "ToolCall", "ToolCallChunk"]
    assert all(hasattr(pipeline_nb.streaming, name) for name in pipeline_nb.streaming.__all__)
    assert all(hasattr(pipeline_nb.testing, name) for name in pipeline_nb.testing.__all__)


PUBLIC_MODULES = {
    "pipeline_nb": None,  # pinned above
    "pipeline_nb.streaming": None,
    "pipeline_nb.testing": ["FakeAnthropic", "FakeGemini", "RecordedRequest", "assert_checks_pass", "assert_run_ok", "assert_same_results",
                            "assert_step", "pdf_bytes"],
    "pipeline_nb.testing.plugin": None,  # the pytest entry point: fixtures, not names
    "pipeline_nb.display": ["LiveView", "WidgetHandler"],
    "pipeline_nb.providers": ["BatchProvider", "CancelToken", "LLMRequest", "Provider", "ProviderError",
                              "provider_names", "register_provider"],
    "pipeline_nb.content": ["Block", "Citation", "Document", "Image", "RedactedThinking", "Reply",
                            "ServerToolResult", "ServerToolUse", "Text",
                            "Thinking", "ToolResult", "ToolUse", "Usage", "citations_of", "text_of",
                            "thinking_of"],
    "pipeline_nb.compat": ["CompatNote", "Problem", "is_workflow", "translate"],
    "pipeline_nb.tools": ["MAX_TOOL_OUTPUT", "SERVER_TOOLS", "Skill", "Tool", "ToolDefinitionError",
                          "ToolInputError", "WORKSPACE_TOOLS", "find_skills", "server_tool", "skill_tool",
                          "tool_from_function", "tool_from_mapping", "tool_output", "workspace_tools"],
    "pipeline_nb.testing.mcp_server": ["DOT_PNG", "WORDS", "build", "main"],
}


def test_every_module_is_public_by_name_with_a_pinned_all_or_private():
    """A module a user may import is listed here with its ``__all__``; any other starts with ``_``,
    so nothing becomes public by accident."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name in PUBLIC_MODULES or parts[-1] == "__main__":
            continue
        assert any(part.startswith("_") for part in parts[1:]), f"{name} is neither private nor pinned public"
    for name, expected in PUBLIC_MODULES.items():
        module = importlib.import_module(name)
        if expected is not None:
            assert sorted(module.__all__) == expected, name
            assert all(hasattr(module, attr) for attr in module.__all__), name


def imports_of(path: Path) -> set[str]:
    """The pipeline_nb modules ``path`` imports (relative imports resolved), at any depth of the file."""
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - node.level]
            found.add(".".join((*base, node.module)) if node.module else ".".join(base))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline_nb"):
            found.add(node.module)
    return found


def test_streaming_results_and_rendering_keep_their_boundaries():
    for path in (PACKAGE / "streaming").glob("*.py"):
        assert not any(m.startswith("pipeline_nb.display") for m in imports_of(path)), path.name
    assert "pipeline_nb._render" not in imports_of(PACKAGE / "_results.py")
    assert "pipeline_nb.compat" not in imports_of(PACKAGE / "_spec.py")
    core = ("spec", "templates", "engine", "execute", "content", "results", "llm", "llm_call", "request")
    for name in core:
        outer = {m for m in imports_of(PACKAGE / ("content.py" if name == "content" else f"_{name}.py"))
                 if m.split(".")[1:2] and m.split(".")[1] in ("_magics", "display", "_cli", "providers")}
        assert not outer, f"{name}.py imports the outer ring: {outer}"


def test_every_error_type_is_in_the_documented_vocabulary():
    """ErrorInfo.type is closed: whatever fails (an unknown API type, a custom provider's own kind,
    a user's exception), a step's error type is one of ERROR_TYPES."""
    from pipeline_nb._llm_call import fail
    from pipeline_nb._results import ERROR_TYPES, StepResult

    step = StepResult("a")
    fail(step, "quota_exhausted_by_a_custom_provider", "no more")
    assert (step.error.type, step.error.message) == ("unexpected_error", "quota_exhausted_by_a_custom_provider: no more")
    run = pipeline_nb.run("steps:\n  - {id: a, call: boom}\n", namespace={"boom": lambda: 1 / 0},
                          raise_on_error=False)
    assert run.steps["a"].error.type == "python_error" in ERROR_TYPES
    documented = (PACKAGE.parent / "docs" / "reliability.md").read_text()
    assert all(f"`{kind}`" in documented for kind in ERROR_TYPES), [k for k in ERROR_TYPES if f"`{k}`" not in documented]
