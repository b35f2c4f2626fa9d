"""pipeline_ex's ``claude_options`` (the options of Claude Code's agent) as llm step keys, presets
applied. A mixin of the compat translator (``compat._Translator``), shared by the claude step types.

Claude Code's tools become pipeline_nb's workspace tools confined to ``cwd`` (the step's ``workdir``)
and the API's server tools; ``max_turns`` bounds the tool rounds. MCP servers become the pipeline's
``mcp_servers``, each optional (Claude Code goes on without a server that does not start): a step's
``claude_options.mcp_servers`` (what pipeline_ex hands Claude Code) for that step, the workflow's
``mcp_servers:`` for every claude step. A step gets their tools: those its allowed_tools name
(``mcp__server``, ``mcp__server__tool``), else all of them (Claude Code's permission settings,
outside the workflow, decide which it may use; pipeline_ex's own example names none). A tool with
no safe equivalent (a shell) is refused by name when the step asks for it, and left out, with a
note, when only a preset implies it. Options that only shape Claude Code's console output are
ignored with a note: a warning (a note on the run, once per option and translation).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._compat_presets import DEFAULT_CWD, DEFAULT_MAX_TURNS, OPTIMIZATIONS, PRESETS, TOOLS, WORKSPACE
from ._compat_refs import Expressions, Path_

MODEL_ALIASES = {"sonnet": "claude-sonnet-5-5", "opus": "claude-opus-5-5", "haiku": "claude-haiku-5-5"}
"""pipeline_ex's (Claude Code's) model aliases, as model ids."""

NO_EFFECT = {"verbose": "Claude Code's console logging", "output_format": "the format of Claude Code's output "
             "(the reply's text is the same)", "debug_mode": "Claude Code's debug log", "print": "Claude Code's "
             "print mode", "telemetry_enabled": "pipeline_ex's telemetry", "cost_tracking": "pipeline_ex's cost "
             "report (pipeline_nb reports usage, and cost with defaults.pricing)", "stream_handler": "pipeline_ex's "
             "stream handlers (pipeline_nb has its own: the view, --stream, stream_handler:)", "stream_buffer_size":
             "pipeline_ex's stream buffer"}
"""claude_options that change nothing pipeline_nb does, and what each configured in pipeline_ex."""
_AGENT = {"allowed_tools", "disallowed_tools", "cwd", "max_turns", "retry_config"}
_SHELL_HINT = "pipeline_nb has no shell tool; remove {tool} from allowed_tools, or do that work in a python step"
_MCP_KEYS = ("command", "args", "env", "url", "headers")
"""What pipeline_ex hands Claude Code of a server, beside its ``type`` (``EnhancedClaudeProvider``)."""


class ClaudeOptions(Expressions):
    """``claude_options`` (with a preset, for the enhanced step types) as llm step keys; notes."""

    claude_preset: tuple[str, Path_] | None = None
    """``defaults.claude_preset`` and where it is (set by the document's translation)."""
    mcp_names: tuple[str, ...] = ()
    """The workflow's MCP servers (set by :meth:`declare_mcp_servers`), whose tools every claude step gets."""
    mcp_at: Path_ = ()
    mcp_spec: dict[str, Any] | None = None
    """The spec the servers go in (the document's, or an inline pipeline's)."""
    skills_enabled: tuple[Any, Path_] | None = None
    """The workflow's ``enable_skills`` and where it is (a step's ``claude_options.enable_skills`` wins)."""

    def declare_agent_extras(self, wf: Mapping[str, Any], at: Path_) -> None:
        """The workflow's ``enable_skills`` (honoured: every claude step gets the skills) and ``agents``
        (noted: pipeline_ex hands Claude Code only a step's ``claude_options.agents``)."""
        if "enable_skills" in wf:
            self.skills_enabled = (wf["enable_skills"], at + ("enable_skills",))
        if "agents" in wf:
            self.note(at + ("agents",), "workflow key agents", "pipeline_ex hands Claude Code the agents of a step's "
                      "claude_options only, so these configure no subagent there either (and pipeline_nb has none)")

    def declare_mcp_servers(self, servers: Any, at: Path_, spec: dict[str, Any]) -> None:
        """The workflow's ``mcp_servers:`` as the pipeline's; every claude step gets their tools. Without
        them, the servers set before stay (an inline pipeline's translator may be given its parent's)."""
        self.mcp_spec = spec
        if servers is not None:
            self.mcp_names, self.mcp_at = self.hoist_mcp_servers(servers, at), at

    def hoist_mcp_servers(self, servers: Any, at: Path_) -> tuple[str, ...]:
        """``servers`` (the workflow's, or a step's ``claude_options.mcp_servers``) put in the pipeline's
        ``mcp_servers``, each ``optional``: a server that does not start is a warning, and the steps go on
        without its tools, as Claude Code does. Their names."""
        if servers is None:
            return ()
        if not isinstance(servers, Mapping):
            self.problem(at, "mcp_servers must be a mapping of names to {type, command, args, env} or {type, url, "
                             "headers}")
            return ()
        declared: dict[str, Any] = self.__dict__.setdefault("mcp_declared", {})
        names = []
        for name, config in servers.items():
            where, new = at + (name,), ("mcp_servers", name)
            if not isinstance(config, Mapping):
                self.problem(where, f"MCP server {name!r} must be a mapping: {{type: stdio, command, args, env}} or "
                             "{type: sse or http, url, headers}")
                continue
            kind = str(config.get("type", "stdio")).lower()
            if kind not in ("stdio", "sse", "http"):
                self.problem(where + ("type",), f"MCP server {name!r}: type {kind!r} is not stdio, sse or http")
                continue
            needs = "command" if kind == "stdio" else "url"
            if not config.get(needs):
                self.problem(where, f"MCP server {name!r}: a server of type {kind} needs {needs}:")
                continue
            for key in config:
                if key not in (*_MCP_KEYS, "type"):
                    self.note(where + (key,), f"mcp_servers key {key!r}", "pipeline_ex hands Claude Code only a "
                              "server's type, command, args, env, url and headers")
            server = {**({"transport": kind} if kind != "stdio" else {}),
                      **{key: config[key] for key in _MCP_KEYS if config.get(key) not in (None, [])},  # as pipeline_ex
                      "optional": True}
            if declared.get(name, server) != server:
                self.problem(where, f"MCP server {name!r} is declared twice, differently",
                             "give one of the two another name")
                continue
            if name not in declared:
                declared[name] = server
                self.origin[new] = where
                self.origin.update({new + (key,): where + ("type" if key == "transport" else key,) for key in server
                                    if key != "optional"})
                self.origin[new + ("optional",)] = where
            names.append(name)
        if declared and self.mcp_spec is not None:
            self.put(self.mcp_spec, (), "mcp_servers", declared, self.origin.get(("mcp_servers",), at))
        return tuple(names)

    def mcp_tools(self, servers: tuple[str, ...], allowed: list[str], banned: list[str], allowed_at: Path_,
                  banned_at: Path_) -> list[Any]:
        """The MCP tools entries of a claude step that may use ``servers``: the servers and tools ``allowed``
        names (``mcp__server``, ``mcp__server__tool``), else every server; less the servers ``banned`` names."""
        named = [tool for tool in allowed if tool.startswith("mcp__") and tool not in banned]
        dropped = set()
        for tool in (t for t in banned if t.startswith("mcp__")):
            server, _, one = tool[5:].partition("__")
            if one:
                self.problem(banned_at, f"claude_options.disallowed_tools: {tool} cannot be taken away alone",
                             f"a step gets an MCP server's tools all, or by name: list those it may use in "
                             f"allowed_tools (mcp__{server}__...) instead")
            dropped.add(server)
        for tool in named:
            if tool[5:].partition("__")[0] not in servers:
                self.problem(allowed_at, f"claude_options.allowed_tools: {tool} names none of the step's MCP servers "
                             f"({', '.join(servers) or 'none'})")
        if not named:
            return [f"mcp:{name}" for name in servers if name not in dropped]
        whole = [tool[5:] for tool in named if "__" not in tool[5:]]
        some: dict[str, list[str]] = {}
        for server, _, one in (tool[5:].partition("__") for tool in named if "__" in tool[5:]):
            some.setdefault(server, []).append(one)
        entries: list[Any] = [f"mcp:{name}" for name in dict.fromkeys(whole) if name not in dropped]
        return entries + [{"mcp": name, "tools": tools} for name, tools in some.items()
                          if name not in whole and name not in dropped]

    def preset_of(self, raw: Mapping[str, Any], at: Path_, default: str) -> tuple[str, Path_] | None:
        """The preset of an enhanced claude step: its own ``preset:``, ``defaults.claude_preset``, else
        ``default``; with where it was named (the step's type for the default). None if unknown."""
        name, where = raw.get("preset"), at + ("preset",)
        if name is None:
            name, where = self.claude_preset or (default, at + ("type",))
        if name not in PRESETS:
            self.problem(where, f"preset {name!r} is not one of pipeline_ex's presets",
                         f"use one of: {', '.join(PRESETS)}")
            return None
        return name, where

    def claude_options(self, options: Any, at: Path_, new: Path_, out: dict[str, Any], *,
                       preset: tuple[str, Path_] | None = None, smart: bool = False,
                       step_retries: bool = False) -> None:
        """Translate ``options`` (over ``defaults.claude_options``, over ``preset``'s options).
        ``smart``: claude_smart's preset optimizations too. ``step_retries``: the step type retries
        itself (claude_robust), so a ``retry_config`` here is not what counts."""
        if not isinstance(options, Mapping):
            self.problem(at, "claude_options must be a mapping")
            return
        merged = {**self.options, **{k: (v, at + (k,)) for k, v in options.items()}}
        implied: set[str] = set()
        user_tools = merged.get("allowed_tools")
        if preset is not None:
            name, where = preset
            for key, value in PRESETS[name].items():
                if key not in merged:
                    merged[key] = (value, where)
                    implied.add(key)
                elif key == "retry_config" and isinstance(merged[key][0], Mapping):
                    merged[key] = ({**value, **merged[key][0]}, merged[key][1])
            if smart:
                append, tools = OPTIMIZATIONS[name]
                if "append_system_prompt" not in merged:
                    merged["append_system_prompt"] = (append, where)
                    implied.add("append_system_prompt")
                written = user_tools[0] if user_tools and isinstance(user_tools[0], list) else []
                if name != "development" and user_tools is not None and written != tools:
                    self.note(user_tools[1], f"claude_options.allowed_tools of a claude_smart step with preset "
                              f"{name!r}", f"the preset gives it {', '.join(tools or []) or 'no tools'} instead, "
                              "as pipeline_ex does")
                merged["allowed_tools"] = (list(dict.fromkeys(written + tools)) if name == "development" else tools,
                                           user_tools[1] if user_tools else where)
        system, per_attempt, own, skills = [], None, (), self.skills_enabled
        for key, (value, where) in merged.items():
            if key in ("model", "fallback_model") and isinstance(value, str):
                self.put(out, new, key, MODEL_ALIASES.get(value, value), where)
            elif key == "max_tokens":
                self.put(out, new, "max_tokens", value, where)
            elif key in ("system_prompt", "append_system_prompt") and isinstance(value, str):
                system.append((key, value if key in implied else self.text(value, where), where))
            elif key in ("timeout_ms", "timeout_seconds") and isinstance(value, (int, float)) and value > 0:
                per_attempt = (value / 1000 if key == "timeout_ms" else value, where)
            elif key in ("async_streaming", "pass_through_streaming") and isinstance(value, bool):
                self.put(out, new, "stream", value, where)
            elif key == "mcp_servers":  # what pipeline_ex hands Claude Code: this step's servers
                own = self.hoist_mcp_servers(value, where)
            elif key == "enable_skills":
                skills = (value, where)
            elif key == "agents":
                self.problem(where, "claude_options.agents is not supported", "pipeline_nb has no subagents: write "
                             "each agent's work as a step of its own, its prompt as that step's system_prompt", key=True)
            elif key in NO_EFFECT or key in _AGENT:
                if key in NO_EFFECT and key not in implied:
                    self.note(where, f"claude_options.{key}", NO_EFFECT[key])
            else:
                hint = ("options that translate: model, fallback_model, max_tokens, system_prompt, append_system_prompt, "
                        "timeout_ms, timeout_seconds, async_streaming, pass_through_streaming, allowed_tools, "
                        "disallowed_tools, cwd, max_turns, retry_config, mcp_servers, enable_skills")
                self.problem(where, f"claude_options.{key} is not supported" + (
                    f" with value {value!r}" if key in ("system_prompt", "timeout_ms", "model") else ""), hint, key=True)
        if system:
            system.sort(key=lambda s: s[0] != "system_prompt")
            self.put(out, new, "system", "\n\n".join(t for _, t, _ in system), system[0][2], system[0][2])
        attempts = 1
        if "retry_config" in merged and not step_retries:
            attempts = self.provider_retries(merged["retry_config"], out, new, implied="retry_config" in implied)
        if per_attempt is not None:
            # pipeline_ex bounds each attempt; pipeline_nb's timeout bounds the step, retries included
            self.put(out, new, "timeout", round(per_attempt[0] * attempts, 3), per_attempt[1])
        written = user_tools[0] if user_tools and isinstance(user_tools[0], list) else []
        self.agent_tools(merged, written, new, out, preset, tuple(dict.fromkeys(self.mcp_names + own)), skills)

    def provider_retries(self, config: tuple[Any, Path_], out: dict[str, Any], new: Path_, implied: bool) -> int:
        """``claude_options.retry_config`` (pipeline_ex's enhanced provider: ``max_retries`` attempts
        in all, 1 s apart growing linearly or exponentially) as retries; the attempts it allows."""
        value, where = config
        if not isinstance(value, Mapping):
            self.problem(where, "retry_config must be a mapping (max_retries, backoff_strategy, retry_on)")
            return 1
        attempts = value.get("max_retries", 0)
        if not isinstance(attempts, int) or attempts < 0:
            self.problem(where, f"retry_config.max_retries must be a whole number >= 0, got {attempts!r}")
            return 1
        attempts = max(attempts, 1) if value.get("retry_on", ["timeout"]) else 1
        self.retries(attempts - 1, value.get("backoff_strategy", "exponential"), 1.0, out, new, where)
        if value.get("retry_on") and not implied:
            self.note(where, "retry_config.retry_on", "pipeline_nb retries the failures that can pass (rate limits, "
                      "overloads, 5xx, timeouts, dropped connections), whatever their message says")
        return attempts

    def retries(self, count: int, strategy: Any, base: float, out: dict[str, Any], new: Path_, where: Path_) -> None:
        """``retries:`` and ``retry_backoff:`` for ``count`` retries waiting ``base`` seconds, then more."""
        if strategy not in ("exponential", "linear", "fixed"):
            self.problem(where, f"backoff_strategy {strategy!r} is not linear, exponential or fixed")
            return
        self.put(out, new, "retries", count, where)
        if count:
            # pipeline_nb backs off exponentially up to a cap: a cap of count x base makes linear the same for
            # up to 3 retries, and a cap of base makes it fixed
            cap = {"exponential": base * 2 ** (count - 1), "linear": base * count, "fixed": base}[strategy]
            self.put(out, new, "retry_backoff", [base, max(cap, base)], where)

    def agent_tools(self, merged: dict[str, tuple[Any, Path_]], written: list[str], new: Path_, out: dict[str, Any],
                    preset: tuple[str, Path_] | None, servers: tuple[str, ...] = (),
                    skills: tuple[Any, Path_] | None = None) -> None:
        """allowed_tools minus disallowed_tools as pipeline_nb tools, confined to ``cwd``; max_turns.
        ``written``: the tools the workflow itself names (a preset's others may be left out); ``servers``: the
        MCP servers the step may use; ``skills``: ``enable_skills`` and where it is."""
        allowed, allowed_at = merged.get("allowed_tools", ([], ()))
        banned, banned_at = merged.get("disallowed_tools", ([], ()))
        for value, where, key in ((allowed, allowed_at, "allowed_tools"), (banned, banned_at, "disallowed_tools")):
            if value is not None and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
                self.problem(where, f"claude_options.{key} must be a list of tool names, got {value!r}")
                return
        tools, dropped = [], []
        for tool in allowed or []:
            if tool == "Skill" and tool not in (banned or []) and (skills is None or skills[0] is not False):
                skills = (True, allowed_at + ((written.index(tool),) if tool in written else ()))  # Claude Code's skills
            if tool in (banned or []) or tool.startswith("mcp__") or tool == "Skill":  # an MCP server's: below
                continue
            if TOOLS.get(tool, "") == "":  # no safe equivalent
                if tool in written:
                    self.problem(allowed_at + (written.index(tool),), f"claude_options.allowed_tools: {tool} has no "
                                 "safe equivalent in pipeline_nb", _SHELL_HINT.format(tool=tool))
                else:
                    dropped.append(tool)
            elif TOOLS[tool] is not None:
                tools.append(TOOLS[tool])
            else:
                dropped.append(tool)
        if dropped:
            by = f"preset {preset[0]!r}" if preset else "these claude_options"
            self.note(allowed_at, f"{', '.join(dropped)} tool{'s' if len(dropped) > 1 else ''} of {by}",
                      "pipeline_nb has no shell, sub-agent or to-do tool; the step gets the others")
        tools = list(dict.fromkeys(tools))
        mcp = self.mcp_tools(servers, allowed or [], banned or [], allowed_at, banned_at)
        found = self.skill_folders(skills, merged.get("cwd", (DEFAULT_CWD, ()))[0])
        if not tools and not mcp and not found:
            return
        self.put(out, new, "tools", tools + mcp + found, allowed_at or self.mcp_at or (skills or (None, ()))[1])
        turns, turns_at = merged.get("max_turns", (DEFAULT_MAX_TURNS, allowed_at))
        if not isinstance(turns, int) or turns < 1:
            self.problem(turns_at, f"max_turns must be a whole number >= 1, got {turns!r}")
        else:
            # Claude Code counts every reply, the final answer too; max_tool_rounds counts the ones that call tools
            self.put(out, new, "max_tool_rounds", max(turns - 1, 1), turns_at)
        if WORKSPACE.intersection(tools):
            cwd, cwd_at = merged.get("cwd", (DEFAULT_CWD, allowed_at))
            self.workdir(cwd, cwd_at, new, out)

    def skill_folders(self, enabled: tuple[Any, Path_] | None, cwd: Any) -> list[dict[str, Any]]:
        """``enable_skills: true`` as a ``{skills: [...]}`` tools entry: the project's skills (``.claude/skills``
        in the step's cwd) and the user's (``~/.claude/skills``), those that exist, as Claude Code finds them."""
        if enabled is None or enabled[0] is False:
            return []
        value, at = enabled
        if value is not True:
            self.problem(at, f"enable_skills must be true or false, got {value!r}")
            return []
        base = Path(cwd if isinstance(cwd, str) and cwd.strip() else DEFAULT_CWD).expanduser()
        project = (base if base.is_absolute() else Path.cwd() / base) / ".claude" / "skills"
        folders = [folder for folder in (project, Path.home() / ".claude" / "skills") if folder.is_dir()]
        if not folders:
            self.note(at, "enable_skills", f"no skills folder exists ({project}, ~/.claude/skills), so the steps have "
                      "no skills, as Claude Code would find none")
            return []
        return [{"skills": [str(folder) for folder in folders]}]

    def workdir(self, cwd: Any, at: Path_, new: Path_, out: dict[str, Any]) -> None:
        """``cwd`` as the step's ``workdir``: relative to the working directory, as pipeline_ex reads it.
        A relative folder that does not exist yet is created, as pipeline_ex creates its workspace."""
        if not isinstance(cwd, str) or not cwd.strip():
            self.problem(at, f"claude_options.cwd must be a folder's path, got {cwd!r}")
            return
        folder = Path(cwd).expanduser()
        if not folder.is_absolute():
            folder = Path.cwd() / folder
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.problem(at, f"cannot create the folder {cwd!r} for Claude's tools: {exc.strerror or exc}")
                return
        self.put(out, new, "workdir", str(folder), at)
