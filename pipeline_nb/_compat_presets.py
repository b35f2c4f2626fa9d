"""pipeline_ex's Claude Code vocabulary as data: its option presets (``Pipeline.OptionBuilder``) and
its tool names, each with the pipeline_nb tool that does the same thing (or none)."""

from __future__ import annotations

from typing import Any

_DEVELOPMENT_TOOLS = ["Write", "Edit", "Read", "Bash", "Search", "Glob", "Grep"]

PRESETS: dict[str, dict[str, Any]] = {
    "development": {
        "max_turns": 20, "verbose": True, "output_format": "stream_json", "allowed_tools": _DEVELOPMENT_TOOLS,
        "debug_mode": True, "telemetry_enabled": True, "cost_tracking": True, "model": "sonnet",
        "retry_config": {"max_retries": 3, "backoff_strategy": "exponential", "retry_on": ["timeout", "api_error"]},
        "timeout_ms": 300_000,
        "system_prompt": "You are a helpful development assistant. Focus on writing clean, maintainable code.",
    },
    "production": {
        "max_turns": 10, "verbose": False, "output_format": "json", "allowed_tools": ["Read"], "debug_mode": False,
        "telemetry_enabled": True, "cost_tracking": True, "model": "opus", "fallback_model": "sonnet",
        "retry_config": {"max_retries": 2, "backoff_strategy": "linear", "retry_on": ["timeout"]},
        "timeout_ms": 120_000,
        "system_prompt": "You are a production assistant. Prioritize safety and reliability.",
    },
    "analysis": {
        "max_turns": 5, "verbose": True, "output_format": "json", "allowed_tools": ["Read", "Glob", "Grep"],
        "debug_mode": False, "telemetry_enabled": True, "cost_tracking": True, "model": "opus",
        "retry_config": {"max_retries": 2, "backoff_strategy": "exponential", "retry_on": ["timeout", "api_error"]},
        "timeout_ms": 180_000,
        "system_prompt": "You are a code analysis expert. Provide detailed, structured analysis with specific "
                         "recommendations.",
    },
    "chat": {
        "max_turns": 15, "verbose": False, "output_format": "text", "allowed_tools": [], "debug_mode": False,
        "telemetry_enabled": False, "cost_tracking": True,
        "retry_config": {"max_retries": 1, "backoff_strategy": "linear", "retry_on": ["timeout"]},
        "timeout_ms": 60_000,
        "system_prompt": "You are a helpful assistant. Provide clear, concise responses.",
    },
    "test": {
        "max_turns": 3, "verbose": True, "output_format": "json", "allowed_tools": ["Read"], "debug_mode": True,
        "telemetry_enabled": False, "cost_tracking": False,
        "retry_config": {"max_retries": 1, "backoff_strategy": "linear", "retry_on": []},
        "timeout_ms": 30_000,
        "system_prompt": "You are a test assistant. Provide predictable, structured responses.",
    },
}
"""Each preset's options (pipeline_ex ``OptionBuilder.build_<name>_options``); a step's own
``claude_options`` override them, a ``retry_config`` key by key."""

OPTIMIZATIONS: dict[str, tuple[str, list[str] | None]] = {
    "development": ("Use detailed logging and provide comprehensive explanations.", _DEVELOPMENT_TOOLS),
    "production": ("Prioritize safety, security, and minimal resource usage.", ["Read"]),
    "analysis": ("Focus on thorough analysis and provide structured, actionable recommendations.",
                 ["Read", "Glob", "Grep"]),
    "chat": ("Provide helpful, concise responses suitable for conversation.", []),
    "test": ("Provide predictable, deterministic responses suitable for testing.", ["Read"]),
}
"""What claude_smart adds on top (``OptionBuilder.apply_preset_optimizations``): an
``append_system_prompt`` when the step has none, and its tools: development adds its tools to the
step's, every other preset replaces the step's ``allowed_tools`` with its own."""

TOOLS: dict[str, str | None] = {
    "Read": "read_file", "NotebookRead": "read_file", "Write": "write_file", "Edit": "edit_file",
    "MultiEdit": "edit_file", "LS": "list_files", "Glob": "list_files", "Grep": "search_files",
    "Search": "search_files", "WebSearch": "web_search", "WebFetch": "web_fetch",
    "TodoRead": None, "TodoWrite": None,
}
"""Claude Code's tools that translate, as pipeline_nb tools (the workspace tools, confined to the
step's ``workdir``, and the API's server tools). None: Claude's own to-do list, which touches no file
and is left out. Any other tool (Bash, Task, NotebookEdit, ...) has no safe equivalent; Skill and
mcp__... are the step's skills and MCP servers (see _compat_agent)."""

WORKSPACE = frozenset({"read_file", "write_file", "edit_file", "list_files", "search_files"})

DEFAULT_CWD = "./workspace"
"""Claude Code's working directory when a step sets no ``cwd`` (pipeline_ex's workspace)."""
DEFAULT_MAX_TURNS = 3
"""pipeline_ex's ``max_turns_default`` for a claude step without a preset."""
