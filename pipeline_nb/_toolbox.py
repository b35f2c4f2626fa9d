"""A step's ``tools:`` resolved into Tools, checked at plan time, and how its loop runs them.

An MCP server's tools are known only once it starts, in the run: what they reveal then (a name
two tools have, a ``tool_choice`` that names none of them) fails the step (``mcp_server_failed``),
where the plan's own checks raise PipelineSpecError.

Each entry of ``tools:`` is a kernel name or ``module:attr`` of a function (its schema derived
from the signature), a mapping ``{name, description, input_schema, call}``, a server tool
(``web_search``, ``web_fetch``, ``code_execution``, or ``{server: web_search, ...options}``), or
a workspace tool (``read_file``, ...), or ``{skills: folder}`` (the ``skill`` tool), or an MCP server's tools
(``"mcp:NAME"``, ``{mcp: NAME, tools: [...]}``; see ``_mcp``). A kernel name shadows a built-in tool of the same name.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import PipelineSpecError
from ._llm import CancelToken
from ._llm_call import StepProblem
from ._mcp import FAILED, RunServers, mcp_tools, run_servers
from ._mcp_spec import mcp_name, whole_servers
from ._names import resolve_name
from ._spec import StepSpec
from .tools import SERVER_TOOLS, WORKSPACE_TOOLS, Tool, ToolDefinitionError, server_tool, skill_tool, \
    tool_from_function, tool_from_mapping, workspace_tools

CHOICES = ("auto", "any", "none")


@dataclass(frozen=True)
class ToolBox:
    """A step's tools, resolved, and how its loop runs them."""

    tools: Mapping[str, Tool]
    choice: str | None = None
    """``tool_choice``: auto, any, none, or a tool's name (None: the API's default, auto)."""
    max_rounds: int = 10
    errors: str = "return"
    max_parallel: int = 4

    def api_params(self) -> dict[str, Any]:
        """``tools`` and ``tool_choice`` as the Messages API takes them."""
        params: dict[str, Any] = {"tools": [tool.to_api() for tool in self.tools.values()]}
        if self.choice in CHOICES:
            params["tool_choice"] = {"type": self.choice}
        elif self.choice:
            params["tool_choice"] = {"type": "tool", "name": self.choice}
        return params


class StepTools:
    """The tools of a run's llm steps (one Executor's), each step's resolved once, when it first runs."""

    def __init__(self, namespace: Mapping[str, Any], base_dir: Path | None, cancel: CancelToken) -> None:
        self.namespace, self.base_dir, self.cancel = namespace, base_dir, cancel
        self._boxes: dict[str, ToolBox | None] = {}
        self._steps: dict[str, threading.Lock] = {}
        """One lock per step: its items wait for one resolution, other steps do not wait at all."""
        self._lock = threading.Lock()

    def of(self, step: StepSpec) -> ToolBox | None:
        """``step``'s tools. The plan checked them, but the MCP servers they use start now (once a
        run): StepProblem if one does not, RenderInterrupted on an interrupt (see :func:`toolbox`)."""
        if not step.tools:
            return None
        with self._lock:
            lock = self._steps.setdefault(step.id, threading.Lock())
        with lock:  # not the shared lock: a server may take its timeout to start
            if step.id not in self._boxes:
                self._boxes[step.id] = toolbox(step, self.namespace, self.base_dir, run_servers(self.cancel))
            return self._boxes[step.id]


def toolbox(step: StepSpec, namespace: Mapping[str, Any], base_dir: Path | None,
            servers: RunServers | None = None) -> ToolBox | None:
    """The step's tools, or None when it has none; a PipelineSpecError (at ``tools:``) for an entry
    that cannot be resolved or described, two tools with one name, or a ``tool_choice`` that names none.

    ``servers``: the run's MCP servers, started as the step needs them (see ``_mcp.mcp_tools``:
    StepProblem if one does not start, RenderInterrupted on an interrupt); a clash or a
    ``tool_choice`` their tools reveal is a StepProblem. Without (the plan), a ``tool_choice``
    ``SERVER__tool`` of a server the step takes whole (``"mcp:SERVER"``) waits for the run."""
    if not step.tools:
        return None
    workdir = _workdir(step, base_dir)
    tools: dict[str, Tool] = {}
    first: dict[str, int] = {}
    for index, entry in enumerate(step.tools):
        resolved = _resolve(step, index, entry, namespace, workdir, servers)
        for tool in resolved if isinstance(resolved, tuple) else (resolved,):  # an MCP server gives several
            if tool.name in tools:
                message = (f"tools[{index}]: two tools are named {tool.name!r} (tools[{first[tool.name]}] and "
                           f"tools[{index}])")
                if servers is not None:  # the plan checked the rest: an MCP server's tools clash
                    raise StepProblem(FAILED, f"{message}; take the MCP server's tools by name ({{mcp: SERVER, tools: "
                                      "[...]}), leaving that one out, or rename the other tool", "tools")
                raise PipelineSpecError(message, location=step.where("tools"), step_id=step.id,
                                        hint="give each tool its own name (name: in a mapping)")
            tools[tool.name], first[tool.name] = tool, index
    choice = _check_choice(step, tools, running=servers is not None)
    if not tools:  # only MCP servers that did not start (optional ones), or whose tools the plan cannot know
        return None
    return ToolBox(tools, choice, step.max_tool_rounds, step.tool_errors, step.max_parallel_tools)


def _check_choice(step: StepSpec, tools: Mapping[str, Tool], running: bool) -> str | None:
    """The step's ``tool_choice``, checked: one that names none of ``tools`` is a PipelineSpecError at
    plan time, unless it may name a tool of a server taken whole, which only the run knows; in the run,
    a StepProblem, unless that server is an optional one that did not start (it gave no tools: the
    choice goes with them, and the run's warning says why)."""
    choice = step.tool_choice
    if choice is None or choice in CHOICES or choice in tools:
        return choice
    if running and any(choice.startswith(f"{server}__") and not any(n.startswith(f"{server}__") for n in tools)
                       for server in whole_servers(step.tools)):
        return None
    if running:
        raise StepProblem(FAILED, f"tool_choice {choice!r} is not one of the step's tools, as its MCP servers "
                          f"list them ({', '.join(tools) or 'none'}); name one of these, or auto, any or none",
                          "tool_choice")
    unknown = whole_servers(step.tools)
    if any(choice.startswith(f"{server}__") for server in unknown):
        return choice  # checked when that server has started and listed its tools
    close = difflib.get_close_matches(choice, [*CHOICES, *tools], n=1)
    listed = [*tools, *(f"every tool of MCP server {server!r} ({server}__...)" for server in unknown)]
    raise PipelineSpecError(
        f"tool_choice {choice!r} is not auto, any, none or one of the step's tools ({', '.join(listed) or 'none'})",
        location=step.where("tool_choice"), step_id=step.id,
        hint=f"did you mean {close[0]!r}?" if close else "name one of the step's tools")


def _resolve(step: StepSpec, index: int, entry: Any, namespace: Mapping[str, Any],
             workdir: Callable[[], Path], servers: RunServers | None) -> Tool | tuple[Tool, ...]:
    def problem(message: str, hint: str | None = None) -> PipelineSpecError:
        return PipelineSpecError(f"tools[{index}]: {message}", location=step.where("tools"), step_id=step.id,
                                 hint=hint)

    try:
        if isinstance(entry, Tool):
            return entry
        if mcp_name(entry) is not None:  # an MCP server's tools
            return mcp_tools(entry, step, index, servers)
        if isinstance(entry, Mapping):
            if "skills" in entry:
                return _skills(entry, workdir)
            if "server" in entry:
                options = {k: v for k, v in entry.items() if k != "server"}
                return server_tool(str(entry["server"]), options)
            return tool_from_mapping(entry, lambda name: resolve_name(name, namespace))
        if callable(entry):
            return tool_from_function(entry)
        name = str(entry)
        if name in namespace or ":" in name or "." in name:
            target = resolve_name(name, namespace)
            return target if isinstance(target, Tool) else tool_from_function(target, name=name.rpartition(":")[2]
                                                                              .rpartition(".")[2])
        if name in SERVER_TOOLS:
            return server_tool(name, {})
        if name in WORKSPACE_TOOLS:
            return workspace_tools(workdir())[name]
        known = [n for n, v in namespace.items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(name, [*known, *SERVER_TOOLS, *WORKSPACE_TOOLS], n=1)
        raise problem(f"no function, server tool or workspace tool is named {name!r}",
                      (f"did you mean {close[0]!r}? " if close else "")
                      + "define the function in the kernel before this cell, or name it as module:function")
    except ToolDefinitionError as exc:
        if exc.param == "skills":
            raise problem(str(exc), "see docs/yaml.md#tools (skills) for a skills folder's layout") from None
        raise problem(str(exc), "annotate every parameter, or give the tool as {name, description, "
                                "input_schema, call}") from None
    except LookupError as exc:
        raise problem(f"{entry!r} cannot be found: {exc}",
                      "define the function in the kernel before this cell, or name it as module:function") from None
    except TypeError as exc:  # e.g. a name that is not a function
        raise problem(str(exc)) from None


def _skills(entry: Mapping[str, Any], workdir: Callable[[], Path]) -> Tool:
    """``{skills: folder}`` (or a list of folders): the ``skill`` tool over them (relative to the step's workdir)."""
    given = entry.get("skills")
    folders = [given] if isinstance(given, str) else given
    if set(entry) != {"skills"} or not isinstance(folders, list) or not folders \
            or not all(isinstance(f, str) and f for f in folders):
        raise ToolDefinitionError("skill", "skills", "write a skills folder as {skills: path/to/folder} (or a list "
                                                     "of folders), e.g. {skills: .claude/skills}")
    paths = [Path(f).expanduser() for f in folders]
    return skill_tool([p if p.is_absolute() else workdir() / p for p in paths])


def _workdir(step: StepSpec, base_dir: Path | None) -> Callable[[], Path]:
    """The workspace tools' folder, checked only when one of them is used."""
    def folder() -> Path:
        path = Path(step.workdir) if step.workdir else Path.cwd()
        path = path if path.is_absolute() else (base_dir or Path.cwd()) / path
        if not path.is_dir():
            raise PipelineSpecError(f"workdir {str(path)!r} is not a folder", location=step.where("workdir"),
                                    step_id=step.id, hint="create it, or point workdir: at an existing folder")
        return path.resolve()
    return folder


def all_toolboxes(steps: Sequence[StepSpec], namespace: Mapping[str, Any],
                  base_dir: Path | None) -> dict[str, ToolBox]:
    """The toolbox of every llm step of ``steps`` that has tools, by step id."""
    boxes = {}
    for step in steps:
        if step.type == "llm" and step.tools and (box := toolbox(step, namespace, base_dir)) is not None:
            boxes[step.id] = box
    return boxes
