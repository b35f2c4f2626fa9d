"""MCP servers during a run: each starts when a step that uses it resolves its tools, and stops
when the run ends.

The engine runs a pipeline's steps inside :func:`serving`: while they run, the servers they use
may start; when they return, fail or are interrupted, every server started is stopped and its
program is gone. A run's servers (:class:`RunServers`) are its own, found by the run's cancel
token (:func:`run_servers`), which the engine hands to ``serving`` and to every Executor of the
run: two runs of one spec at once never share a server. :func:`mcp_tools` turns a ``tools:``
entry into Tools. Outside a run (the plan's checks, an estimate) nothing starts, and an entry's
tools are known only by the names it lists. Inside, the server starts once per run (steps that
need it meanwhile wait for that one start) and each of its tools becomes a
:class:`~pipeline_nb.tools.Tool` named ``SERVER__tool``, its description and input schema the
server's own.

A server that does not start fails the step that uses it (the error names it, its command and
its stderr's last lines); an ``optional`` one is a warning on the run instead, and its tools are
absent. A call's result (text, images, resources, structured content) is the tool_result; an
``isError`` result is the tool's error: the model reads it, or with ``tool_errors: raise`` it
fails the step, as any tool's error does. A call is bounded by CALL_TIMEOUT, or by the step's
``timeout:`` if shorter. Secrets never show (see ``_mcp_spec.Launch``).
"""

from __future__ import annotations

import atexit
import base64
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import _attachment_kinds as kinds
from ._errors import PipelineSpecError
from ._llm import CancelToken
from ._llm_call import StepProblem
from ._mcp_session import McpFailure, McpInterrupted, McpSession, sdk_installed
from ._mcp_spec import Launch, LaunchError, McpServer, McpTools, launch, mcp_name, servers_used
from ._redact import redact
from ._templates import RenderInterrupted
from .content import Image, Text
from .tools import Tool, ToolDefinitionError, tool_from_mapping
from .tools._output import image_or_note
from .tools._tool import NAME_LIMIT

CALL_TIMEOUT = 600.0
"""Seconds one tool call may take before it is a tool error (less if the step's ``timeout:`` is)."""
FAILED = "mcp_server_failed"
"""The error type of a step whose MCP server did not start, lacks a tool the step names, or lists
a tool that cannot be offered (a bad input schema, a name another tool of the step has)."""
INSTALL = "pip install 'pipeline_nb[mcp]'"


def serving(work: Callable[[], None], specs: Iterable[Any], cancel: CancelToken, warnings: list[str]) -> None:
    """Run ``work`` (a run's steps) with the MCP servers that the steps of ``specs`` use free to
    start, as :func:`run_servers` of ``cancel`` (the run's own token: one ``serving`` at a time
    per token); stop each one started when ``work`` ends, however it ends, or at once when
    ``cancel`` is set. A failed optional server's warning is added to ``warnings`` (the run's)."""
    if not servers_used(specs):
        work()
        return
    run = RunServers(cancel, warnings)
    with _LOCK:
        _RUNS[cancel] = run
    unlink = cancel.on_cancel(run.stop_soon)
    try:
        work()
    finally:
        unlink()
        with _LOCK:
            del _RUNS[cancel]
        run.stop()


def run_servers(cancel: CancelToken) -> RunServers | None:
    """The MCP servers of the run whose cancel token is ``cancel`` (every Executor of a run holds
    it, on whatever thread its steps run); None outside a run, or for a run that uses none."""
    with _LOCK:
        return _RUNS.get(cancel)


def mcp_tools(entry: Any, step: Any, index: int, servers: RunServers | None) -> tuple[Tool, ...]:
    """The Tools of MCP ``tools:`` entry ``entry`` (at ``tools[index]`` of StepSpec ``step``).

    PipelineSpecError (the plan's) if the mcp package is missing or the entry names no declared
    server. With ``servers`` (a run's), its server is started if it is not yet: StepProblem if a
    required one does not start, lacks a tool the entry names or lists one that cannot be offered;
    RenderInterrupted if the run is interrupted meanwhile. Without (the plan), nothing starts."""
    def problem(message: str, hint: str) -> PipelineSpecError:
        return PipelineSpecError(f"tools[{index}]: {message}", location=step.where("tools"), step_id=step.id, hint=hint)

    if not sdk_installed():
        raise problem("MCP servers need the mcp package, which is not installed", INSTALL)
    if not isinstance(entry, McpTools):  # left unbound by the spec: no declaration of that name
        raise problem(f"no MCP server is named {mcp_name(entry)!r}",
                      "declare it under mcp_servers: at the top of the pipeline (an inline pipeline: sees its "
                      "parent's servers; a file: pipeline declares its own)")
    if servers is None:  # planning: nothing starts; the tools the entry lists stand for themselves
        return tuple(Tool(_api_name(entry.server.name, name), "", {"type": "object"}) for name in entry.only or ())
    try:
        started = servers.started(entry.server)
    except McpInterrupted as exc:
        raise RenderInterrupted(str(exc)) from None  # what a running step raises when its run is interrupted
    except McpFailure as exc:
        raise StepProblem(FAILED, str(exc), "tools") from None
    if started is None:  # optional, and it did not start: the warning is on the run
        return ()
    session, listing = started
    by_name = {tool["name"]: tool for tool in listing if isinstance(tool.get("name"), str)}
    missing = [name for name in entry.only or () if name not in by_name]
    if missing:
        raise StepProblem(FAILED, f"tools[{index}]: MCP server {entry.server.name!r} has no tool {missing[0]!r}; "
                          f"its tools: {', '.join(by_name) or 'none'}", "tools")
    chosen = [by_name[name] for name in entry.only] if entry.only else list(by_name.values())
    timeout = min(CALL_TIMEOUT, step.timeout) if step.timeout else CALL_TIMEOUT  # a call gets at most the step's timeout
    taken: set[str] = set()
    tools = []
    for spec in chosen:
        try:
            tools.append(_tool(session, spec, _api_name(entry.server.name, spec["name"], taken), timeout))
        except ToolDefinitionError as exc:
            raise StepProblem(FAILED, f"tools[{index}]: MCP server {entry.server.name!r} lists its tool "
                              f"{spec['name']!r} in a form that cannot be offered to the model: {exc.message}; fix "
                              f"the server, or name the tools to take ({{mcp: {entry.server.name}, tools: [...]}})",
                              "tools") from None
    return tuple(tools)


def _api_name(server: str, tool: str, taken: set[str] | None = None) -> str:
    """``SERVER__tool`` as the API takes a tool's name (letters, digits, ``_``,
    ``-``, cut to its length), made unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^a-zA-Z0-9_-]", "_", f"{server}__{tool}")
    name = base[:NAME_LIMIT]
    if taken is not None:
        number = 1
        while name in taken:
            number += 1
            name = base[:NAME_LIMIT - len(f"_{number}")] + f"_{number}"
        taken.add(name)
    return name


def _tool(session: McpSession, spec: dict[str, Any], name: str, timeout: float) -> Tool:
    """One of the server's tools (``spec`` as it lists it) as a Tool calling it, checked as a tool
    given as a mapping is (ToolDefinitionError for an input schema that is not a JSON Schema of
    type object)."""
    schema = spec.get("inputSchema") if isinstance(spec.get("inputSchema"), dict) else {}
    schema = {"type": "object", **schema} if "type" not in schema else schema
    original = spec["name"]

    def call(**arguments: Any) -> Any:
        return tool_result(session.call(original, arguments, timeout), session.launch)

    call.__name__ = name
    description = str(spec.get("description") or spec.get("title") or "")
    return tool_from_mapping({"name": name, "description": description, "input_schema": schema, "call": call},
                             lambda unused: None)  # the call is a function: nothing to look up


class McpToolError(Exception):
    """A tool's ``isError`` result, with its text: raised as any tool's error is, so the model reads it,
    or with ``tool_errors: raise`` it fails the step."""


def tool_result(result: dict[str, Any], secrets: Launch) -> Any:
    """A ``tools/call`` result as a tool's return value: its text (a str) or its blocks (text and
    images), the structured content as JSON when there is nothing else; McpToolError for ``isError``."""
    blocks: list[Text | Image] = []
    for item in result.get("content") or ():
        blocks.append(_block(item, secrets) if isinstance(item, dict) else Text(f"[{type(item).__name__} content]"))
    if not blocks and result.get("structuredContent") is not None:
        blocks.append(Text(secrets.hide(json.dumps(result["structuredContent"], ensure_ascii=False))))
    if result.get("isError"):
        text = "\n".join(b.text for b in blocks if isinstance(b, Text))
        raise McpToolError(text or "the tool reported an error, with no message")
    if all(isinstance(b, Text) for b in blocks):
        return "\n".join(b.text for b in blocks)  # plain text: the journal keeps it as it is
    return tuple(blocks)


def _block(item: dict[str, Any], secrets: Launch) -> Text | Image:
    """One content item: text and images as they are, resources as their text, the rest as a note."""
    kind = item.get("type")
    if kind == "text":
        return Text(secrets.hide(str(item.get("text", ""))))
    if kind == "image":
        return _image(str(item.get("data", "")), str(item.get("mimeType", "")))
    if kind == "resource" and isinstance(item.get("resource"), dict):
        resource = item["resource"]
        uri, mime = resource.get("uri", "?"), str(resource.get("mimeType", ""))
        if "text" in resource:
            return Text(secrets.hide(f"[resource {uri}]\n{resource['text']}"))
        if mime in kinds.IMAGE_TYPES:
            return _image(str(resource.get("blob", "")), mime)
        return Text(f"[resource {uri}: {mime or 'binary data'}, not shown]")
    if kind == "resource_link":
        name = f" ({item['name']})" if item.get("name") else ""
        return Text(f"[resource link: {item.get('uri', '?')}{name}]")
    return Text(f"[{kind} content ({item.get('mimeType', 'no media type')}), not shown]")


def _image(data: str, media_type: str) -> Text | Image:
    """An image as a function's image bytes are (its type read from its bytes, its size and pixels
    checked), or a note saying why the model does not see it."""
    if media_type not in kinds.IMAGE_TYPES:
        return Text(f"[an image of type {media_type or 'unknown'}, which the model cannot see]")
    try:
        decoded = base64.b64decode(data, validate=True)
    except ValueError:
        return Text("[an image whose data is not base64]")
    block = image_or_note(decoded)
    return block if isinstance(block, Image) else Text(block)


class RunServers:
    """The servers one run has started, by declaration; each starts once (concurrent steps wait)."""

    def __init__(self, cancel: CancelToken, warnings: list[str]) -> None:
        self.cancel, self.warnings = cancel, warnings
        self._lock = threading.Lock()
        self._starting: dict[McpServer, threading.Lock] = {}
        self._outcomes: dict[McpServer, tuple[McpSession, list[dict[str, Any]]] | McpFailure | None] = {}
        self._sessions: list[McpSession] = []
        self._closed = False

    def started(self, server: McpServer) -> tuple[McpSession, list[dict[str, Any]]] | None:
        """The server's session and tool listing, started now if it is not yet; None for an optional
        server that did not start. McpFailure for a required one; McpInterrupted on cancel."""
        with self._lock:
            starting = self._starting.setdefault(server, threading.Lock())
        with starting:
            if server not in self._outcomes:
                self._outcomes[server] = self._start(server)
        outcome = self._outcomes[server]
        if isinstance(outcome, McpFailure):
            raise outcome
        return outcome

    def _start(self, server: McpServer) -> tuple[McpSession, list[dict[str, Any]]] | McpFailure | None:
        try:
            secrets = launch(server)
        except LaunchError as exc:
            return self._failed(server, McpFailure(redact(f"MCP server {server.name!r} ({server.describe()}) did "
                                                          f"not start: {exc}")))
        with self._lock:  # checked before the session exists: one the run cannot stop is never made
            if self._closed:
                raise McpInterrupted(f"the run ended before MCP server {server.name!r} started")
            session = McpSession(server, secrets)
            self._sessions.append(session)
            _LIVE.add(session)
        try:
            listing = session.start(lambda: self.cancel.cancelled or self._closed)
        except McpFailure as exc:
            return self._failed(server, exc)
        return session, listing

    def _failed(self, server: McpServer, failure: McpFailure) -> McpFailure | None:
        if not server.optional:
            return failure
        where = f" (at {server.location})" if server.location else ""
        self.warnings.append(f"{failure}; the steps that use it go on without its tools (it is optional){where}")
        return None

    def stop_soon(self) -> None:
        """Tell every server to stop, without waiting (the run was interrupted)."""
        with self._lock:
            self._closed = True
            sessions = list(self._sessions)
        for session in sessions:
            session.stop_soon()

    def stop(self) -> None:
        """Stop every server, each program gone before this returns (bounded by STOP_WAIT each)."""
        self.stop_soon()
        for session in self._sessions:
            if session.stop():
                _LIVE.discard(session)
            else:
                self.warnings.append(f"MCP server {session.server.name!r} did not stop in time; its program may "
                                     "still run")


_LOCK = threading.Lock()
_RUNS: dict[CancelToken, RunServers] = {}
"""The servers of each run in progress, by its cancel token (a spec run twice at once: two entries)."""
_LIVE: set[McpSession] = set()
"""Sessions not yet stopped: stopped at exit, if a run's worker was left behind (see _engine._stop)."""


@atexit.register
def _stop_left_behind() -> None:
    for session in list(_LIVE):
        session.stop()
