"""pipeline_ex's other model steps: claude_smart, claude_robust, claude_session, claude_extract, gemini
(and the claude_options of Claude Code's agent: allowed_tools, cwd, max_turns). A mixin of the compat translator: one method per step type, named after it."""

from __future__ import annotations

from ._compat_refs import Expressions


class ClaudeFamily(Expressions):
    """Step types that translate here, by the keys each may have."""

    STEP_KEYS: dict[str, set[str]] = {}
