"""pipeline_ex's other model steps: claude_smart, claude_robust, claude_session, claude_extract,
gemini and gemini_instructor. A mixin of the compat translator: one method per step type, named
after it. Claude Code's options (presets, tools, cwd, max_turns) come from ``_compat_agent``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._compat_agent import ClaudeOptions
from ._compat_extract import DEFAULT_SUMMARY_LENGTH, FORMATS, changes_text
from ._compat_refs import Path_, _Target

_AGENT_KEYS = {"prompt", "preset", "claude_options"}
_GEMINI_KEYS = {"prompt", "model", "token_budget", "functions", "timeout_ms"}
GEMINI_MODEL = "gemini-2.5-flash-lite"
"""The model of a gemini step that names none (pipeline_ex's default was the preview of this one)."""
GEMINI_MAX_TOKENS = 8192
"""max_tokens of a gemini step without token_budget.max_output_tokens (pipeline_ex sends no limit)."""
INSTRUCTOR_SCHEMA = {"type": "object", "required": ["text"], "properties": {
    "text": {"type": "string", "description": "The response text"},
    "analysis": {"type": "string", "description": "Analysis or reasoning"},
    "summary": {"type": "string", "description": "Brief summary"}}}
"""The reply gemini_instructor asks InstructorLite for."""
_ROBUST_RETRY = {"max_retries": 3, "backoff_strategy": "exponential", "base_delay_ms": 1000,
                 "retry_conditions": ["timeout", "rate_limit", "temporary_error"]}
_SESSION_IGNORED = {"persist", "continue_on_restart", "checkpoint_frequency", "checkpoint_interval",
                    "max_session_turns", "session_id"}


PIPELINE_EX_TOOLS = frozenset({"get_wan_ip"})
"""The tools of pipeline_ex's own registry (lib/pipeline/tools/implementations)."""
BASIC_INSTRUCTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "The response text"},
                   "reasoning": {"type": "string", "description": "Your reasoning process"}},
    "required": ["text"],
}
"""The reply pipeline_ex's gemini_instructor asks for when none of its functions is a registered tool."""


class ClaudeFamily(ClaudeOptions):
    """claude_smart, claude_robust, claude_session, claude_extract, gemini and gemini_instructor."""

    STEP_KEYS: dict[str, set[str]] = {
        "claude_smart": _AGENT_KEYS | {"environment_aware", "options"},
        "claude_robust": _AGENT_KEYS | {"retry_config"},
        "claude_session": _AGENT_KEYS | {"session_config"},
        "claude_extract": _AGENT_KEYS | {"extraction_config", "schema"},
        "gemini": _GEMINI_KEYS,
        "gemini_instructor": _GEMINI_KEYS,
    }
    """The keys of each step type this mixin translates (beside every step's name, type, condition
    and output_to_file)."""

    gemini_model: tuple[str, Path_] | None = None
    """``defaults.gemini_model`` and where it is (set by the document's translation)."""
    gemini_token_budget: tuple[Any, Path_] | None = None
    """``defaults.gemini_token_budget`` and where it is (set by the document's translation)."""

    def agent_step(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any], preset: str,
                   **options: bool) -> _Target:
        """An llm step calling Claude with ``raw``'s prompt and claude_options over its preset."""
        self.put(out, new, "type", "llm", at + ("type",))
        self.put(out, new, "provider", "claude", at + ("type",))
        self.step_prompt(raw, at, new, out)
        self.claude_options(raw.get("claude_options", {}), at + ("claude_options",), new, out,
                            preset=self.preset_of(raw, at, preset), **options)
        return _Target(out.get("id") or "", "text")

    def step_prompt(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> None:
        if "prompt" not in raw:
            if "conversation" not in raw:  # that key's refusal says what to write instead
                self.problem(at, f"{raw.get('type')} step needs a prompt:")
            return
        prompt, where, block = self.prompt(raw["prompt"], at + ("prompt",))
        self.put(out, new, "prompt", prompt, where, block)

    def claude_smart(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        if "options" in raw:
            self.note(at + ("options",), "claude_smart options:", "pipeline_ex's claude_smart step reads "
                      "claude_options:, not options:, so it ignores this key; so does pipeline_nb")
        return self.agent_step(raw, at, new, out, "development", smart=True)

    def claude_robust(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        target = self.agent_step(raw, at, new, out, "production", step_retries=True)
        config, where = raw.get("retry_config", {}), at + ("retry_config",)
        if not isinstance(config, Mapping):
            self.problem(where, "retry_config must be a mapping")
            return target
        config = {**_ROBUST_RETRY, **config}
        count, base = config["max_retries"], config["base_delay_ms"]
        if not isinstance(count, int) or count < 0 or not isinstance(base, (int, float)) or base < 0:
            self.problem(where, "retry_config.max_retries and base_delay_ms must be whole numbers >= 0")
            return target
        count = count if config["retry_conditions"] else 0
        self.retries(count, config["backoff_strategy"], base / 1000, out, new, where)
        if "timeout" in out:  # the step's timeout covers every attempt; pipeline_ex's covers one
            self.put(out, new, "timeout", round(out["timeout"] * (count + 1), 3), self.origin[new + ("timeout",)])
        if "retry_conditions" in raw.get("retry_config", {}):
            self.note(where + ("retry_conditions",), "retry_config.retry_conditions",
                      "pipeline_nb retries the failures that can pass (rate limits, overloads, 5xx, timeouts, "
                      "dropped connections), whatever their message says")
        action = config.get("fallback_action", "graceful_degradation")
        self.note(where + ("fallback_action",) if "fallback_action" in config else at + ("type",),
                  "claude_robust fallback_action", f"pipeline_ex's claude_robust answers with a placeholder text "
                  f"({action}) when every attempt failed; here the step fails instead, after trying its "
                  "fallback_model when it has one (later steps can go on with continue_on_error)")
        return target

    def claude_session(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        target = self.agent_step(raw, at, new, out, "analysis")
        config, where = raw.get("session_config", {}), at + ("session_config",)
        if not isinstance(config, Mapping):
            self.problem(where, "session_config must be a mapping")
            return target
        name = config.get("session_name", raw.get("name"))
        sessions: dict[Any, str] = self.__dict__.setdefault("sessions", {})
        if name in sessions:
            self.put(out, new, "continue", sessions[name], where + ("session_name",) if "session_name" in config
                     else at + ("name",))
        if target.id:
            sessions[name] = target.id
        for key in config:
            if key in _SESSION_IGNORED or key not in ("session_name", "description"):
                self.note(where + (key,), f"session_config.{key}", "a session lasts one run here: steps of one "
                          "session_name continue one conversation (continue:), and nothing is saved between runs")
        return target

    def claude_extract(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        config, where = raw.get("extraction_config", {}), at + ("extraction_config",)
        if "schema" in raw:
            self.note(at + ("schema",), "claude_extract schema:", "pipeline_ex's claude_extract does not read it")
        if not isinstance(config, Mapping):
            self.problem(where, "extraction_config must be a mapping")
            config = {}
        form, ops = config.get("format", "text"), config.get("post_processing", [])
        length = config.get("max_summary_length", DEFAULT_SUMMARY_LENGTH)
        if form not in FORMATS:
            self.problem(where + ("format",), f"extraction format {form!r} is not one of {', '.join(FORMATS)}")
        if not (isinstance(ops, list) and all(isinstance(op, str) for op in ops)):
            self.problem(where + ("post_processing",), "post_processing must be a list of operation names")
            ops = []
        if not isinstance(length, int) or length < 1:
            self.problem(where + ("max_summary_length",), "max_summary_length must be a whole number >= 1")
        for key in ("include_metadata", "use_content_extractor", "output_format"):
            if config.get(key):
                self.note(where + (key,), f"extraction_config.{key}", "the step gives the extracted text, without "
                          "pipeline_ex's metadata fields, and its live content extractor returns the text unchanged")
        if not changes_text(form, ops):
            return self.agent_step(raw, at, new, out, "analysis")
        return self.extracting_pipeline(raw, at, new, out, {"format": form, "post_processing": ops,
                                                            "max_summary_length": length})

    def extracting_pipeline(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any],
                            args: dict[str, Any]) -> _Target:
        """A pipeline step of two: the reply, then :func:`pipeline_nb._compat_extract.extract` of it.
        Its ``.text`` is the extracted text. The child sees the prompt and system as inputs."""
        where = at + ("extraction_config",)
        self.put(out, new, "type", "pipeline", at + ("type",))
        child_at = new + ("pipeline", "steps", 0)
        reply: dict[str, Any] = {}
        self.put(reply, child_at, "id", "reply", at + ("name",))
        self.agent_step(raw, at, child_at, reply, "analysis")
        inputs = {}
        for key in ("prompt", "system"):
            if key in reply:
                self.put(inputs, new + ("inputs",), key, reply[key], self.origin[child_at + (key,)])
                if (child_at + (key,)) in self.blocks:
                    self.blocks[new + ("inputs", key)] = self.blocks.pop(child_at + (key,))
                self.put(reply, child_at, key, f"{{{{ {key} }}}}", self.origin[child_at + (key,)])
        self.put(out, new, "inputs", inputs, at + ("prompt",) if "prompt" in raw else at)
        extracted = {"id": "extracted", "type": "python", "call": "pipeline_nb._compat_extract:extract",
                     "args": {"text": "{{ steps.reply.text }}", **args}}
        for key in extracted:
            self.origin[new + ("pipeline", "steps", 1, key)] = where
        self.put(out, new, "pipeline", {"steps": [reply, extracted]}, at + ("type",))
        return _Target(out.get("id") or "", "text")

    def gemini(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        self.gemini_call(raw, at, new, out, GEMINI_MODEL)
        if "functions" in raw:
            self.note(at + ("functions",), "gemini functions:", "pipeline_ex's Gemini provider sends no tools (its "
                      "query ignores them), so the step is one plain call, as here")
        budget, budget_at = self.token_budget(raw, at)
        if isinstance(budget, Mapping):
            for key, value in budget.items():
                if key == "max_output_tokens":
                    self.put(out, new, "max_tokens", value, budget_at + (key,))
                elif key in ("temperature", "top_p", "top_k"):
                    out.setdefault("params", {})[key] = value
                    self.origin[new + ("params",)] = self.origin[new + ("params", key)] = budget_at + (key,)
                else:
                    self.note(budget_at + (key,), f"token_budget.{key}", "pipeline_ex's Gemini provider reads only "
                              "max_output_tokens, temperature, top_p and top_k")
        elif budget is not None:
            self.problem(budget_at, "token_budget must be a mapping")
        if "max_tokens" not in out:
            self.put(out, new, "max_tokens", GEMINI_MAX_TOKENS, at + ("type",))
        return _Target(out.get("id") or "", "text")

    def gemini_instructor(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any]) -> _Target:
        self.gemini_call(raw, at, new, out, "gemini-2.5-flash")
        schema = INSTRUCTOR_SCHEMA
        if "functions" in raw:
            schema = self.instructor_functions(raw["functions"], at + ("functions",))
        if self.token_budget(raw, at)[0] is not None:
            self.note(at + ("token_budget",) if "token_budget" in raw else at, "gemini_instructor token_budget",
                      "pipeline_ex's gemini_instructor always asks for 2,048 tokens at temperature 0.7, as here")
        # what pipeline_ex's gemini_instructor sends, whatever the step says
        self.put(out, new, "max_tokens", 2048, at + ("type",))
        self.put(out, new, "params", {"temperature": 0.7}, at + ("type",))
        self.put(out, new, "output_schema", schema, at + ("type",))
        return _Target(out.get("id") or "", "json")

    def instructor_functions(self, names: Any, at: Path_) -> dict[str, Any]:
        """The reply's schema for gemini_instructor's ``functions:``. pipeline_ex looks each name up in
        its own (Elixir) tool registry and, finding none, asks for its basic schema {text, reasoning}:
        so does this. A name of a tool its registry has cannot be called here: refused."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.problem(at, "functions must be a list of function names")
            return BASIC_INSTRUCTOR_SCHEMA
        registered = [n for n in names if n in PIPELINE_EX_TOOLS]
        if registered:
            self.problem(at, f"gemini_instructor functions: {registered[0]!r} is a tool of pipeline_ex's own "
                         "registry, which pipeline_nb does not have", "write it as a python tool (tools:) on a "
                         "claude step", key=True)
        else:
            self.note(at, "gemini_instructor functions:", "pipeline_ex looks them up in its own tool registry "
                      f"and, finding none of {', '.join(names)}, asks for its basic reply {{text, reasoning}}, as here")
        return BASIC_INSTRUCTOR_SCHEMA

    def gemini_call(self, raw: Mapping[str, Any], at: Path_, new: Path_, out: dict[str, Any], model: str) -> None:
        self.put(out, new, "type", "llm", at + ("type",))
        self.put(out, new, "provider", "gemini", at + ("type",))
        self.step_prompt(raw, at, new, out)
        if "model" in raw:
            self.put(out, new, "model", raw["model"], at + ("model",))
        elif self.gemini_model is not None:
            self.put(out, new, "model", self.gemini_model[0], self.gemini_model[1])
        else:
            self.put(out, new, "model", model, at + ("type",))
        timeout = raw.get("timeout_ms")
        if isinstance(timeout, (int, float)) and timeout > 0:
            self.put(out, new, "timeout", timeout / 1000, at + ("timeout_ms",))
        elif timeout is not None:
            self.problem(at + ("timeout_ms",), "timeout_ms must be milliseconds > 0")

    def token_budget(self, raw: Mapping[str, Any], at: Path_) -> tuple[Any, Path_]:
        """The step's token_budget (else ``defaults.gemini_token_budget``) and where it is."""
        if "token_budget" in raw:
            return raw["token_budget"], at + ("token_budget",)
        return self.gemini_token_budget or (None, at)
