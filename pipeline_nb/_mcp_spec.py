"""``mcp_servers:``, the MCP servers a pipeline declares, and the ``tools:`` entries that use them.

    mcp_servers:
      files: {command: npx, args: [-y, "@modelcontextprotocol/server-filesystem", /data]}
      search: {url: "https://example.com/mcp", headers: {Authorization: "Bearer ${SEARCH_TOKEN}"}}
    steps:
      - id: look
        prompt: ...
        tools: ["mcp:files", {mcp: search, tools: [query]}]

Here a declaration is only checked (with line:col) and bound into the steps' ``tools`` as
:class:`McpTools`, so that resolving a step's tools needs nothing but the step (``_mcp`` starts
the servers). An inline ``pipeline:`` sees the servers of the pipeline around it; a ``file:``
pipeline declares its own. ``${VAR}`` and ``${VAR:-default}`` in any string of a declaration are
read from the environment when the server starts (:func:`launch`); env and header values, and
whatever a ``${VAR}`` gave, are never part of a message, a repr or a log. A secret written
literally in a url or args (``?token=...``, ``--api-key KEY``, ``https://user:password@...``)
shows as ``<redacted>`` in a description, but write secrets as ``${VAR}``: the journal keeps the
YAML as written.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from ._errors import Location, PipelineSpecError
from ._redact import REDACTED
from ._yaml import SourceMap

KEYS = ("command", "args", "env", "cwd", "url", "headers", "transport", "optional", "timeout")
TRANSPORTS = ("stdio", "http", "sse")
DEFAULT_TIMEOUT = 30.0
"""Seconds a server has to start and list its tools."""
PREFIX = "mcp:"
"""``tools: ["mcp:NAME"]``: every tool of server NAME."""
_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MIN_SECRET = 4
"""Shorter values are not looked for in messages: replacing every "1" would garble them, and hide nothing."""
_SECRET_NAME = re.compile(r"(?i)(?:key|sig|signature|password|passwd|pwd|secret|token|api[-_]?key|credentials?|"
                          r"authorization|.*[-_.](?:token|secret|password|api[-_]?key))")
"""A query parameter's or an option's whole name whose value is a credential: ``key``, ``access_token``,
``--api-key`` (not ``--sort-key`` or ``--auth-mode``)."""
_NAMED_VALUE = re.compile(r"([^\s?&;=#]+)=([^&#\s]+)")
"""``name=value`` in a query string or an option (``--token=VALUE``)."""
_USER_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):([^@/\s]+)(?=@)")
"""``user:password`` in a URL."""


@dataclass(frozen=True, eq=False)  # one object per declaration: a run's servers are these objects (see _mcp)
class McpServer:
    """One declared server, as written (``${VAR}`` not yet read)."""

    name: str
    transport: str
    """``stdio`` (a program: command, args, env, cwd), ``http`` (streamable HTTP) or ``sse`` (legacy)."""
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    optional: bool = False
    """A server that fails to start is a warning on the run, and its tools are absent."""
    timeout: float = DEFAULT_TIMEOUT
    location: Location | None = None
    """Where it is declared (its name under ``mcp_servers:``)."""

    def describe(self) -> str:
        """The command line or URL as written (a ``${VAR}`` as itself, never its value), each literal
        credential in it (see :func:`written_credentials`) as ``<redacted>``, where it sits."""
        if self.url is not None:
            return f"url {_shown(self.url, None)}"
        parts = [self.command or "", *self.args]
        shown = (_shown(part, parts[i - 1] if i else None) for i, part in enumerate(parts))
        return "command " + " ".join(part if part == REDACTED else shlex.quote(part) for part in shown)


def _secret_option(part: str | None) -> bool:
    """Whether ``part`` is an option whose next argument is a credential (``--token VALUE``)."""
    return part is not None and part.startswith("-") and "=" not in part \
        and bool(_SECRET_NAME.fullmatch(part.lstrip("-")))


def _shown(part: str, before: str | None) -> str:
    """One argument (or a URL) with its literal credentials as ``<redacted>``; ``before``: the argument before it."""
    if _secret_option(before) and "${" not in part:
        return REDACTED
    part = _NAMED_VALUE.sub(lambda m: f"{m[1]}={REDACTED}" if _SECRET_NAME.fullmatch(m[1].lstrip("-"))
                            and "${" not in m[2] else m[0], part)
    return _USER_PASSWORD.sub(lambda m: m[0] if "${" in m[2] else f"{m[1]}:{REDACTED}", part)


def written_credentials(server: McpServer) -> frozenset[str]:
    """The credentials written literally in ``server``'s url and args: the value of a query
    parameter or an ``--option=`` named like one (token, key, secret, password, sig...), the argument
    after such an option, a URL's password. A ``${VAR}`` is not one: it is shown as written."""
    found: set[str] = set()
    parts = (server.url,) if server.url is not None else server.args
    for index, part in enumerate(parts):
        found.update(value for name, value in _NAMED_VALUE.findall(part) if _SECRET_NAME.fullmatch(name.lstrip("-")))
        found.update(password for _, password in _USER_PASSWORD.findall(part))
        if index and _secret_option(parts[index - 1]):
            found.add(part)
    return frozenset(value for value in found if "${" not in value and len(value) >= _MIN_SECRET)


def _without(text: str, values: frozenset[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


@dataclass(frozen=True)
class McpTools:
    """A ``tools:`` entry bound to its server: ``"mcp:NAME"`` (every tool) or
    ``{mcp: NAME, tools: [a, b]}`` (these, by the server's own names)."""

    server: McpServer
    only: tuple[str, ...] | None = None

    def __repr__(self) -> str:  # short: it shows in a StepSpec's tools
        return f"McpTools({PREFIX}{self.server.name}" + (f", only={list(self.only)})" if self.only else ")")


@dataclass(frozen=True)
class Launch:
    """What starting a server takes, its ``${VAR}``\\ s read. Never shown: its repr hides the values."""

    command: str | None
    args: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    cwd: str | None
    url: str | None = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    secrets: frozenset[str] = field(repr=False)
    """Header values, and what the environment gave ``${VAR}`` in env, url and headers: hidden from all
    the server sends back (its results, its stderr)."""
    private: frozenset[str] = field(repr=False)
    """The secrets, every env value, what ``${VAR}`` gave anywhere and the credentials written literally
    in url and args (see :func:`written_credentials`): hidden from errors and warnings too (a program's
    stderr may echo its arguments), not from results, where a guessed credential could be a plain word."""

    def hide(self, text: str, *, errors: bool = False) -> str:
        """``text`` with the secrets (with ``errors``, every private value) as ``<redacted>``."""
        return _without(text, self.private if errors else self.secrets)


class LaunchError(ValueError):
    """A declaration that cannot start as the environment is: a ``${VAR}`` that is not set."""


def launch(server: McpServer, environ: Mapping[str, str] | None = None) -> Launch:
    """``server`` with its ``${VAR}``\\ s read from ``environ`` (the process's environment)."""
    environ = os.environ if environ is None else environ
    secrets: set[str] = set()  # hidden in results too: what the environment gave env, headers and url
    given: set[str] = set()  # what the environment gave any ${VAR} (a default is written in the pipeline: no secret)

    def read(text: str, where: str, secret: bool) -> str:
        def value(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                given.add(environ[name])
                if secret:
                    secrets.add(environ[name])
                return environ[name]
            if default is None:
                raise LaunchError(f"environment variable {name} is not set ({where} of MCP server {server.name!r}); "
                                  f"set it, or write ${{{name}:-default}}")
            return default
        return _VARIABLE.sub(value, text)

    env = {key: read(value, f"env.{key}", True) for key, value in server.env}
    headers = {key: read(value, f"headers.{key}", True) for key, value in server.headers}
    secrets.update(headers.values())
    found = Launch(
        command=read(server.command, "command", False) if server.command is not None else None,
        args=tuple(read(arg, f"args[{i}]", False) for i, arg in enumerate(server.args)),
        env=env, cwd=read(server.cwd, "cwd", False) if server.cwd is not None else None,
        url=read(server.url, "url", True) if server.url is not None else None, headers=headers,
        secrets=frozenset(), private=frozenset())
    kept = frozenset(s for s in secrets if len(s) >= _MIN_SECRET)
    private = {v for v in (*env.values(), *given, *written_credentials(server)) if len(v) >= _MIN_SECRET}
    return replace(found, secrets=kept, private=kept | private)


def parse_mcp_servers(raw: Any, smap: SourceMap, base_dir: Path | None) -> dict[str, McpServer]:
    """The pipeline's ``mcp_servers:`` (already checked against the schema), each checked: a
    PipelineSpecError with line:col for a bad name, key or combination of keys."""
    if raw is None:
        return {}
    servers = {}
    for name, config in raw.items():
        at = ("mcp_servers", name)

        def problem(message: str, key: Any = None, hint: str | None = None, *, on_key: bool = True) -> NoReturn:
            """Raise ``message``, at key ``key`` (or a path of keys) of this server's declaration."""
            where = smap.locate(at + (key if isinstance(key, tuple) else (key,) if key else ()), key=on_key)
            raise PipelineSpecError(f"MCP server {name!r}: {message}", location=where, hint=hint)

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problem("a server's name is 1 to 48 letters, digits, '_' or '-' (its tools are named NAME__tool)")
        if not isinstance(config, Mapping):
            problem("must be a mapping: {command, args, env} for a program, {url, headers} for a remote server",
                    on_key=False)
        for key in config:
            if key not in KEYS:
                problem(f"unknown key {key!r}", str(key), f"the keys are: {', '.join(KEYS)}")
        remote = "url" in config
        if remote == ("command" in config):
            problem("give either command: (a program to run, over stdio) or url: (a remote server)",
                    "url" if remote else None, "e.g. {command: npx, args: [-y, some-mcp-server]} or "
                    "{url: https://example.com/mcp}")
        transport = config.get("transport", "http" if remote else "stdio")
        if (transport == "stdio") == remote:
            problem(f"transport {transport} does not fit {'url' if remote else 'command'}:", "transport",
                    "a command speaks stdio; a url speaks http (streamable HTTP) or sse")
        for key in ("headers",) if not remote else ("args", "env", "cwd"):
            if key in config:
                problem(f"{key}: is for {'a remote server (url:)' if key == 'headers' else 'a program (command:)'}",
                        key)
        cwd = config.get("cwd")
        if cwd is not None and base_dir is not None and "${" not in cwd and not Path(cwd).expanduser().is_absolute():
            cwd = str(base_dir / cwd)  # as workdir: relative to the pipeline's file
        servers[name] = McpServer(
            name=name, transport=transport, command=config.get("command"),
            args=tuple(_text(a, ("args", i), problem) for i, a in enumerate(config.get("args") or ())),
            env=_pairs(config.get("env"), "env", problem), cwd=cwd, url=config.get("url"),
            headers=_pairs(config.get("headers"), "headers", problem), optional=bool(config.get("optional", False)),
            timeout=float(config.get("timeout", DEFAULT_TIMEOUT)), location=smap.locate(at, key=True))
    return servers


def _text(value: Any, path: tuple[Any, ...], problem: Any) -> str:
    """A string, or a number written without quotes, as text; the value itself is never quoted."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        label = f"{path[0]}[{path[1]}]" if isinstance(path[1], int) else ".".join(map(str, path))
        problem(f"{label} must be text (a string), not {'nothing' if value is None else type(value).__name__}",
                path, on_key=isinstance(path[1], str))
    return str(value)


def _pairs(value: Any, key: str, problem: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):  # never quoted: it may be a secret written in the wrong place
        problem(f"{key}: must be a mapping of names to text, e.g. {{TOKEN: '${{TOKEN}}'}}", key)
    return tuple((str(name), _text(text, (key, name), problem)) for name, text in value.items())


def mcp_name(entry: Any) -> str | None:
    """The server an MCP ``tools:`` entry names (``"mcp:NAME"``, ``{mcp: NAME, ...}``), else None."""
    if isinstance(entry, McpTools):
        return entry.server.name
    if isinstance(entry, str) and entry.startswith(PREFIX):
        return entry[len(PREFIX):].strip()
    if isinstance(entry, Mapping) and "mcp" in entry:
        return str(entry["mcp"])
    return None


def bind_servers(steps: tuple[Any, ...], servers: Mapping[str, McpServer]) -> tuple[Any, ...]:
    """``steps`` (StepSpecs) with each MCP ``tools:`` entry naming one of ``servers`` bound to it,
    in their parallel children and inline pipelines too. An entry naming no server is left as it
    is, for an inline pipeline's parent to bind, or for the plan to refuse."""
    if not servers:
        return steps
    return tuple(_bound(step, servers) for step in steps)


def _bound(step: Any, servers: Mapping[str, McpServer]) -> Any:
    changes: dict[str, Any] = {}
    tools = tuple(_entry(step, index, entry, servers) for index, entry in enumerate(step.tools))
    _check_taken_once(step, tools)
    if tools != step.tools:
        changes["tools"] = tools
    children = bind_servers(step.children, servers)
    if children != step.children:
        changes["children"] = children
    inline = bind_servers(step.inline.steps, servers) if step.inline is not None else ()
    if step.inline is not None and inline != step.inline.steps:
        changes["inline"] = replace(step.inline, steps=inline)
    return replace(step, **changes) if changes else step


def _entry(step: Any, index: int, entry: Any, servers: Mapping[str, McpServer]) -> Any:
    name = mcp_name(entry)
    if isinstance(entry, McpTools) or name not in servers:
        return entry
    only = None
    if isinstance(entry, Mapping):
        unknown = [k for k in entry if k not in ("mcp", "tools")]
        listed = entry.get("tools")
        listed_ok = isinstance(listed, list) and listed and all(isinstance(t, str) and t for t in listed)
        if unknown or ("tools" in entry and not listed_ok):
            raise PipelineSpecError(
                f"tools[{index}]: an MCP entry is \"mcp:{name}\" (all its tools) or {{mcp: {name}, tools: [a, b]}} "
                "(these, by the server's own names)" + (f"; unknown key {unknown[0]!r}" if unknown else ""),
                location=step.where("tools"), step_id=step.id)
        only = tuple(dict.fromkeys(listed)) if "tools" in entry else None
    return McpTools(servers[name], only)


def _check_taken_once(step: Any, tools: tuple[Any, ...]) -> None:
    """Refuse a server taken whole (``"mcp:NAME"``) by one entry of ``tools`` and named by another:
    the step would have two tools of each name the other entry gives."""
    entries = [(index, entry) for index, entry in enumerate(tools) if isinstance(entry, McpTools)]
    for index, entry in entries:
        again = next((i for i, other in entries if other.server is entry.server and i != index), None)
        if entry.only is None and again is not None:
            raise PipelineSpecError(
                f"tools[{index}] takes every tool of MCP server {entry.server.name!r}, and tools[{again}] names it "
                "again: its tools would be offered twice", location=step.where("tools"), step_id=step.id,
                hint=f"keep one: \"mcp:{entry.server.name}\" (all its tools) or {{mcp: {entry.server.name}, tools: "
                     "[a, b]}")


def whole_servers(tools: Iterable[Any]) -> list[str]:
    """The names of the servers a step's ``tools`` take whole (``"mcp:NAME"``): their tools are
    known only once they start, in the run."""
    return [entry.server.name for entry in tools if isinstance(entry, McpTools) and entry.only is None]


def servers_used(specs: Iterable[Any]) -> list[McpServer]:
    """Every server the steps of ``specs`` (PipelineSpecs) use, their inline pipelines' too, once each."""
    found: dict[int, McpServer] = {}
    for spec in specs:
        for step in spec.all_steps():
            found.update((id(e.server), e.server) for e in step.tools if isinstance(e, McpTools))
            if step.inline is not None:
                found.update((id(s), s) for s in servers_used([step.inline]))
    return list(found.values())
